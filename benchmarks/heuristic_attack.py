"""The paper's three configurations and every optimizer, beside ART's peers, at equal budgets.

For each model: the same correctly classified synthetic test videos, one budget, untargeted,
every query counted by one kind of oracle. Prints

1. the paper's metrics per configuration (FR, MQ with init / opt, MAP, MAP*, S): Opt-attack with
   the paper's constants run to its stopping rule (``--mq-budget``, the paper's protocol), and
   every other optimizer at the equal budget; the MQ ratio ``temporal+spatial / opt`` (paper:
   0.68-0.73 at FR 100 %);
2. the median MAP reached within 2k, 5k and 10k queries by each configuration x optimizer and
   by ART Sign-OPT and ART HopSkipJump (HopSkipJump from Opt-attack's start, its queries
   charged), a video without an adversarial point by then counting as ``inf``;
3. the goal: the best hba configuration's median MAP at the last budget against half the better
   peer's, FR 100 %, and no clean video returned as a success.

Every result is appended to a JSON-lines file as it finishes (``--out``), so a long run keeps
what it measured, and the same command run again resumes: attacks already in the file (same
videos) are read back, not rerun (``--fresh`` ignores the file). Needs the ``peers`` extra for the ART rows (``--peers ''`` skips them).

    .venv/bin/python benchmarks/heuristic_attack.py --model lrcn --videos 20 --budget 10000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hba_lib import metrics
from hba_lib.attacks import attack_set, make_attack

CHECKPOINTS = (2000, 5000, 10000)


class _Recorded:
    """An attack result read back from the JSON-lines file (what the tables need of it)."""

    def __init__(self, rec: dict) -> None:
        self.attacked, self.success, self.queries = rec["attacked"], rec["success"], rec["queries"]
        self.queries_by_phase = {"init": rec["init"], "optimisation": rec["opt"]}
        self.map, self.map_star, self.sparsity = rec["map"], rec["map_star"], rec["sparsity"]
        self.wall_time, self.started = rec["wall_time"], None


def map_at(result, budgets) -> list[float]:
    """Best MAP within each budget (``inf`` before the first adversarial point)."""
    if not result.attacked:
        return [math.nan] * len(budgets)
    if not result.trace:  # peers: one point, at their total queries
        return [result.map if result.success and result.queries <= b else math.inf
                for b in budgets]  # fmt: skip
    return [float(v) for v in metrics.best_at(result.trace, budgets, field="map")]


def row(name: str, video: int, res, budgets) -> dict:
    """One JSON-lines record."""
    return {
        "attack": name, "video": video, "success": bool(res.success),
        "attacked": bool(res.attacked), "queries": int(res.queries),
        "init": int(res.queries_by_phase.get("init", 0)),
        "opt": int(res.queries_by_phase.get("optimisation", 0)),
        "map": float(res.map), "map_star": float(res.map_star), "sparsity": float(res.sparsity),
        "distance": float(res.distance), "stop": res.stop_reason,
        "clean_returned": res.distance == 0.0,
        "map_at": map_at(res, budgets), "wall_time": float(res.wall_time),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="c3d", choices=["c3d", "lrcn"])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--budget", type=int, default=10000)
    ap.add_argument(
        "--mq-budget",
        type=int,
        default=50000,
        help="budget of the paper's Opt-attack runs (to its stopping rule)",
    )
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", default="opt,temporal,temporal+spatial")
    ap.add_argument("--optimizers", default="opt,sign-opt")
    ap.add_argument(
        "--optimizer-configs",
        default="",
        help="configurations the optimizers other than opt run on (default: --configs)",
    )
    ap.add_argument(
        "--after-peers",
        default="",
        help="more 'config/optimizer' runs after the peers, e.g. opt/sign-opt",
    )
    ap.add_argument(
        "--extra-optimizers",
        default="opt-authors,opt-relative",
        help="optimizers run on temporal+spatial only, at --budget",
    )
    ap.add_argument("--peers", default="signopt,hsj")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, help="JSON-lines file (default: runs/bench/...)")
    ap.add_argument("--fresh", action="store_true", help="ignore what --out already holds")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hba_lib import paths
    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model
    from hba_lib.oracle import Oracle

    budgets = [b for b in CHECKPOINTS if b < args.budget] + [args.budget]
    out = (
        args.out
        or paths.RUNS
        / "bench"
        / f"heuristic_{args.model}_{args.videos}v_{args.budget}q_seed{args.seed}.jsonl"
    )  # noqa: E501
    paths.ensure_dir(out.parent)
    model = load_default_model(args.model, device=args.device)
    data = SyntheticActions(split="test")
    chosen = attack_set(data, model, args.videos, args.candidates, seed=args.seed)
    base = Oracle(model)
    records: list[dict] = []
    results_by: dict[str, list] = {}
    done: dict[str, list[dict]] = {}
    if out.exists() and not args.fresh:  # resume: reuse what an earlier run of this file measured
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            done.setdefault(rec["attack"], []).append(rec)
        done = {k: v for k, v in done.items() if [r["video"] for r in v] == chosen.indices}
        if done:
            print(f"resuming {out}: {', '.join(done)} already measured", file=sys.stderr)
    t_all = time.perf_counter()

    def reuse(name: str) -> bool:
        """Take an attack's rows from the resumed file (no rerun); False if it is not there."""
        if name not in done:
            return False
        records.extend(done[name])
        results_by[name] = [_Recorded(r) for r in done[name]]
        return True

    def keep(name: str, results) -> None:
        with out.open("a") as f:
            for i, res in zip(chosen.indices, results):
                rec = row(name, i, res, budgets)
                records.append(rec)
                f.write(json.dumps(rec) + "\n")
        rs = [r for r in records if r["attack"] == name]
        print(f"[{time.perf_counter() - t_all:6.0f} s] {name:<34} FR "
              f"{100 * np.mean([r['success'] for r in rs]):.0f} % median MAP "
              f"{np.median([r['map'] if r['success'] else math.inf for r in rs]):.2f}",
              file=sys.stderr, flush=True)  # fmt: skip

    def measure(config: str, optimizer: str, budget: int) -> None:
        """Run one configuration on every video in lockstep, unless the resumed file has it."""
        name = f"{config} / {optimizer}"
        if reuse(name):
            return
        attack = make_attack(config, optimizer=optimizer, query_budget=budget, seed=args.seed)
        res = attack.run_many(base, chosen.xs, chosen.labels, candidates=chosen.candidates)
        results_by[name] = res
        keep(name, res)

    # the paper's protocol: Opt-attack with the paper's constants, to its stopping rule
    for config in args.configs.split(","):
        measure(config, "opt", args.mq_budget)
    # the other optimizers, at the equal budget
    for opt_name in [o for o in args.optimizers.split(",") if o and o != "opt"]:
        for config in (args.optimizer_configs or args.configs).split(","):
            measure(config, opt_name, args.budget)

    peers = [p for p in args.peers.split(",") if p]
    if peers:
        from hba_lib.attacks.peers import art_available, hop_skip_jump, sign_opt_untargeted

        if not art_available():
            print("ART is not installed: pip install -e '.[peers]'", file=sys.stderr)
            return 1
        k = len(data.classes)
        for short in peers:
            name = {"signopt": "ART Sign-OPT", "hsj": "ART HopSkipJump (same start)"}[short]
            if reuse(name):
                continue
            res = []
            for i in range(len(chosen.labels)):
                x, y, oracle = chosen.xs[i], chosen.labels[i], base.fork(args.budget)
                if short == "signopt":
                    res.append(sign_opt_untargeted(oracle, x, y, k, seed=args.seed))
                else:
                    res.append(hop_skip_jump(oracle, x, y, k, chosen.candidates[i],
                                             seed=args.seed))  # fmt: skip
            results_by[name] = res
            keep(name, res)

    # more runs once the peers are in: the remaining optimizers on the paper's full attack
    later = [c.split("/") for c in args.after_peers.split(",") if c]
    later += [("temporal+spatial", o) for o in args.extra_optimizers.split(",") if o]
    for config, opt_name in later:
        measure(config, opt_name, args.budget)

    report(args, results_by, records, budgets, time.perf_counter() - t_all)
    print(f"\nper-video records: {out}")
    return 0


def report(args, results_by: dict, records: list[dict], budgets: list[int], seconds: float):
    """Print the three tables."""
    n = len(next(iter(results_by.values())))
    print(f"\n{args.model} (default checkpoint), synthetic test set, {n} correctly classified "
          f"videos (seed {args.seed}), {args.candidates} candidates, budget {args.budget} "
          f"queries per video and attack, untargeted, torch threads {args.threads}, "
          f"{args.device}; total {seconds:.0f} s\n")  # fmt: skip
    print(
        "## The paper's metrics (MQ: median queries, failures at what they spent; '/ opt' rows "
        f"ran to the stopping rule within {args.mq_budget:,} queries, the others within "
        f"{args.budget:,})\n"
    )
    table = metrics.results_table({k: v for k, v in results_by.items() if not k.startswith("ART")})
    table = table.drop(columns=["time s"])
    print("| attack | " + " | ".join(table.columns) + " |")
    print("|---|" + "---:|" * len(table.columns))
    for name, vals in table.iterrows():
        cells = [f"{v:,.0f}" if col in ("videos", "MQ", "MQ init", "MQ opt") else f"{v:,.2f}"
                 for col, v in vals.items()]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    for opt_name in dict.fromkeys(["opt", *args.optimizers.split(",")]):
        a, b = f"opt / {opt_name}", f"temporal+spatial / {opt_name}"
        if a in results_by and b in results_by:
            ratio = metrics.median_queries(results_by[b]) / metrics.median_queries(results_by[a])
            print(f"\nMQ ratio temporal+spatial / opt ({opt_name}): {ratio:.2f} (paper 0.68-0.73)")

    print("\n## Median MAP (0-255) within a budget (a video not yet fooled counts as inf)\n")
    print("| attack | " + " | ".join(f"{b:,} queries" for b in budgets)
          + f" | FR % at {budgets[-1]:,} |")  # fmt: skip
    print("|---|" + "---:|" * (len(budgets) + 1))
    medians = {}
    for name in results_by:
        rs = [r for r in records if r["attack"] == name]
        at = np.array([r["map_at"] for r in rs], dtype=float)
        medians[name] = np.median(at, axis=0)
        fr = 100 * np.mean(np.isfinite(at[:, -1]))  # fooled within the last budget
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in medians[name]) + f" | {fr:.0f} |")

    peers = {k: v[-1] for k, v in medians.items() if k.startswith("ART")}
    ours = {k: v[-1] for k, v in medians.items() if not k.startswith("ART")}
    clean = [r for r in records if r["success"] and r["clean_returned"]]
    if peers and ours:
        best_name = min(ours, key=ours.get)
        best_peer = min(peers, key=peers.get)
        fr = 100 * metrics.fooling_rate(results_by[best_name])
        goal = ours[best_name] <= 0.5 * peers[best_peer] and fr == 100 and not clean
        print(
            f"\nGoal (median MAP at {budgets[-1]:,} <= half the better peer's, FR 100 %, no "
            f"clean video as a success): best hba {best_name} {ours[best_name]:.2f}, better "
            f"peer {best_peer} {peers[best_peer]:.2f} (half: {0.5 * peers[best_peer]:.2f}), "
            f"FR {fr:.0f} %, clean successes {len(clean)}: {'MET' if goal else 'MISSED'}"
        )


if __name__ == "__main__":
    sys.exit(main())
