"""The stored-baseline gate on a known-cost workload: now `perfsuite calibrate baseline`.

The code moved to `perfsuite/calibrate/_baseline.py` (same code, same flags); this wrapper keeps
the commands cited in docs/ working:

    flock /tmp/calib.lock python scripts/calibrate_baseline.py --out /tmp/calib_baseline.json

is `perfsuite calibrate baseline` with the same arguments (`--help` lists them).
"""

from __future__ import annotations

import sys
from pathlib import Path


# This checkout's perfsuite, not another installed one (as the script always imported).
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from perfsuite.cli import main as perfsuite_main  # noqa: E402  (after the path is set)


def main(argv: list[str] | None = None) -> int:
    return perfsuite_main(["calibrate", "baseline", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
