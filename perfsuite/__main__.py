"""`python -m perfsuite`: the `perfsuite` command (`perfsuite.cli`) without its script."""

from perfsuite.cli import main


if __name__ == "__main__":  # importing the module (e.g. to list perfsuite's) runs nothing
    raise SystemExit(main())
