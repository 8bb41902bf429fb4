"""Would probes that follow the perturbation found so far estimate the normal better than the
edge priors? A white-box look at the attack's own boundary points (issue 22); never an attack
that is reported.

``gradient_energy.py`` measured priors at *clean* videos. HopSkipJump draws its probes at
boundary points ``x_adv = x + p``, and there the perturbation ``p`` itself says where the
attack has moved so far. This runs ``--optimizer`` (default ``hsja+lcedge:3``) on ``--videos``
videos of ``--split`` (default ``val``: no reported table uses them) to each budget of
``--budgets``, takes the gradient ``g`` of the top-2 logit margin at each returned ``x_adv``
(white-box), and prints the probe-count factor ``M`` and the lean ``cos(S^2 g, g)`` of
``gradient_energy.prior_merit`` for per-pixel variances built from:

- ``x (lcedge:3)``: the clean video's edge prior (what the attack used), without its floor;
- ``eK`` / ``eKtT``: the perturbation's energy, summed over the channels, averaged over ``K x K``
  pixels (and ``T`` frames), mean 1 (``hba_lib.oracle.priors.energy_weights``);
- mixtures and products of the two (``x*e3^.5``: the edge prior times ``e3`` to the power 1/2).

The floor 0.01 is added to every variance. The merit of ``e`` grows with the budget (the
perturbation concentrates where the normal's energy is); what it does *not* say is where an
attack whose prior follows ``p`` settles: ``benchmarks/optimizer_variants.py pe:B:K`` ran that
on the ``val`` videos, and it ended far behind (``docs/algorithm.md``).

Two more looks at the same points (``--look``):

- ``narrow``: before the narrowing (``top:K:F``) keeps the ``K`` share of the values, which
  ranking keeps most of the normal? For each score (``|p|``, as ``hba_lib`` ranks, and the
  energy ``eK`` / ``eKtT`` above) the share of ``|g|^2`` the top ``--keep`` values hold
  (:func:`capture`; at random ``--keep`` itself) and the cosine of the narrowed direction
  ``p * mask`` with ``g``. Default ``--optimizer hsja+lcedge:3 --budgets 7000``: the point at
  which ``top:0.3:0.7`` narrows. It led to the ``nb:K`` variant of
  ``benchmarks/optimizer_variants.py``.
- ``span``: does the attack throw away what its estimates learned? Each sign estimate ``v_t``
  of the normal is recorded; at the returned ``x_adv`` the printout sets ``cos(p, g)`` beside
  the largest cosine with ``g`` of any direction in the span of the last ``k`` estimates
  (with and without ``p``; :func:`span_cosine`) and of their mean, everything restricted to
  the values the returned video changes (the narrowed mask). Were the span's cosine well above
  ``p``'s, a better combination of the past estimates would pay (momentum, averaging); where
  they are equal, ``p`` already holds what the queries told.

The printouts ``benchmarks/results/cpu_perturbation_merit_val.txt`` and
``cpu_boundary_point_looks_val.txt``::

    .venv/bin/python benchmarks/perturbation_merit.py --model c3d
    .venv/bin/python benchmarks/perturbation_merit.py --model lrcn
    .venv/bin/python benchmarks/perturbation_merit.py --model c3d --look narrow --budgets 7000
    .venv/bin/python benchmarks/perturbation_merit.py --model c3d --look span \
        --optimizer hsja+lcedge:3+top:0.3:0.7 --budgets 10000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hba_lib.oracle.priors import energy_weights
from hba_lib.paths import load_script

FLOOR = 0.01


def capture(g: torch.Tensor, score: torch.Tensor, keep: float) -> tuple[float, torch.Tensor]:
    """``(share, mask)``: the mask of the ``keep`` share of the values with the largest
    ``score`` (ties at the threshold kept, as ``HopSkipJump.narrow`` keeps them) and the share
    of ``sum(g^2)`` it holds."""
    k = max(1, int(keep * score.numel()))
    threshold = score.flatten().topk(k).values[-1]
    mask = (score >= threshold).to(g.dtype)
    g2 = g.double() ** 2
    return float((g2 * mask).sum() / g2.sum()), mask


def span_cosine(vectors: torch.Tensor, g: torch.Tensor) -> float:
    """The largest ``cos(a, g)`` over the directions ``a`` in the span of ``vectors``
    (``[k, ...]``): the norm of ``g``'s projection onto the span over ``||g||``."""
    q, _ = torch.linalg.qr(vectors.flatten(1).double().T)
    gf = g.flatten().double()
    return float((q.T @ gf).norm() / gf.norm())


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() * b.double()).sum() / (a.double().norm() * b.double().norm()))


def _row(name: str, values: list[float], digits: int = 3) -> str:
    return (f"| {name} | {np.median(values):.{digits}f} | [{min(values):.{digits}f}, "
            f"{max(values):.{digits}f}] |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="c3d")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--split", default="val")
    ap.add_argument("--optimizer", default="hsja+lcedge:3")
    ap.add_argument("--budgets", default="2000,5000,9000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--look", choices=("merit", "narrow", "span"), default="merit")
    ap.add_argument("--keep", type=float, default=0.3, help="--look narrow: the share kept")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hba_lib.attacks import attack_set
    from hba_lib.attacks.heuristic import make_optimizer
    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model
    from hba_lib.oracle import Oracle
    from hba_lib.oracle.priors import parse_prior

    gradient_energy = load_script("benchmarks/gradient_energy.py")
    margin_gradient, prior_merit = gradient_energy.margin_gradient, gradient_energy.prior_merit
    model = load_default_model(args.model)
    chosen = attack_set(SyntheticActions(split=args.split), model, args.videos, 10, seed=0)
    if args.look != "merit":
        return _looks(args, model, chosen, margin_gradient, make_optimizer, Oracle)
    prior = parse_prior("lcedge:3")

    def norm(w: torch.Tensor) -> torch.Tensor:
        return w / w.mean()

    print(f"## {args.model}, {args.videos} {args.split} videos, {args.optimizer}, seed 0: M (and "
          "cos(S^2 g, g)) at the returned x_adv, medians [min, max] over the videos")  # fmt: skip
    for budget in (int(b) for b in args.budgets.split(",")):
        attack = make_optimizer(args.optimizer, query_budget=budget, seed=0)
        res = attack.run_many(Oracle(model), chosen.xs, chosen.labels, candidates=chosen.candidates)
        rows = []
        for x, y, r in zip(chosen.xs, chosen.labels, res):
            p = r.x_adv - x
            g = margin_gradient(model, r.x_adv, int(y))
            wx = norm(prior.std(x) ** 2 - prior.floor)
            e3, e5, e3t3, e1 = (energy_weights(p, 3), energy_weights(p, 5),
                                energy_weights(p, 3, 3), energy_weights(p, 1))  # fmt: skip
            variances = {
                "x (lcedge:3)": wx, "e3": e3, "e5": e5, "e3t3": e3t3, "e1": e1,
                "e3^.5": norm(e3.sqrt()), "(x+e3)/2": (wx + e3) / 2, "(x+e5)/2": (wx + e5) / 2,
                "(x+e3t3)/2": (wx + e3t3) / 2, ".7x+.3e3": 0.7 * wx + 0.3 * e3,
                "sqrt(x e3)": norm((wx * e3).sqrt()), "x*e3^.5": norm(wx * e3.sqrt()),
            }  # fmt: skip
            rows.append({k: prior_merit(g, v + FLOOR) for k, v in variances.items()})
        l2 = float(np.median([r.distance for r in res]))
        print(f"\n### {budget:,} queries (median L2 {l2:.3f})\n")
        print("| variance | M | [min, max] | cos(S^2 g, g) |\n|---|---:|---:|---:|")
        for k in rows[0]:
            m = [row[k][0] for row in rows]
            c = [row[k][1] for row in rows]
            print(f"| {k} | {np.median(m):.2f} | [{min(m):.2f}, {max(m):.2f}] | "
                  f"{np.median(c):.3f} |", flush=True)  # fmt: skip
    return 0


def _looks(args, model, chosen, margin_gradient, make_optimizer, Oracle) -> int:
    """``--look narrow`` and ``--look span`` (module docstring)."""
    from hba_lib.attacks.hsja import HopSkipJump

    estimates: list[torch.Tensor] = []
    original = HopSkipJump.normal

    def normal(self, st, goal, x_b, n, delta, generator):  # records each estimate
        v = yield from original(self, st, goal, x_b, n, delta, generator)
        if v is not None:
            estimates.append(v.clone())
        return v

    for budget in (int(b) for b in args.budgets.split(",")):
        print(f"## {args.model}, {args.videos} {args.split} videos, {args.optimizer}, seed 0, "
              f"{budget:,} queries, --look {args.look}: medians [min, max] over the videos\n")  # fmt: skip
        rows: dict[str, list[float]] = {}
        for x, y, cands in zip(chosen.xs, chosen.labels, chosen.candidates):
            estimates.clear()
            attack = make_optimizer(args.optimizer, query_budget=budget, seed=0)
            HopSkipJump.normal = normal
            try:
                r = attack.run(Oracle(model), x, int(y), candidates=cands)
            finally:
                HopSkipJump.normal = original
            p = r.x_adv - x
            g = -margin_gradient(model, r.x_adv, int(y))  # towards the adversarial side
            rows.setdefault("L2 of the returned video", []).append(float(p.norm()))
            if args.look == "narrow":
                scores = {"|p| (hba_lib)": p.abs()}
                for blur, frames in ((1, 1), (3, 1), (5, 1), (7, 1), (3, 3), (5, 3)):
                    tail = f"t{frames}" if frames > 1 else ""
                    scores[f"e{blur}{tail}"] = energy_weights(p, blur, frames)
                rows.setdefault("cos(p, g)", []).append(_cos(p, g))
                for name, score in scores.items():
                    share, mask = capture(g, score, args.keep)
                    rows.setdefault(f"{name}: share of |g|^2 kept", []).append(share)
                    rows.setdefault(f"{name}: cos(p * mask, g)", []).append(_cos(p * mask, g))
            else:
                m = (p != 0).to(p.dtype)  # the values the returned video changes
                gm = g * m
                vs = torch.stack(estimates) * m
                rows.setdefault("estimates", []).append(float(len(estimates)))
                rows.setdefault("cos(p, g)", []).append(_cos(p, gm))
                rows.setdefault("cos(last estimate, g)", []).append(_cos(vs[-1], gm))
                for k in (5, 10, 20, len(estimates)):
                    last = vs[-k:]
                    tag = "all the" if k == len(estimates) else f"the last {k}"
                    rows.setdefault(f"span of {tag} estimates", []).append(span_cosine(last, gm))
                    rows.setdefault(f"span of {tag} estimates and p", []).append(
                        span_cosine(torch.cat([last, p.unsqueeze(0)]), gm)
                    )
                    rows.setdefault(f"mean of {tag} estimates", []).append(_cos(last.mean(0), gm))
        print("| quantity | median | [min, max] |\n|---|---:|---:|")
        for name, values in rows.items():
            print(_row(name, values, 1 if name == "estimates" else 3), flush=True)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
