"""``make demo``: execute the notebook sequence with papermill on the embedded default.

Executed notebooks go to ``runs/demo/`` (git-ignored), figures to ``figures/``.
``python -m hba_lib.demo --params full`` uses each notebook's ``params/NN_name_full.yaml``.
"""

from __future__ import annotations

import argparse
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


def run(out_dir: Path, flavour: str | None = None, only: list[str] | None = None) -> list[Path]:
    """Execute every notebook (or those whose name contains one of ``only``) into ``out_dir``."""
    import papermill as pm
    import yaml

    paths.ensure_dir(out_dir)
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
    args = ap.parse_args(argv)
    start = time.perf_counter()
    done = run(args.out, args.params, args.only)
    if not done:
        print("[demo] no notebook matched", file=sys.stderr)
        return 1
    print(f"\n[demo] {len(done)} notebooks executed in {time.perf_counter() - start:.0f} s")
    print(f"[demo] executed notebooks: {args.out}")
    print(f"[demo] figures:            {paths.FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
