"""Calibrate `perfsuite ab`'s false alarms and detection: now `perfsuite calibrate ab`.

The code moved to `perfsuite/calibrate/_ab.py` (same code, same flags); this wrapper keeps
the commands cited in docs/ working:

    python scripts/calibrate_ab.py --trials 100 --time-limit 1500

is `perfsuite calibrate ab` with the same arguments (`--help` lists them).
"""

from __future__ import annotations

import sys
from pathlib import Path


# This checkout's perfsuite, not another installed one (as the script always imported).
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from perfsuite.cli import main as perfsuite_main  # noqa: E402  (after the path is set)


def main(argv: list[str] | None = None) -> int:
    return perfsuite_main(["calibrate", "ab", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
