"""Opt-attack vs. ART's Sign-OPT (untargeted) and HopSkipJump: same videos, model and budget.

Every clip any attack evaluates is a query of the same kind of oracle (one fresh oracle per video
and attack, with the same budget). HopSkipJump starts from Opt-attack's initial video (its
initialisation queries are counted in its total). Prints a markdown table of FR, median queries
(failures included), MAP and wall time. Needs the optional extra ``peers`` (ART).

    .venv/bin/python benchmarks/peers.py --videos 3 --budget 3000     # a few minutes on 2 CPUs
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from hba_lib import metrics
from hba_lib.attacks import OptAttack, OptAttackConfig, attack_set
from hba_lib.oracle import Oracle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="c3d", choices=["c3d", "lrcn"])
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--budget", type=int, default=3000, help="query budget per video and attack")
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attacks", default="opt,signopt,hsj")
    ap.add_argument("--checkpoint", help="a model checkpoint instead of the default")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hba_lib.attacks.peers import art_available, hop_skip_jump, sign_opt_untargeted
    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model, load_model_checkpoint

    if not art_available():
        print("ART is not installed: pip install -e '.[peers]'", file=sys.stderr)
        return 1
    import art

    if args.checkpoint:
        model = load_model_checkpoint(args.checkpoint, args.device)
    else:
        model = load_default_model(args.model, device=args.device)
    data = SyntheticActions(split="test")
    k = len(data.classes)
    chosen = attack_set(data, model, args.videos, args.candidates, seed=args.seed)
    cfg = OptAttackConfig(query_budget=args.budget, seed=args.seed)
    base = Oracle(model)
    wanted = args.attacks.split(",")
    results: dict[str, list] = {}
    t_all = time.perf_counter()
    names = {
        "opt": "Opt-attack (this repo)",
        "signopt": "ART Sign-OPT untargeted",
        "hsj": "ART HopSkipJump (same start)",
    }

    def attack_one(short: str, i: int):
        x, y, oracle = chosen.xs[i], chosen.labels[i], base.fork(args.budget)
        if short == "opt":
            return OptAttack(cfg).run(oracle, x, y, candidates=chosen.candidates[i])
        if short == "signopt":
            return sign_opt_untargeted(oracle, x, y, k, seed=args.seed)
        return hop_skip_jump(oracle, x, y, k, chosen.candidates[i], cfg, seed=args.seed)

    for i in range(len(chosen.labels)):
        for short, name in names.items():
            if short not in wanted:
                continue
            res = attack_one(short, i)
            results.setdefault(name, []).append(res)
            print(f"video {chosen.indices[i]:>3} (class {chosen.labels[i]:>2}) {name:<30} "
                  f"{res.summary()}", file=sys.stderr, flush=True)  # fmt: skip

    source = args.checkpoint or "default checkpoint"
    print(f"\n{args.model} ({source}), synthetic test set, {len(chosen.labels)} "
          f"correctly classified videos, budget {args.budget} queries per video, untargeted, "
          f"seed {args.seed}, ART {art.__version__}, torch threads {torch.get_num_threads()}, "
          f"{args.device}; total {time.perf_counter() - t_all:.0f} s\n")  # fmt: skip
    print("| attack | FR % | median queries | MAP (0-255) | wall time s / video |")
    print("|---|---:|---:|---:|---:|")
    for name, rs in results.items():
        fr = 100 * metrics.fooling_rate(rs)
        mq = metrics.median_queries(rs)
        t = sum(r.wall_time for r in rs) / len(rs)
        print(f"| {name} | {fr:.0f} | {mq:.0f} | {metrics.mean_map(rs):.2f} | {t:.1f} |")
    for name, rs in results.items():
        clean = sum(bool(r.info.get("returned_clean_video")) for r in rs)
        capped = sum(bool(r.info.get("beyond_local_search_cap_20")) for r in rs)
        if clean or capped:
            print(
                f"\n{name}: {clean} video(s) returned unchanged (no adversarial start found), "
                f"{capped} ended beyond Sign-OPT's local-search cap of 20."
            )
    print("\nMQ counts failures at the queries they spent; MAP is over successful videos. "
          f"Opt-attack: q={cfg.q}, beta={cfg.beta}, tol={cfg.tol}, "
          f"{cfg.max_beta_decays} beta decays, {args.candidates} candidates.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
