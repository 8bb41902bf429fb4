"""MoViNet-A0-Stream (TFLite, LiteRT) throughput, and the attack's query rate as a share of it.

Prints, on this machine:
1. the wrapper's forward throughput (clips/s, 16 x 112 x 112 clips resized to 172 inside) at
   each batch size, with an interpreter pool of 1 and of 2 threads (``workers``), and the best;
2. attacks on real clips through the counting oracle (``run_many``: the clips in lockstep, one
   forward per step for all their pending queries), as queries/s and as a share of the best
   bare throughput: the ratio ``docs/speed.md`` gives for the torch models.

A query is a 16-frame pass of the stream model (16 interpreter calls), so every figure here is
in clips/s, not frames/s. Needs the model (``../shared/models`` or ``python -m
hba_lib.models.movinet``), the LiteRT runtime (extra ``real``) and real clips::

    .venv/bin/python benchmarks/bench_tflite.py                        # about 2 minutes
    .venv/bin/python benchmarks/bench_tflite.py --budget 500 --configs temporal+spatial
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from hba_lib import paths
from hba_lib.attacks import make_attack
from hba_lib.data.video import to_model_layout
from hba_lib.data.video_io import read_snippet
from hba_lib.models import build_model, movinet
from hba_lib.oracle import Oracle

CLIPS = ["dunking_basketball_pexels.mp4", "hitting_baseball.mp4", "yoga.mp4",
         "playing_guitar_bass.mp4"]  # fmt: skip
"""Attacked clips first (``--clips`` of them), the rest are their candidate starts."""


class CountingModel(torch.nn.Module):
    """The model, counting forward calls and clips (to report the mean batch per forward)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls, self.clips = model, 0, 0
        self.num_frames = getattr(model, "num_frames", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.clips += x.shape[0]
        return self.model(x)


def bare_throughput(model, shape, seconds: float, sizes, repeats: int = 2) -> dict[int, float]:
    """Clips per second of ``model`` at each batch size: the best of ``repeats`` windows of
    ``seconds / repeats`` (at least one call each), sizes interleaved, after one warm-up call."""
    xs = {bs: torch.rand((bs, *shape)) for bs in sizes}
    rates: dict[int, list[float]] = {bs: [] for bs in sizes}
    with torch.no_grad():
        for bs in sizes:
            model(xs[bs])  # warm-up: every worker thread makes its interpreter
        for _ in range(repeats):
            for bs in sizes:
                n, t0 = 0, time.perf_counter()
                while n == 0 or time.perf_counter() - t0 < seconds / repeats:
                    model(xs[bs])
                    n += bs
                rates[bs].append(n / (time.perf_counter() - t0))
    return {bs: max(r) for bs, r in rates.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=paths.REAL_DATA / "action_clips",
                    help="folder of the real clips")  # fmt: skip
    ap.add_argument("--clips", type=int, default=2, help="clips attacked (the first of CLIPS)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="interpreter pool sizes timed")  # fmt: skip
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seconds", type=float, default=4.0, help="timing per batch size")
    ap.add_argument("--configs", nargs="+", default=["opt", "temporal+spatial"])
    ap.add_argument("--optimizer", default="opt")
    ap.add_argument("--budget", type=int, default=120, help="queries per clip and configuration")
    ap.add_argument("--size", type=int, default=112, help="frame size of the clips")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    needs = movinet.missing()
    if needs:
        print("cannot run: missing\n" + "\n".join(f"- {n}" for n in needs), file=sys.stderr)
        return 1

    start = time.perf_counter()
    load = os.getloadavg()
    shape = (3, 16, args.size, args.size)
    print(f"# MoViNet-A0-Stream int8 (TFLite, LiteRT): {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; clips {shape} "
          f"(C, T, H, W), resized to 172 inside; 1 interpreter thread per worker\n")  # fmt: skip
    bare: dict[int, dict[int, float]] = {}
    for w in args.workers:
        model = build_model("movinet_a0", workers=w)
        bare[w] = bare_throughput(model, shape, args.seconds, args.batches)
    print("| batch | " + " | ".join(f"{w} worker{'s' * (w > 1)} clips/s" for w in args.workers)
          + " |")  # fmt: skip
    print("|---:|" + "---:|" * len(args.workers))
    for bs in args.batches:
        print(f"| {bs} | " + " | ".join(f"{bare[w][bs]:.2f}" for w in args.workers) + " |")
    best_w, best_bs = max(((w, bs) for w in bare for bs in bare[w]), key=lambda k: bare[k[0]][k[1]])
    best = bare[best_w][best_bs]
    print(f"\nbatch 1: {bare[args.workers[0]][1]:.2f} clips/s "
          f"({1000 / bare[args.workers[0]][1]:.0f} ms a clip); best: {best:.2f} clips/s at batch "
          f"{best_bs} with {best_w} worker(s)\n")  # fmt: skip

    model = build_model("movinet_a0", workers=best_w)
    if not 1 <= args.clips < len(CLIPS):
        raise SystemExit(f"--clips must be in [1, {len(CLIPS) - 1}]: the rest are candidates")
    names = CLIPS
    videos = torch.stack([to_model_layout(read_snippet(args.root / n, size=args.size)[0])
                          for n in names])  # fmt: skip
    with torch.no_grad():
        labels = model(videos).argmax(1).tolist()
    xs, ys = videos[: args.clips], labels[: args.clips]
    cands = [videos[[j for j in range(len(names)) if j >= args.clips and labels[j] != y]]
             for y in ys]  # fmt: skip
    if not all(len(c) for c in cands):
        raise SystemExit(f"no candidate of another class among {names[args.clips :]}")
    print(f"attacked: {', '.join(f'{n} ({model.classes[y]})' for n, y in zip(names, ys))}; "
          f"candidates: the other {len(names) - args.clips} clips; untargeted, optimizer "
          f"{args.optimizer}, budget {args.budget} a clip, seed {args.seed}, {best_w} worker(s)\n")  # fmt: skip
    counted = CountingModel(model)
    rows = []
    for config in args.configs:
        attack = make_attack(config, optimizer=args.optimizer, query_budget=args.budget,
                             seed=args.seed)  # fmt: skip
        counted.calls = counted.clips = 0
        t0 = time.perf_counter()
        results = attack.run_many(Oracle(counted), xs, ys, candidates=cands, progress=False)
        wall = time.perf_counter() - t0
        q = sum(r.queries for r in results)
        assert q == counted.clips, "every clip the model saw is a counted query"
        rows.append((attack.name, q, wall, q / counted.calls))
        print(f"  {attack.name:<28} {q:>5} queries in {wall:6.1f} s = {q / wall:6.2f} q/s "
              f"({q / counted.calls:.1f} clips per forward); "
              + "; ".join(f"MAP {r.map:.2f}" for r in results))  # fmt: skip
    print(f"\n| attack (clips in lockstep) | queries/s | clips per forward | share of the best "
          f"bare throughput ({best:.2f} clips/s) |\n|---|---:|---:|---:|")  # fmt: skip
    for name, q, wall, per in rows:
        print(f"| {name} | {q / wall:.2f} | {per:.1f} | {100 * q / wall / best:.0f} % |")
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{time.perf_counter() - start:.0f} s in all")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
