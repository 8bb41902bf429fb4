"""``make demo`` / ``make figures``: execute the notebook sequence with papermill.

The default run (no ``--params``) is the one that writes the committed ``figures/``: it sets
``HBA_FIGURES_DIR=figures`` for the notebooks' kernels. Executed notebooks go to ``runs/demo/``
(git-ignored). ``python -m hba_lib.demo --params full`` uses each notebook's
``params/NN_name_full.yaml`` and writes its figures beside its executed notebooks
(``<out>/figures/``), never to ``figures/``.
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


def params_file(notebook: Path, flavour: str) -> Path | None:
    """``params/<stem>_<flavour>.yaml`` for a notebook, if it exists."""
    f = paths.PARAMS / f"{notebook.stem}_{flavour}.yaml"
    return f if f.exists() else None


def figures_dir(out_dir: Path, flavour: str | None) -> Path:
    """Where a run's figures go: ``figures/`` for the default run, else ``<out_dir>/figures``."""
    return paths.FIGURES if flavour is None else out_dir / "figures"


def run(
    out_dir: Path,
    flavour: str | None = None,
    only: list[str] | None = None,
    figures: Path | None = None,
) -> list[Path]:
    """Execute every notebook (or those whose name contains one of ``only``) into ``out_dir``,
    their figures into ``figures`` (default: :func:`figures_dir`)."""
    import papermill as pm
    import yaml

    paths.ensure_dir(out_dir)
    figures = Path(figures) if figures is not None else figures_dir(out_dir, flavour)
    os.environ[paths.FIGURES_DIR_ENV] = str(figures.resolve())  # the kernels inherit it
    print(f"[demo] figures and tables go to {figures}", flush=True)
    done = []
    for nb in notebook_sequence():
        if only and not any(key in nb.name for key in only):
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
            str(nb), str(out), parameters=params, kernel_name="python3",
            cwd=str(paths.NOTEBOOKS), progress_bar=False,
        )
        print(f"[demo] {nb.name} done in {time.perf_counter() - start:.1f} s", flush=True)
        done.append(out)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=paths.RUNS / "demo", help="folder for executed notebooks")
    ap.add_argument("--params", default=None, help="parameter flavour, e.g. 'full' for params/*_full.yaml")
    ap.add_argument("--only", nargs="*", default=None, help="run only notebooks whose name contains these")
    ap.add_argument("--figures", type=Path, default=None,
                    help="folder for figures (default: figures/ without --params, else OUT/figures)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    figures = args.figures or figures_dir(args.out, args.params)
    done = run(args.out, args.params, args.only, figures)
    if not done:
        print("[demo] no notebook matched", file=sys.stderr)
        return 1
    print(f"\n[demo] {len(done)} notebooks executed in {time.perf_counter() - start:.0f} s")
    print(f"[demo] executed notebooks: {args.out}")
    print(f"[demo] figures:            {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
