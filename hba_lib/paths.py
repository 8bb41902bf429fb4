"""Project paths, resolved from the package (never from the working directory).

Where a run writes its figures and tables (:func:`output_dir`):

- ``figures/`` (committed) only when the run asks for it: ``HBA_FIGURES_DIR=figures``, which
  ``make demo`` / ``make figures`` set for the default run;
- else the folder named by ``HBA_FIGURES_DIR`` (``python -m hba_lib.demo --params full`` sets it
  to the folder beside its executed notebooks);
- else one folder per Python process under the git-ignored ``runs/``:
  ``runs/<date>-<time>-<pid>/figures``, so a JupyterLab session, a papermill run at other
  parameters or a test run never touch the committed figures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
FIGURES = REPO_ROOT / "figures"
NOTEBOOKS = REPO_ROOT / "notebooks"
PARAMS = REPO_ROOT / "params"
RUNS = REPO_ROOT / "runs"
DOCS = REPO_ROOT / "docs"
CHECKPOINTS = PACKAGE_DIR / "checkpoints"
CACHE = Path(os.environ.get("HBA_CACHE", REPO_ROOT / ".cache"))
SHARED = REPO_ROOT.parent / "shared"
REAL_DATA = SHARED / "real_data"

#: environment variable naming the folder for this run's figures and tables
FIGURES_DIR_ENV = "HBA_FIGURES_DIR"

_session_dir: Path | None = None


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def written_then_renamed(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` to write (same suffix, a name of this process and
    thread's own); when the block ends without an error it replaces ``path`` in one rename, and
    it is removed whatever happens. A reader sees the old file or the whole new one, never half;
    two writers at once (two benchmarks building one cache file) each finish, the last rename
    winning, where a shared temporary name let one move the other's file away mid-write."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def load_script(path: str | os.PathLike) -> ModuleType:
    """A script of the repository (``"benchmarks/gradient_energy.py"``, relative to its root)
    loaded as a module by its path: benchmarks and tests share a script's functions without
    touching ``sys.path``."""
    file = REPO_ROOT / path
    spec = importlib.util.spec_from_file_location(f"_script_{file.stem}", file)
    if spec is None or spec.loader is None or not file.is_file():
        raise FileNotFoundError(f"no script at {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve(path: str | os.PathLike) -> Path:
    """A user-given path: absolute as is; relative to the working directory if it exists there,
    else relative to the repository root (notebooks run with ``--cwd notebooks``)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def output_dir() -> Path:
    """The folder this run writes figures and tables to (see the module docstring)."""
    global _session_dir
    env = os.environ.get(FIGURES_DIR_ENV, "").strip()
    if env:
        p = Path(env).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p
    if _session_dir is None:
        _session_dir = RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}" / "figures"
    return _session_dir


def writes_committed_figures() -> bool:
    """True when this run writes to the committed ``figures/`` (the default run only)."""
    return output_dir().resolve() == FIGURES.resolve()
