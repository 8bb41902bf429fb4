"""How far Sign-OPT gets on the masks within a small budget: iterations, queries by phase and
the distance after each move, on the real clips MoViNet-A0 is most sure of.

The real-clip comparison (``docs/models.md``) found Sign-OPT on the masks barely moving after
its start within 2,000 queries, where Opt-attack keeps descending. This prints why: each
Sign-OPT iteration spends ``q`` (200) sign probes before its line search, so a budget left
after the key-frame search and the start buys only a few iterations.

    .venv/bin/python benchmarks/signopt_iterations.py --clips 2 --budget 2000
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from heuristic_attack import load_targets  # this folder: the real model, its clips, the attack set

from hba_lib.attacks import make_attack
from hba_lib.oracle import Oracle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=2, help="the surest clips, in order")
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--optimizers", default="sign-opt,opt")
    ap.add_argument("--acceptance", default="whole_video", help="paper | whole_video")
    ap.add_argument("--root", default=None, help="folder of real clips (default: the shared ones)")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    # the benchmark's attack set: the 6 clips the model is surest of, 10 candidates each
    args.model, args.videos, args.candidates, args.device = "movinet_a0", 6, 10, "cpu"
    model, data, chosen = load_targets(args)
    print(f"movinet_a0, temporal+spatial [{args.acceptance}], budget {args.budget}, "
          f"seed {args.seed}, the {args.clips} surest of 6 clips")  # fmt: skip
    for k in range(args.clips):
        for opt in args.optimizers.split(","):
            attack = make_attack("temporal+spatial", optimizer=opt, query_budget=args.budget,
                                 seed=args.seed, acceptance=args.acceptance)  # fmt: skip
            t0 = time.perf_counter()
            res = attack.run(Oracle(model), chosen.xs[k], chosen.labels[k],
                             candidates=chosen.candidates[k])  # fmt: skip
            moves = " ".join(f"{r.queries}:{r.distance:.1f}" for r in res.trace)  # g after each
            print(f"\n{data.names[chosen.indices[k]]} / {opt}: {res.iterations} iterations, "
                  f"queries {res.queries_by_phase}, L2 {res.distance:.1f}, MAP {res.map:.2f}, "
                  f"stop {res.stop_reason}, {time.perf_counter() - t0:.0f} s")  # fmt: skip
            print(f"  queries: g, after each move: {moves}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
