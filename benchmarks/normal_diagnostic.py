"""Is an optimizer held back by its estimate of the boundary's normal? A white-box diagnostic
(issue 22), never an attack.

HopSkipJump (and CGBA) estimate the normal at each boundary point from the signs of random
probes, then step. This script runs one row (``make_attack(config, optimizer=...)``) on
*training* videos of a default model twice, with every query and step as the library makes
them, and at each boundary point also computes the true normal there (autograd on the model's
top-2 logit margin, ``-grad(logit_y - max_{k != y} logit_k)``, in the mask, unit; no query):

- ``estimate``: the library's own run; the true normal only measures the estimate's cosine with
  it, whole and in the part orthogonal to the perturbation ``x_b - x`` (the *tangential* part,
  the one a step needs to move the point);
- ``true normal``: the probes are still queried and counted, then the estimate is replaced by
  the true normal, so the steps, bisections and budget are the same and only the direction is
  perfect.

If the second ends far below the first, the estimate, not the steps or the boundary's shape,
holds the L2 back (on LRCN: 0.354 against 0.813, ``cpu_optimizer_screen_lrcn_train.txt``)::

    .venv/bin/python benchmarks/normal_diagnostic.py --model lrcn --videos 6 --budget 10000
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from hba_lib.attacks import attack_set, make_attack
from hba_lib.attacks.heuristic import make_optimizer
from hba_lib.attacks.hsja import HopSkipJump
from hba_lib.oracle import Oracle
from hba_lib.oracle.queries import normalize
from hba_lib.paths import load_script

margin_gradient = load_script("benchmarks/gradient_energy.py").margin_gradient


def true_normal(model, st, goal, x_b: torch.Tensor) -> torch.Tensor:
    """The unit normal at ``x_b`` pointing into the adversarial side (minus the top-2 margin's
    gradient, :func:`gradient_energy.margin_gradient`), in ``st``'s mask."""
    g = -margin_gradient(model, x_b.detach(), goal.label)
    return normalize(g if st.mask is None else g * st.mask, st.mask)


def diagnosed(base: type[HopSkipJump], model, replace: bool, stats: dict) -> type[HopSkipJump]:
    """``base`` whose :meth:`normal` records the estimate's cosines with the true normal and,
    with ``replace``, steps on the true normal instead (after asking the same probes)."""

    class Diagnosed(base):
        def normal(self, st, goal, x_b, n, delta, generator):
            v = yield from super().normal(st, goal, x_b, n, delta, generator)
            g = true_normal(model, st, goal, x_b)
            if v is not None:
                r = st.theta if st.mask is None else st.theta * st.mask
                r = r / torch.linalg.vector_norm(r)
                gt, vt = g - (g * r).sum() * r, v - (v * r).sum() * r
                den = float(torch.linalg.vector_norm(gt) * torch.linalg.vector_norm(vt))
                stats["whole"].append(float((g * v).sum()))
                stats["tangential"].append(float((gt * vt).sum()) / den if den > 0 else 0.0)
            return g if replace else v

    return Diagnosed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lrcn", choices=["c3d", "lrcn"])
    p.add_argument("--split", default="train", help="tune and diagnose on training videos")
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--config", default="opt", help="opt, temporal or temporal+spatial")
    p.add_argument("--optimizer", default="hsja+edge:3+top:0.3:0.7", help="an hsja / cgba name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model

    probe = make_optimizer(args.optimizer, query_budget=args.budget, seed=args.seed)
    if not isinstance(probe, HopSkipJump):
        print(f"{args.optimizer!r} does not estimate a normal (hsja or cgba)", file=sys.stderr)
        return 2
    model = load_default_model(args.model)
    chosen = attack_set(SyntheticActions(args.split), model, args.videos, args.candidates,
                        seed=args.seed)  # fmt: skip
    print(f"# {args.model} (default checkpoint), synthetic {args.split} videos {chosen.indices}, "
          f"{args.candidates} candidates, seed {args.seed}, budget {args.budget:,}, "
          f"{args.config} / {args.optimizer}; white-box diagnostic, not an attack\n")  # fmt: skip
    print("| run | median L2 | median MAP | L2 per video | cos whole | cos tangential | s |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for label, replace in (("estimate", False), ("true normal", True)):
        stats: dict = {"whole": [], "tangential": []}
        cls = diagnosed(type(probe), model, replace, stats)
        attack = make_attack(args.config, optimizer=cls(probe.config))
        t0 = time.perf_counter()
        res = attack.run_many(Oracle(model), chosen.xs, chosen.labels,
                              candidates=chosen.candidates, progress=False)  # fmt: skip
        l2 = [r.distance if r.success else float("inf") for r in res]
        mp = [r.map if r.success else float("inf") for r in res]
        cos = "1" if replace else f"{np.median(stats['whole']):.3f}"
        tan = "1" if replace else f"{np.median(stats['tangential']):.3f}"
        print(f"| {label} | {np.median(l2):.3f} | {np.median(mp):.3f} | "
              f"{' '.join(f'{v:.2f}' for v in l2)} | {cos} | {tan} | "
              f"{time.perf_counter() - t0:.0f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
