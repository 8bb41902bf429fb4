"""HMDB-51 from the official archives to the 16-frame snippet cache: `python data_scripts/hmdb51.py -h`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("hmdb51"))
