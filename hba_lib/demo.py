"""``make demo`` / ``make figures``: execute the notebook sequence with papermill.

The default run (no ``--params``) is the one that writes the committed ``figures/``: it sets
``HBA_FIGURES_DIR=figures`` for the notebooks' kernels. Executed notebooks go to ``runs/demo/``
(git-ignored); each one run at the defaults gets a ``NN_name.sha256`` sidecar (the hash of
its source), so that ``make book`` takes it instead of running the notebook again.
``python -m hba_lib.demo --params full`` uses each notebook's
``params/NN_name_full.yaml`` and writes its figures beside its executed notebooks
(``<out>/figures/``), never to ``figures/``.

``make demo`` leaves out the notebooks in :data:`NOT_IN_DEMO`, each for the reason given
there (notebook 09: a real model, files from outside the repository, and minutes of CPU that
would take the demo past its 10 minutes; notebook 10: minutes of attacks that would too);
``--only`` names them to run them, and ``--all``
(``make figures``) adds them to the sequence.

The run ends by printing the Table 6-style table notebook 08 wrote (``08_table6.md`` in the
figures folder). Notebooks 07 and 08 keep resumable results stores (``*.sqlite``) in that
folder; the default run deletes them first, so the committed figures and tables always come
from a fresh run of the current code (the stores are git-ignored).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from hba_lib import paths


def notebook_sequence() -> list[Path]:
    """The numbered notebooks (``notebooks/NN_*.ipynb``) in order."""
    return sorted(p for p in paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


NOT_IN_DEMO: dict[str, str] = {
    "09_real_model": (
        "a real model on real clips: it needs MoViNet-A0, the LiteRT runtime and real video files "
        "from outside the repository, and its attacks (each query a 16-frame pass of a TFLite "
        "interpreter) take a few minutes, which would take `make demo` past its 10 minutes; run "
        "it with `python -m hba_lib.demo --only 09` (`make figures` runs it too)"
    ),
    "10_beyond_the_paper": (
        "beyond the paper: ten attack rows (two configurations x five optimizers) take about a "
        "minute and a half on 2 CPU cores (81-82 s measured), which would take `make demo` "
        "(8-8.5 minutes) to the edge of its 10 minutes; run it with `python -m hba_lib.demo "
        "--only 10` (`make figures` runs it too)"
    ),
}
"""Notebooks the default sequence leaves out (stem -> why); ``--only`` or ``--all`` runs them."""


def params_file(notebook: Path, flavour: str) -> Path | None:
    """``params/<stem>_<flavour>.yaml`` for a notebook, if it exists."""
    f = paths.PARAMS / f"{notebook.stem}_{flavour}.yaml"
    return f if f.exists() else None


def figures_dir(out_dir: Path, flavour: str | None) -> Path:
    """Where a run's figures go: ``figures/`` for the default run, else ``<out_dir>/figures``."""
    return paths.FIGURES if flavour is None else out_dir / "figures"


TABLE6 = "08_table6.md"


def clear_stores(folder: Path) -> list[Path]:
    """Delete the results stores (``*.sqlite``, ``*.sqlite-*``, ``*.sqlite.adv/``) in ``folder``."""
    import shutil

    gone = []
    for p in sorted(Path(folder).glob("*.sqlite*")):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        gone.append(p)
    return gone


def final_table(figures: Path) -> str | None:
    """The Table 6-style Markdown table notebook 08 wrote into ``figures``, if any."""
    f = Path(figures) / TABLE6
    return f.read_text() if f.is_file() else None


def run(
    out_dir: Path,
    flavour: str | None = None,
    only: list[str] | None = None,
    figures: Path | None = None,
    include_all: bool = False,
) -> list[Path]:
    """Execute every notebook (or those whose name contains one of ``only``) into ``out_dir``,
    their figures into ``figures`` (default: :func:`figures_dir`). Without ``only``, the
    notebooks of :data:`NOT_IN_DEMO` are left out unless ``include_all``."""
    import papermill as pm
    import yaml

    paths.ensure_dir(out_dir)
    figures = Path(figures) if figures is not None else figures_dir(out_dir, flavour)
    os.environ[paths.FIGURES_DIR_ENV] = str(figures.resolve())  # the kernels inherit it
    print(f"[demo] figures and tables go to {figures}", flush=True)
    if figures.resolve() == paths.FIGURES.resolve():  # committed results: never from a stale store
        for p in clear_stores(figures):
            print(f"[demo] removed the previous run's results store {p.name}", flush=True)
    done = []
    for nb in notebook_sequence():
        if only and not any(key in nb.name for key in only):
            continue
        if not only and not include_all and nb.stem in NOT_IN_DEMO:
            print(f"[demo] {nb.name} left out: {NOT_IN_DEMO[nb.stem]}", flush=True)
            continue
        params = {}
        if flavour:
            pf = params_file(nb, flavour)
            if pf is not None:
                params = yaml.safe_load(pf.read_text()) or {}
        out = out_dir / nb.name
        start = time.perf_counter()
        print(f"[demo] {nb.name} -> {out}", flush=True)
        pm.execute_notebook(
            str(nb),
            str(out),
            parameters=params,
            kernel_name="python3",
            cwd=str(paths.NOTEBOOKS),
            progress_bar=False,
        )
        print(f"[demo] {nb.name} done in {time.perf_counter() - start:.1f} s", flush=True)
        if not flavour:  # at the defaults: `make book` may take this copy instead of a new run
            _mark_for_book(nb, out)
        done.append(out)
    return done


def _mark_for_book(notebook: Path, executed: Path) -> None:
    """Write the sidecar (``NN_name.sha256``) that lets ``make book`` reuse this executed copy
    while the notebook's source is unchanged (:mod:`hba_lib.book.notebooks`)."""
    from hba_lib.book import notebooks as book_notebooks

    for nb in book_notebooks.discover():
        if nb.stem == notebook.stem and executed.name == notebook.name:
            book_notebooks.mark_current(nb, executed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--out", type=Path, default=paths.RUNS / "demo", help="folder for executed notebooks"
    )
    ap.add_argument(
        "--params", default=None, help="parameter flavour, e.g. 'full' for params/*_full.yaml"
    )
    ap.add_argument(
        "--only", nargs="*", default=None, help="run only notebooks whose name contains these"
    )
    ap.add_argument(
        "--figures",
        type=Path,
        default=None,
        help="folder for figures (default: figures/ without --params, else OUT/figures)",
    )
    ap.add_argument(
        "--all",
        action="store_true",
        help="also the notebooks the demo leaves out (NOT_IN_DEMO), e.g. for make figures",
    )
    args = ap.parse_args(argv)
    start = time.perf_counter()
    figures = args.figures or figures_dir(args.out, args.params)
    done = run(args.out, args.params, args.only, figures, include_all=args.all)
    if not done:
        print("[demo] no notebook matched", file=sys.stderr)
        return 1
    print(f"\n[demo] {len(done)} notebooks executed in {time.perf_counter() - start:.0f} s")
    print(f"[demo] executed notebooks: {args.out}")
    print(f"[demo] figures:            {figures}")
    table = final_table(figures) if any(TABLE6[:2] == p.name[:2] for p in done) else None
    if table:
        print(f"\n[demo] Table 6 (notebook 08, {figures / TABLE6}):\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
