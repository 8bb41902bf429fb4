"""A small Sphinx extension for the book: MathJax served from the site itself (offline).

MathJax 3 comes from the npm package ``mathjax`` that ``make setup`` installs into the
virtual environment (``<venv>/book-npm/node_modules/mathjax``; ``HBA_MATHJAX`` names another
``es5`` folder). What the ``tex-chtml`` component loads is copied into ``<out>/_static/mathjax``
when the build ends, so that no page asks a CDN for it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

MATHJAX_VERSION = "3"
NPM_PREFIX = Path(sys.prefix) / "book-npm"
INSTALL_HINT = (
    f"npm install --prefix {NPM_PREFIX} --no-save mathjax@{MATHJAX_VERSION} "
    "(make setup does it; it needs Node's npm and the npm registry once)"
)
MATHJAX_FILES = ("tex-chtml.js", "input", "output", "ui", "a11y", "adaptors")
"""What ``tex-chtml.js`` loads: itself, the TeX extensions it may autoload, the CommonHTML
output and its woff fonts, the menu and the assistive MathML (the speech engine is left out)."""


def mathjax_es5() -> Path:
    """The ``es5`` folder of the npm package ``mathjax`` 3, with a clear error when missing."""
    env = os.environ.get("HBA_MATHJAX", "").strip()
    folder = Path(env) if env else NPM_PREFIX / "node_modules" / "mathjax" / "es5"
    if not (folder / "tex-chtml.js").is_file():
        raise RuntimeError(f"the book needs MathJax 3: no tex-chtml.js in {folder}: {INSTALL_HINT}")
    return folder


def copy_mathjax(out: Path) -> Path:
    """Copy MathJax into ``out/_static/mathjax``; return that folder."""
    es5, dest = mathjax_es5(), Path(out) / "_static" / "mathjax"
    for rel in MATHJAX_FILES:
        src = es5 / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, dirs_exist_ok=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / rel)
    return dest


def _finished(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir))


def setup(app) -> dict:
    """Sphinx entry point."""
    mathjax_es5()  # fail early, with the reason, when MathJax is missing
    app.connect("build-finished", _finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
