"""A model's probe profile learned from its own attacks on TRAINING videos (issue 22, round 9).

The edge priors (:mod:`hba_lib.oracle.priors`) say where a probe should move pixels from the
clean video alone. What they cannot say is *which frames and which positions the model
weighs*: on C3D the white-box average of the margin gradient's energy over frames and
positions (of other videos), as a multiplier of ``edge:3``, is worth x1.63 in probes
(``cpu_prior_structure_train.txt``), the largest coarse merit left, but an attacker has no
gradient. It has queries: this script learns the same kind of profile from the perturbations
that the attack itself finds, black-box, on videos of the *training* split (no ``val`` or test
video is touched), so what a red-teamer could do with their own clips before attacking.

For each of ``--videos`` correctly classified training videos it runs ``--optimizer`` on the
whole video (``opt``, untargeted, ``--budget`` queries each, counted and printed), takes the
returned perturbation ``p``, and its energy ``e = sum_c p^2`` normalised to sum 1; then

    frames[t]      = mean over the videos of sum_{h,w} e[t, h, w]
    positions[h,w] = mean over the videos of sum_t e[t, h, w], averaged over blur x blur pixels
    profile        = frames[t] * positions[h, w] / its mean            ([T, H, W], mean 1)

(separable, as the white-box row it imitates). Then, white-box and only as a check, it reads
the profile's probe-count merit ``M`` (``gradient_energy.prior_merit``) as a multiplier of
``lcedge:3`` at the clean video of ``--check`` *other* training videos, at each blur of
``--blurs`` and powers 0.5 and 1, and saves the profile at the blur with the highest median
``M`` at power 1 (a rule fixed before the script ran) to ``--out``.
``benchmarks/optimizer_variants.py prof:Q`` multiplies the prior's weights by it.

    .venv/bin/python benchmarks/learn_profile.py --model c3d \\
        --out benchmarks/results/profiles/c3d_lcedge3.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hba_lib.paths import load_script


def profile_from(perturbations: list[torch.Tensor], blur: int = 1) -> torch.Tensor:
    """The separable frames x positions profile (module docstring) of perturbations
    ``[C, T, H, W]``: ``[T, H, W]``, mean 1. A zero perturbation is a clear error."""
    if not perturbations:
        raise ValueError("no perturbation to learn a profile from")
    if blur < 1 or blur % 2 != 1:
        raise ValueError(f"blur {blur}: need an odd whole number >= 1")
    e = torch.stack([(p.double() ** 2).sum(0) for p in perturbations])  # [N, T, H, W]
    total = e.sum((1, 2, 3), keepdim=True)
    if bool((total == 0).any()):
        raise ValueError("a perturbation is zero: it says nothing about where the model looks")
    e = e / total
    frames = e.sum((2, 3)).mean(0)  # [T]
    positions = e.sum(1).mean(0)  # [H, W]
    if blur > 1:
        positions = F.avg_pool2d(positions[None, None], blur, 1, blur // 2,
                                 count_include_pad=False)[0, 0]  # fmt: skip
    prof = frames[:, None, None] * positions[None]
    return (prof / prof.mean()).float()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="c3d")
    ap.add_argument("--videos", type=int, default=16, help="training videos attacked to learn it")
    ap.add_argument("--check", type=int, default=8, help="other training videos: white-box merit")
    ap.add_argument("--budget", type=int, default=5000)
    ap.add_argument("--optimizer", default="hsja+lcedge:3+top:0.3:0.7")
    ap.add_argument("--blurs", default="1,3,5")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hba_lib.attacks import attack_set
    from hba_lib.attacks.heuristic import make_optimizer
    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model
    from hba_lib.oracle import Oracle
    from hba_lib.oracle.priors import parse_prior

    gradient_energy = load_script("benchmarks/gradient_energy.py")
    model = load_default_model(args.model)
    chosen = attack_set(
        SyntheticActions(split="train"), model, args.videos + args.check, 10, seed=0
    )
    learn, check = slice(0, args.videos), slice(args.videos, args.videos + args.check)
    t0 = time.time()
    attack = make_optimizer(args.optimizer, query_budget=args.budget, seed=0)
    res = attack.run_many(Oracle(model), chosen.xs[learn], chosen.labels[learn],
                          candidates=chosen.candidates[learn], progress=False)  # fmt: skip
    if not all(r.success for r in res):
        raise SystemExit("an attack failed: no profile from a clean video")
    perts = [r.x_adv - x for r, x in zip(res, chosen.xs[learn])]
    queries = sum(int(r.queries) for r in res)
    print(f"# {args.model}: {args.optimizer} on {len(res)} training videos "
          f"{chosen.indices[learn]}, {args.budget} queries each, {queries} queries in all "
          f"(counted), {time.time() - t0:.0f} s; median L2 "
          f"{np.median([float(p.norm()) for p in perts]):.3f}")  # fmt: skip
    prior = parse_prior("lcedge:3")
    blurs = [int(b) for b in args.blurs.split(",")]
    profiles = {b: profile_from(perts, b) for b in blurs}
    print(f"\nWhite-box check on {args.check} other training videos {chosen.indices[check]}: "
          "M of lcedge:3 x profile^Q over lcedge:3's, and cos(S^2 g, g); medians (min-max)\n")  # fmt: skip
    print("| blur | Q | M / lcedge:3's | cos(S^2 g, g) (lcedge:3's) |\n|---:|---:|---|---|")
    base = []  # each check video's gradient, lcedge:3's weights, merit and cosine: once each
    for x, y in zip(chosen.xs[check], chosen.labels[check]):
        g = gradient_energy.margin_gradient(model, x, int(y)).double()
        w0 = prior.std(x).double()[0] ** 2 - prior.floor
        w0 = w0 / w0.mean()
        base.append((g, w0, *gradient_energy.prior_merit(g, (w0 + prior.floor).expand_as(g))))
    best, best_m = None, -1.0
    for b in blurs:
        for q in (0.5, 1.0):
            ms, coss, cos0s = [], [], []
            for g, w0, m0, cos0 in base:
                w = w0 * profiles[b].double() ** q
                m, cos = gradient_energy.prior_merit(g, (w / w.mean() + prior.floor).expand_as(g))
                ms.append(m / m0), coss.append(cos), cos0s.append(cos0)
            med = float(np.median(ms))
            print(f"| {b} | {q:g} | {med:.2f} ({min(ms):.2f}-{max(ms):.2f}) | "
                  f"{np.median(coss):.3f} ({np.median(cos0s):.3f}) |")  # fmt: skip
            if q == 1.0 and med > best_m:
                best, best_m = b, med
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"profile": profiles[best], "model": args.model, "blur": best,
                "videos": list(chosen.indices[learn]), "budget": args.budget,
                "optimizer": args.optimizer, "queries": queries}, out)  # fmt: skip
    print(f"\nsaved the profile at blur {best} (the highest median M at Q = 1) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
