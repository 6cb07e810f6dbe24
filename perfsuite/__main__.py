"""`python -m perfsuite`: the `perfsuite` command (`perfsuite.cli`) without its script."""

from perfsuite.cli import main


raise SystemExit(main())
