"""The book's notebooks: discovered from ``notebooks/NN_*.py``, executed once at their defaults
and cached, keyed by the sha256 of their source.

An executed copy lives in ``runs/book/executed/NN_name.ipynb`` with ``NN_name.sha256`` beside
it (the hash of ``notebooks/NN_name.py`` it was run from). ``make demo`` writes the same pair
into ``runs/demo/`` (:func:`hba_lib.demo.run` at the defaults), and the book takes a current copy
from there instead of running the notebook again. A notebook runs only when no current copy
exists, with ``HBA_FIGURES_DIR`` set to ``runs/book/figures`` so that nothing is written into
the committed ``figures/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hba_lib import paths

BOOK_RUNS = paths.RUNS / "book"
EXECUTED = BOOK_RUNS / "executed"
FIGURES = BOOK_RUNS / "figures"
DEMO_EXECUTED = paths.RUNS / "demo"
_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+$")


@dataclass(frozen=True)
class Notebook:
    """One notebook of the course: its number, stem, source (``.py``) and its paired ``.ipynb``."""

    number: str
    stem: str
    source: Path
    ipynb: Path

    @property
    def title(self) -> str:
        """The title of its first heading, ``# NN · Title`` -> ``Title``."""
        for line in self.source.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^#\s*#\s+\d\d\s*·\s*(.+)$", line)
            if m:
                return m.group(1).strip()
        raise ValueError(f"{self.source}: no '# NN · Title' heading in its first markdown cell")

    @property
    def time_to_run(self) -> str:
        """The notebook's own ``**Time to run:** ...`` paragraph, as one line."""
        text = self.source.read_text(encoding="utf-8")
        m = re.search(r"^# \*\*Time to run:\*\*(.*?)(?=^#\s*$|^# ##|^# %%|\Z)", text, re.M | re.S)
        if not m:
            raise ValueError(f"{self.source}: no '**Time to run:**' line")
        return " ".join(re.sub(r"^#\s?", "", ln) for ln in m.group(1).splitlines()).strip()

    @property
    def learn(self) -> list[str]:
        """The bullets under ``## What you will learn``."""
        text = self.source.read_text(encoding="utf-8")
        m = re.search(r"^# ## What you will learn\s*$(.*?)^#\s*$", text, re.M | re.S)
        if not m:
            raise ValueError(f"{self.source}: no '## What you will learn' section")
        bullets: list[str] = []
        for ln in m.group(1).splitlines():
            ln = re.sub(r"^#\s?", "", ln)
            if ln.startswith("- "):
                bullets.append(ln[2:].strip())
            elif ln.strip() and bullets:
                bullets[-1] += " " + ln.strip()
        return bullets


def discover(folder: Path | None = None) -> list[Notebook]:
    """Every ``NN_name.py`` of ``notebooks/`` (with its ``.ipynb``), in course order."""
    folder = Path(folder) if folder is not None else paths.NOTEBOOKS
    found = []
    for py in sorted(folder.glob("[0-9][0-9]_*.py")):
        m = _NAME.match(py.stem)
        if not m:
            continue
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.is_file():
            raise FileNotFoundError(f"{py} has no paired {ipynb.name}: run `make sync`")
        found.append(Notebook(m.group(1), py.stem, py, ipynb))
    if not found:
        raise FileNotFoundError(f"no notebooks NN_name.py in {folder}")
    return found


def needs_of(nb: Notebook) -> list[str]:
    """What a notebook needs from outside the repository and does not have here (empty: all
    there). Only notebook 09 (a real model on real clips) needs anything."""
    if not nb.stem.startswith("09_"):
        return []
    from hba_lib.data.clips import missing_clips
    from hba_lib.models import movinet

    clips = missing_clips(paths.REAL_DATA / "action_clips")
    return list(movinet.missing()) + ([clips] if clips else [])


def source_hash(nb: Notebook) -> str:
    """The key of an executed copy: sha256 of the notebook's source ``.py``, and of what it
    lacks from outside the repository (so a copy run without the real model is run again once
    the model is there)."""
    h = hashlib.sha256(nb.source.read_bytes())
    for need in needs_of(nb):
        h.update(b"\nneeds: " + need.encode())
    return h.hexdigest()


def cached_copy(nb: Notebook, folder: Path) -> Path | None:
    """``folder/NN_name.ipynb`` when its ``.sha256`` sidecar matches the current source."""
    out, key = folder / f"{nb.stem}.ipynb", folder / f"{nb.stem}.sha256"
    if out.is_file() and key.is_file() and key.read_text().strip() == source_hash(nb):
        return out
    return None


def mark_current(nb: Notebook, executed: Path) -> None:
    """Write the sidecar that says ``executed`` was run from the current source of ``nb``."""
    executed.with_suffix(".sha256").write_text(source_hash(nb) + "\n")


def execute(nb: Notebook, out: Path, figures: Path = FIGURES) -> Path:
    """Run ``nb`` at its defaults with papermill into ``out``; figures into ``figures``."""
    import papermill as pm

    paths.ensure_dir(out.parent)
    paths.ensure_dir(figures)
    old = os.environ.get(paths.FIGURES_DIR_ENV)
    os.environ[paths.FIGURES_DIR_ENV] = str(Path(figures).resolve())  # the kernel inherits it
    try:
        pm.execute_notebook(
            str(nb.ipynb),
            str(out),
            kernel_name="python3",
            cwd=str(paths.NOTEBOOKS),
            progress_bar=False,
        )
    finally:
        if old is None:
            os.environ.pop(paths.FIGURES_DIR_ENV, None)
        else:
            os.environ[paths.FIGURES_DIR_ENV] = old
    mark_current(nb, out)
    return out


def executed_notebooks(
    notebooks: list[Notebook] | None = None,
    cache: Path = EXECUTED,
    reuse: tuple[Path, ...] = (DEMO_EXECUTED,),
    log=print,
) -> dict[str, Path]:
    """stem -> an executed copy of each notebook at its defaults: from ``cache``, else a current
    copy from one of ``reuse`` (copied into ``cache``), else a fresh run into ``cache``."""
    out: dict[str, Path] = {}
    for nb in notebooks if notebooks is not None else discover():
        hit = cached_copy(nb, cache)
        if hit is not None:
            log(f"[book] {nb.stem}: executed copy is current ({hit})")
            out[nb.stem] = hit
            continue
        for folder in reuse:
            src = cached_copy(nb, folder)
            if src is not None:
                paths.ensure_dir(cache)
                dst = shutil.copyfile(src, cache / src.name)
                mark_current(nb, Path(dst))
                log(f"[book] {nb.stem}: reused {src}")
                out[nb.stem] = Path(dst)
                break
        else:
            log(f"[book] {nb.stem}: executing at its defaults ...")
            start = time.perf_counter()
            out[nb.stem] = execute(nb, cache / f"{nb.stem}.ipynb")
            log(f"[book] {nb.stem}: done in {time.perf_counter() - start:.0f} s")
    return out
