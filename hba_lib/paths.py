"""Project paths, resolved from the package (never from the working directory)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
FIGURES = REPO_ROOT / "figures"
NOTEBOOKS = REPO_ROOT / "notebooks"
PARAMS = REPO_ROOT / "params"
RUNS = REPO_ROOT / "runs"
CHECKPOINTS = PACKAGE_DIR / "checkpoints"
CACHE = Path(os.environ.get("HBA_CACHE", REPO_ROOT / ".cache"))
SHARED = REPO_ROOT.parent / "shared"
REAL_DATA = SHARED / "real_data"


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
