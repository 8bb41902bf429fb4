"""Opt-attack query throughput against the bare model's best-batch forward throughput.

Prints, for the default C3D on this machine:
1. the bare model's forward throughput (clips/s) per batch size, and the best;
2. the same Opt-attack (same videos, seed, budget) run three ways:
   - one clip per query: sequential searches and an oracle that forwards one clip at a time;
   - batched, one video at a time: the q probes' local searches in lockstep;
   - batched, all videos in lockstep (``OptAttack.run_many``): one forward per step for all;
   as queries/s and as a share of the best-batch throughput (goal: >= 70 %), and the batching
   gain as a measured ratio. All three spend exactly the same queries on the same points;
3. at one lockstep width (``--videos`` videos in ``run_many``), ``make_attack("opt")`` against
   ``make_attack("temporal+spatial")`` (same optimizer, seed, budget, videos and candidates):
   clips per forward (a count, robust to the machine's load; the oracle forwards a whole
   lockstep step at once, so a forward is a step), q/s, and per phase the clips per request
   (how many clips one video asks about at a time; ``init`` holds the candidates' searches and
   the key-frame search of Algorithm 1, ``optimisation`` the probes and the line search).
   ``--width W`` keeps at most W videos in lockstep, the next starting as one ends (both
   attacks alike; ``--videos`` then sets how many videos run in all).

    .venv/bin/python benchmarks/bench_attack.py                 # CPU, a few minutes
    .venv/bin/python benchmarks/bench_attack.py --device cuda --videos 8 --budget 20000
    .venv/bin/python benchmarks/bench_attack.py --lockstep-only --videos 16   # part 3 only
    .venv/bin/python benchmarks/bench_attack.py --lockstep-only --videos 8 --width 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter

import torch

from hba_lib.attacks import OptAttack, OptAttackConfig, attack_set, drive_many, make_attack
from hba_lib.oracle import Oracle
from hba_lib.oracle.goals import make_goal
from hba_lib.oracle.queries import observe


def load_model(name: str, device: str, untrained: bool, checkpoint: str | None = None):
    """The default checkpoint of ``name``, or ``checkpoint``, or random weights."""
    from hba_lib.models import build_model, load_default_model, load_model_checkpoint

    if checkpoint:
        print(f"NOTE: model from {checkpoint}, not the default checkpoint")
        return load_model_checkpoint(checkpoint, device)
    if untrained:
        print(f"NOTE: --untrained: a randomly initialised {name}_small (timings only)")
        return build_model(f"{name}_small", 12).to(device).eval()
    return load_default_model(name, device=device)


class CountingModel(torch.nn.Module):
    """The model, counting forward calls and clips (to report the mean batch per forward)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls, self.clips = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.clips += x.shape[0]
        return self.model(x)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_throughput(
    model, shape, device: str, seconds: float, sizes, repeats: int = 3
) -> dict[int, float]:
    """Clips per second of ``model`` alone at each batch size (inference mode, inputs on
    device): the median of ``repeats`` windows of ``seconds / repeats``, sizes interleaved."""
    xs = {bs: torch.rand((bs, *shape), device=device) for bs in sizes}
    rates: dict[int, list[float]] = {bs: [] for bs in sizes}
    with torch.inference_mode():
        for bs in sizes:
            model(xs[bs])
        for _ in range(repeats):
            for bs in sizes:
                sync(device)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds / repeats:
                    model(xs[bs])
                    n += bs
                sync(device)
                rates[bs].append(n / (time.perf_counter() - t0))
    return {bs: sorted(r)[len(r) // 2] for bs, r in rates.items()}


def logged(process, counted: CountingModel, log: list[tuple[int, str, int, int]], video: int = 0):
    """Pass ``process``'s requests through, logging ``(forward index, phase, clips, video)`` of
    each answered one (the index of the model's forward that answered it)."""

    def note(request, answer) -> None:
        log.append((counted.calls, request.phase, request.points.shape[0], video))

    return (yield from observe(process, note))


def lockstep_run(attack, counted: CountingModel, chosen, budget: int, max_batch: int, device,
                 width: int | None = None):  # fmt: skip
    """``attack.run_many`` on every video of ``chosen`` (its forks, budgets and processes; no
    progress bar; ``width``: at most that many in flight), with each request logged:
    ``(results, wall, forwards, log, cpu)``, ``cpu`` the process's CPU seconds (less moved by
    other processes on the machine than ``wall``)."""
    base = Oracle(counted, max_batch=max_batch)
    n = len(chosen.labels)
    oracles = [base.fork(budget) for _ in range(n)]
    log: list[tuple[int, str, int, int]] = []
    procs = [
        logged(attack.process(chosen.xs[i], make_goal(chosen.labels[i], chosen.targets[i]),
                              chosen.candidates[i], None, None, base.device,
                              oracle_remaining=oracles[i].remaining), counted, log, i)
        for i in range(n)
    ]  # fmt: skip
    sync(device)
    counted.calls = counted.clips = 0
    t0, c0 = time.perf_counter(), time.process_time()
    results = drive_many(procs, oracles, width=width)
    sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert sum(r.queries for r in results) == counted.clips == base.used, "every clip counted"
    return results, wall, counted.calls, log, cpu


def lockstep_comparison(args, model, chosen, top: float) -> None:
    """Part 3: ``opt`` against ``temporal+spatial`` at one lockstep width."""
    counted = CountingModel(model)
    n = len(chosen.labels)
    width = min(args.width or n, n)
    flight = f"{n} videos in lockstep" if width == n else (
        f"{n} videos, at most {width} in lockstep (the next starting as one ends)")  # fmt: skip
    print(f"\n## opt against temporal+spatial, {flight} (run_many), same "
          f"optimizer (opt), seed {args.seed}, budget {args.budget}, {args.candidates} "
          f"candidates; oracle chunk {args.max_batch} (one forward per lockstep step)\n")  # fmt: skip
    rows = {}
    for name in ("opt", "temporal+spatial"):  # batch_key_frames: its default, "auto"
        attack = make_attack(name, optimizer="opt", query_budget=args.budget, seed=args.seed)
        rows[name] = lockstep_run(attack, counted, chosen, args.budget, args.max_batch,
                                  args.device, width)  # fmt: skip
    print(
        "| attack | queries | forwards | clips per forward | q/s | share of bare best | q per CPU s "
        "| init clips per request | optimisation clips per request | init share of queries |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (results, wall, forwards, log, cpu) in rows.items():
        q = sum(r.queries for r in results)
        clips, reqs = Counter(), Counter()
        for _, phase, k, _ in log:
            clips[phase] += k
            reqs[phase] += 1
        per = {ph: clips[ph] / reqs[ph] if reqs[ph] else float("nan") for ph in clips}
        print(f"| {name} | {q} | {forwards} | {q / forwards:.1f} | {q / wall:,.0f} | "
              f"{100 * q / wall / top:.0f} % | {q / cpu:,.0f} | {per.get('init', float('nan')):.2f} | "
              f"{per.get('optimisation', float('nan')):.2f} | {100 * clips['init'] / q:.0f} % |")  # fmt: skip
    (r_o, w_o, f_o, _, c_o), (r_t, w_t, f_t, _, c_t) = rows["opt"], rows["temporal+spatial"]
    q_o, q_t = sum(r.queries for r in r_o), sum(r.queries for r in r_t)
    print(
        f"\ntemporal+spatial / opt, clips per forward: {(q_t / f_t) / (q_o / f_o):.2f} (goal "
        f">= 0.8); q/s: {(q_t / w_t) / (q_o / w_o):.2f}; q per CPU s: {(q_t / c_t) / (q_o / c_o):.2f}"
    )
    for name, (results, _, _, log, _) in rows.items():
        steps = Counter(v for *_, v in log)  # a video's requests: the steps it took part in
        print(f"{name}: steps per video (one request a step) mean {sum(steps.values()) / len(steps):.0f}, "
              f"max {max(steps.values())}; queries per step per video "
              f"{sum(r.queries for r in results) / sum(steps.values()):.2f}")  # fmt: skip
        stops = Counter(r.stop_reason for r in results)
        ok = sum(r.success for r in results)
        print(f"{name}: successes {ok}/{len(results)}, stop reasons {dict(stops)}, median "
              f"queries {sorted(r.queries for r in results)[len(results) // 2]}")  # fmt: skip


def header(argv: list[str] | None) -> None:
    """The command, the commit and the machine's load, for the printout's header."""
    cmd = " ".join(sys.argv if argv is None else [sys.argv[0], *argv])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# command: {cmd}\n# commit: {commit}\n# load average (1, 5, 15 min) at start: "
          f"{load} on {os.cpu_count()} CPUs")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="c3d", choices=["c3d", "lrcn"])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--width", type=int, default=0,
                    help="part 3: at most this many videos in lockstep (0: all --videos)")  # fmt: skip
    ap.add_argument("--budget", type=int, default=1500, help="query budget per video")
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (at most 2 here)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per batch size")
    ap.add_argument("--max-batch", type=int, default=512, help="largest batch size timed")
    ap.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="oracle's clips per forward (0: the best bare batch size)",
    )
    ap.add_argument("--skip-single", action="store_true", help="skip the one-clip-per-query run")
    ap.add_argument("--lockstep-only", action="store_true",
                    help="only part 3: opt against temporal+spatial at one lockstep width")  # fmt: skip
    ap.add_argument("--untrained", action="store_true", help="random weights (no checkpoint)")
    ap.add_argument("--checkpoint", help="a model checkpoint instead of the default")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    header(argv)

    from hba_lib.data.synthetic import SyntheticActions

    model = load_model(args.model, args.device, args.untrained, args.checkpoint)
    data = SyntheticActions(split="test")
    chosen = attack_set(data, model, args.videos, args.candidates, seed=args.seed)
    shape = tuple(chosen.xs.shape[1:])
    dev_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"# Opt-attack throughput: {args.model} on {dev_name} ({args.device}), "
          f"torch threads {torch.get_num_threads()}, video {shape}")  # fmt: skip
    print(f"# {len(chosen.labels)} videos, budget {args.budget} queries each, "
          f"{args.candidates} candidates, seed {args.seed}\n")  # fmt: skip

    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    sizes = [s for s in sizes if s <= args.max_batch]
    bare = bare_throughput(model, shape, args.device, args.seconds, sizes)
    best_bs = max(bare, key=bare.get)
    print("| batch | bare model clips/s |\n|---:|---:|")
    for bs, v in bare.items():
        print(f"| {bs} | {v:,.0f} |")
    print(f"\nbest-batch throughput: {bare[best_bs]:,.0f} clips/s at batch {best_bs}\n")

    if args.lockstep_only:
        lockstep_comparison(args, model, chosen, bare[best_bs])
        after = bare_throughput(model, shape, args.device, args.seconds, [best_bs])[best_bs]
        print(f"\nbare throughput at batch {best_bs} again after the runs: {after:,.0f} clips/s")
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return 0
    chunk = args.chunk or best_bs
    print(f"oracle chunk: {chunk} clips per forward\n")
    counted = CountingModel(model)
    cfg = OptAttackConfig(query_budget=args.budget, seed=args.seed)
    base = Oracle(counted, max_batch=chunk)
    runs: dict[str, tuple[float, int, list]] = {}

    def timed(name, fn):
        sync(args.device)
        counted.calls = counted.clips = 0
        t0 = time.perf_counter()
        results = fn()
        sync(args.device)
        wall = time.perf_counter() - t0
        q = sum(r.queries for r in results)
        assert q == counted.clips, "every clip the model saw is a counted query"
        runs[name] = (wall, q, results)
        print(f"  {name:<36} {q:>7} queries in {wall:7.1f} s = {q / wall:8,.0f} q/s "
              f"({q / counted.calls:.1f} clips per forward)")  # fmt: skip

    def per_video(attack, max_batch):
        out = []
        for i in range(len(chosen.labels)):
            oracle = Oracle(counted, budget=args.budget, max_batch=max_batch)
            out.append(attack.run(oracle, chosen.xs[i], chosen.labels[i],
                                  candidates=chosen.candidates[i]))  # fmt: skip
        return out

    print("attack runs (same videos, seed and budget):")
    if not args.skip_single:
        timed("one clip per query", lambda: per_video(OptAttack(cfg, lockstep=False), 1))
    timed("batched probes, one video", lambda: per_video(OptAttack(cfg), chunk))
    timed("batched probes, videos in lockstep", lambda: OptAttack(cfg).run_many(
        base, chosen.xs, chosen.labels, candidates=chosen.candidates))  # fmt: skip

    ref = next(iter(runs.values()))[2]
    uncut = [i for i, r in enumerate(ref) if r.stop_reason != "budget_exhausted"]
    same = all(
        res[i].queries == ref[i].queries and torch.equal(res[i].x_adv, ref[i].x_adv)
        for _, _, res in runs.values()
        for i in uncut
    )
    print(
        f"\nidentical queries and adversarial videos across the runs, for the {len(uncut)} "
        f"videos the budget did not cut: {same}"
    )
    print(
        "(where the budget cuts, a lockstep step that does not fit is refused whole, so the "
        "runs stop at different points)"
    )
    after = bare_throughput(model, shape, args.device, args.seconds, [best_bs])[best_bs]
    print(f"bare throughput at batch {best_bs} again after the runs: {after:,.0f} clips/s")
    top = max(bare[best_bs], after)
    print(f"\n| run | queries/s | share of best-batch bare throughput ({top:,.0f} clips/s) |")
    print("|---|---:|---:|")
    for name, (wall, q, _) in runs.items():
        print(f"| {name} | {q / wall:,.0f} | {100 * q / wall / top:.0f} % |")
    if "one clip per query" in runs:
        w1, q1, _ = runs["one clip per query"]
        for name, (wall, q, _) in runs.items():
            if name != "one clip per query":
                print(f"batching gain, {name}: {(q / wall) / (q1 / w1):.2f}x")
    ok = sum(r.success for r in ref)
    print(f"\nsuccesses {ok}/{len(ref)}; stop reasons {[r.stop_reason for r in ref]}")
    lockstep_comparison(args, model, chosen, top)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
