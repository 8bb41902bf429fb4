"""Sweep throughput: attacks/min and queries/s, local backend vs Ray on 1 and 2 workers.

The same small sweep (default C3D, synthetic 32 px test set, ``--videos`` videos, untargeted,
Opt-attack preset ``opt`` with ``--budget`` queries) runs into a fresh store each time:

- local, one process, ``run_many`` over chunks of ``--local-chunk`` (1 and 2 torch threads) and
  of ``--chunk-size`` videos (1 thread);
- Ray with 1 and 2 workers (one CPU and one torch thread each), chunks of ``--chunk-size``.

Every timed run starts warm (model, data set and video selection cached in the process); Ray
is started once (``num_cpus=2``) and warmed up (workers started, model loaded) before its timed
runs, its start-up time printed apart. Numbers on a shared machine vary run to run.

    .venv/bin/python benchmarks/bench_sweep.py                     # about 2-3 minutes on 2 CPUs
    .venv/bin/python benchmarks/bench_sweep.py --videos 8 --budget 1000 --no-ray
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from hba_lib.experiments import expand, run_sweep, sweep_from_dict


def sweep(videos: int, budget: int, seed: int = 0):
    """The benchmark's sweep: ``videos`` videos x one Opt-attack configuration x one seed."""
    return sweep_from_dict(
        {
            "name": "bench",
            "model": "c3d",
            "dataset": {"name": "synthetic", "split": "test", "size": 32},
            "videos": {"n": videos, "seed": seed},
            "seeds": [seed],
            "num_candidates": 10,
            "attacks": {f"opt-{budget}": {"attack": "opt", "query_budget": budget}},
        }
    )


def row(label: str, report) -> str:
    """One line of the table."""
    per_min = report.ran / report.wall_time * 60.0
    qps = report.queries / report.wall_time
    return (
        f"{label:<34} {report.ran:>4} {report.queries:>8} {report.wall_time:>8.1f} "
        f"{per_min:>11.1f} {qps:>10.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--chunk-size", type=int, default=4, help="videos per Ray task")
    p.add_argument("--local-chunk", type=int, default=8, help="videos per local run_many call")
    p.add_argument("--no-ray", action="store_true")
    args = p.parse_args(argv)

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"sweep: default C3D, synthetic 32 px, {args.videos} videos, budget {args.budget}\n")
    print(f"{'backend':<34} {'jobs':>4} {'queries':>8} {'wall s':>8} {'attacks/min':>11} "
          f"{'queries/s':>10}")  # fmt: skip
    sw = sweep(args.videos, args.budget)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    torch.set_num_threads(1)
    run_sweep(sweep(2, 20), tmp / "warm.sqlite", progress=False)  # model and data set cached
    expand(sw)  # the video selection, cached too: every timed run starts warm
    for threads, chunk in ((1, args.local_chunk), (1, args.chunk_size), (2, args.local_chunk)):
        report = run_sweep(sw, tmp / f"local{threads}_{chunk}.sqlite", chunk_size=chunk,
                           threads=threads, progress=False)  # fmt: skip
        print(row(f"local, {threads} thread(s), chunk {chunk}", report), flush=True)
    torch.set_num_threads(1)
    if args.no_ray:
        return 0
    try:
        import ray
    except ImportError:
        print("ray not installed (pip install -e '.[ray]'): Ray rows skipped")
        return 0
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    warm = sweep(2, 20)
    run_sweep(warm, tmp / "warm_ray.sqlite", backend="ray", workers=2, chunk_size=1, progress=False)
    print(f"(ray.init + warm-up of 2 workers: {time.perf_counter() - t0:.1f} s, not counted)")
    try:
        for workers in (1, 2):
            report = run_sweep(sw, tmp / f"ray{workers}.sqlite", backend="ray", workers=workers,
                               chunk_size=args.chunk_size, progress=False)  # fmt: skip
            print(row(f"ray, {workers} worker(s), chunk {args.chunk_size}", report), flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
