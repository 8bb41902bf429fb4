"""Queries/s through HTTP on loopback against the in-process rate: what serving the model costs.

For each model (the default C3D; MoViNet-A0 when its file and runtime are here) it starts
``python -m hba_lib.serve`` on 127.0.0.1 (no budget, ``--threads`` as this process) and prints:

1. clips/s of the in-process :class:`~hba_lib.oracle.Oracle` and of a
   :class:`~hba_lib.oracle.remote.RemoteOracle` at each batch size (the best of ``--repeats``
   interleaved runs of ``--seconds`` each: the machine may be shared), the HTTP rate as a share
   of the in-process one (goal: >= 0.8), and the overhead per request (ms);
2. the batch size from which the share is >= 0.8, measured and as predicted from the overhead;
3. for the C3D, the attack (``run_many`` over ``--videos`` videos, ``--budget`` queries each)
   through both oracles: queries/s, the share, and clips per HTTP request.

    .venv/bin/python benchmarks/bench_serve.py                     # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_serve.py --models c3d --seconds 1 --repeats 2
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hba_lib.oracle import Oracle
from hba_lib.oracle.remote import RemoteOracle
from hba_lib.serve.process import ServerProcess

GOAL = 0.8


def rate(oracle: Oracle, x: torch.Tensor, seconds: float) -> float:
    """Clips/s answering ``x`` again and again for about ``seconds`` (after one warm-up call)."""
    oracle(x)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or n < 3:
        oracle(x)
        n += 1
    return n * x.shape[0] / elapsed


def compare(local: Oracle, remote: Oracle, shape, batches, seconds: float, repeats: int):
    """``{batch: (in-process clips/s, HTTP clips/s)}``, each the best of ``repeats``."""
    out = {}
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        x = torch.rand(b, *shape, generator=gen)
        best_l = best_r = 0.0
        for _ in range(repeats):  # interleaved: a busy spell hurts both
            best_l = max(best_l, rate(local, x, seconds))
            best_r = max(best_r, rate(remote, x, seconds))
        out[b] = (best_l, best_r)
    return out


def report(name: str, rows: dict[int, tuple[float, float]]) -> None:
    """The table, the batch from which the share is >= 0.8, and the overhead as ``a + b * B``
    ms a request of ``B`` clips (a least-squares fit: a fixed cost, and a cost per clip's
    bytes), which predicts that batch: ``B * c >= 0.8 * (B * (c + b) + a)``."""
    print(f"\n{name}: clips/s in-process vs HTTP (float32 bodies), best of the repeats")
    print(f"{'batch':>6} {'in-process':>11} {'HTTP':>9} {'share':>7} {'overhead ms/request':>20}")
    over = {}
    for b, (lo, re) in rows.items():
        over[b] = (b / re - b / lo) * 1e3
        mark = "" if re / lo >= GOAL else "  < goal"
        print(f"{b:>6} {lo:>11.1f} {re:>9.1f} {re / lo:>7.2f} {over[b]:>20.2f}{mark}")
    ok = [b for b, (lo, re) in rows.items() if re / lo >= GOAL]
    first = next((b for b in rows if all(c in ok for c in rows if c >= b)), None)
    print(f"measured: share >= {GOAL} from batch {first if first is not None else 'none'}")
    if len(rows) < 2:
        return
    slope, fixed = np.polyfit(list(over), list(over.values()), 1)
    slope = max(float(slope), 0.0)  # a negative slope is noise: no measurable cost per clip
    per_clip = 1e3 / rows[max(rows)][0]  # ms a clip in-process, at the largest batch
    k = GOAL / (1 - GOAL)
    need = k * fixed / (per_clip - k * slope) if per_clip > k * slope else math.inf
    print(
        f"overhead fit: {fixed:.2f} ms a request + {slope:.3f} ms a clip; the model "
        f"{per_clip:.2f} ms a clip in-process: share >= {GOAL} predicted from about "
        f"{max(need, 1):.0f} clips a request, share at most {per_clip / (per_clip + slope):.2f}"
    )


def attack_rates(model, remote: RemoteOracle, server_status, videos: int, budget: int):
    from hba_lib.attacks import attack_set, make_attack
    from hba_lib.data.synthetic import SyntheticActions

    chosen = attack_set(SyntheticActions(split="test"), model, n=videos, num_candidates=4)
    out = {}
    for name in ("opt", "temporal+spatial"):
        attack = make_attack(name, optimizer="opt", query_budget=budget, seed=0)
        row = {}
        for where, oracle in (("in-process", Oracle(model)), ("HTTP", remote)):
            before, requests = oracle.used, server_status()["requests"]
            t0 = time.perf_counter()
            res = attack.run_many(oracle, chosen.xs, chosen.labels,
                                  candidates=chosen.candidates, progress=False)  # fmt: skip
            wall = time.perf_counter() - t0
            queries = oracle.used - before
            assert queries == sum(r.queries for r in res)
            row[where] = (queries / wall, queries, server_status()["requests"] - requests)
        out[name] = row
    print(f"\nattack run_many, {videos} videos x {budget} queries, untargeted, seed 0")
    print(
        f"{'attack':>17} {'in-process q/s':>15} {'HTTP q/s':>9} {'share':>7} {'clips/request':>14}"
    )
    for name, row in out.items():
        (lo, q, _), (re, _, req) = row["in-process"], row["HTTP"]
        print(f"{name:>17} {lo:>15.1f} {re:>9.1f} {re / lo:>7.2f} {q / max(req, 1):>14.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["c3d", "movinet_a0"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--movinet-batches", type=int, nargs="+", default=[1, 2, 8])
    p.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads, here and the server")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--budget", type=int, default=300)
    p.add_argument("--http", default="auto", help="the server's --http (auto, httptools, h11)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    key = secrets.token_urlsafe(24)
    print(f"bench_serve: torch {torch.__version__}, {args.threads} thread(s) here and in the "
          f"server, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if name == "movinet_a0":
                from hba_lib.models import movinet

                if needs := movinet.missing():
                    print(f"\nmovinet_a0: skipped ({'; '.join(needs)})")
                    continue
                from hba_lib.models import build_model

                model, shape, extra = build_model(name), (3, 16, 112, 112), ["--size", "112", "112"]
                batches = args.movinet_batches
            else:
                from hba_lib.models import load_default_model

                model, shape, extra, batches = (
                    load_default_model(name),
                    (3, 16, 32, 32),
                    [],
                    args.batches,
                )
            audit = Path(tmp) / f"audit-{name}.jsonl"
            server = ServerProcess(name, *extra, "--http", args.http, key=key,
                                   threads=args.threads, audit_log=audit, echo=True)  # fmt: skip
            try:
                remote = RemoteOracle(server.url, key, dtype="float32")
                rows = compare(Oracle(model), remote, shape, batches, args.seconds, args.repeats)
                report(f"{name} {list(shape)}", rows)
                if name != "movinet_a0" and args.videos > 0:
                    attack_rates(model, remote, remote.status, args.videos, args.budget)
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
