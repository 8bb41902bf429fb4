"""``make book``: the course as an HTML site, built offline with Sphinx, myst-nb and
sphinx-book-theme.

Steps: discover the notebooks (``notebooks/NN_*.py``), get an executed copy of each at its
defaults (:mod:`hba_lib.book.notebooks`: cached by the hash of its source, reused from
``make demo``, run only when missing), lay out the source tree in ``runs/book/src``
(:mod:`hba_lib.book.pages`), then ``sphinx-build -W`` into ``runs/book/html``. Nothing is
written into the repository's committed files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hba_lib import paths
from hba_lib.book import notebooks as nbs
from hba_lib.book import pages

SRC = nbs.BOOK_RUNS / "src"
HTML = nbs.BOOK_RUNS / "html"
WARNINGS = nbs.BOOK_RUNS / "warnings.txt"
INFO = "build-info.json"
"""Written beside the site: which notebooks had outputs and what each lacked (for the tests)."""


def has_outputs(notebook: Path) -> bool:
    """Whether an ``.ipynb`` holds any output (an executed copy does)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    return any(c.get("outputs") for c in cells if c.get("cell_type") == "code")


@dataclass(frozen=True)
class Built:
    """What :func:`build` made: the site's folder, its pages, and how long each step took."""

    html: Path
    pages: list[Path]
    seconds_notebooks: float
    seconds_sphinx: float


def sphinx(src: Path, out: Path, strict: bool = True, log=print) -> float:
    """``sphinx-build`` of ``src`` into ``out`` with ``book/conf.py``; ``strict``: any warning
    fails it (a RuntimeError quoting them; they are kept in ``out/../warnings.txt``). Returns
    the seconds it took."""
    warnings = Path(out).parent / WARNINGS.name
    paths.ensure_dir(warnings.parent)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(pages.BOOK_DIR)]
    cmd += ["-W", "--keep-going"] if strict else []
    cmd += ["-w", str(warnings), str(src), str(out)]
    log(f"[book] {' '.join(cmd)}")
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=str(paths.REPO_ROOT), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"sphinx-build failed (exit {done.returncode}); its warnings ({warnings}):\n"
            + (warnings.read_text() if warnings.is_file() else "")
            + done.stderr[-4000:]
        )
    return time.perf_counter() - start


def build(
    out: Path = HTML, src: Path = SRC, strict: bool = True, executed: dict[str, Path] | None = None,
    log=print,
) -> Built:  # fmt: skip
    """Build the book into ``out`` from the notebooks executed at their defaults (``executed``:
    stem -> ``.ipynb`` to use instead); ``strict``: any Sphinx warning fails the build."""
    notebooks = nbs.discover()
    start = time.perf_counter()
    executed = executed or nbs.executed_notebooks(notebooks, log=log)
    t_nb = time.perf_counter() - start
    needs = {nb.stem: nbs.needs_of(nb) for nb in notebooks}
    pages.write_source(Path(src), notebooks, executed, needs)
    t_sphinx = sphinx(Path(src), Path(out), strict, log)
    info = {"executed": {k: has_outputs(v) for k, v in executed.items()}, "needs": needs}
    (Path(out) / INFO).write_text(json.dumps(info, indent=1) + "\n")
    html = sorted(Path(out).rglob("*.html"))
    log(f"[book] {len(html)} pages in {out} (notebooks {t_nb:.0f} s, sphinx {t_sphinx:.0f} s)")
    return Built(Path(out), html, t_nb, t_sphinx)
