"""Command line: run a sweep into a store, or summarise a store.

``python -m hba_lib.experiments run --sweep sweep.yaml --store runs/sweeps/NAME.sqlite
[--backend local|ray] [--workers N] [--chunk-size N] [--save-adversarial]``
``python -m hba_lib.experiments show --store runs/sweeps/NAME.sqlite``
"""

from __future__ import annotations

import argparse
import sys

from hba_lib.experiments.runner import BACKENDS, run_sweep
from hba_lib.experiments.store import load_results, store_status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hba_lib.experiments", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the sweep's missing jobs into the store")
    run.add_argument(
        "--sweep", required=True, help="sweep YAML (format: hba_lib.experiments.sweep)"
    )
    run.add_argument(
        "--store", required=True, help="SQLite results store, e.g. runs/sweeps/x.sqlite"
    )
    run.add_argument("--backend", choices=BACKENDS, default="local")
    run.add_argument("--workers", type=int, default=1, help="ray: tasks in flight")
    run.add_argument("--chunk-size", type=int, default=8, help="videos per run_many call / task")
    run.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (local)")
    run.add_argument("--num-cpus", type=float, default=1, help="ray: CPUs per task")
    run.add_argument("--num-gpus", type=float, default=0, help="ray: GPUs per task")
    run.add_argument("--save-adversarial", action="store_true", help="save x_adv beside the store")
    run.add_argument("--retry-failed", action="store_true", help="rerun jobs recorded as failed")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    show = sub.add_parser("show", help="summarise a store")
    show.add_argument("--store", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when a job failed)."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        report = run_sweep(
            args.sweep, args.store, args.backend, workers=args.workers,
            chunk_size=args.chunk_size, device=args.device, threads=args.threads,
            num_cpus=args.num_cpus, num_gpus=args.num_gpus,
            save_adversarial=args.save_adversarial, retry_failed=args.retry_failed,
            progress=not args.no_progress,
        )  # fmt: skip
        print(report, flush=True)
        return 1 if report.failed else 0
    from hba_lib.experiments.summary import summary_table

    print(store_status(args.store))
    df = load_results(args.store)
    if len(df):
        print(summary_table(df).to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
