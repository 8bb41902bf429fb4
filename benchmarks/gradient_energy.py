"""Where a default model's sensitivity lies: the diagnostic behind the probe prior (issue 22).

A white-box look, never an attack: for each *training* video of the synthetic set that the
model classifies correctly, the gradient ``g`` of the top-2 logit margin at the clean video
(autograd, float32, no oracle), then what share of ``||g||^2``

1. a low-frequency subspace keeps (``resize:S``: the orthogonal projection onto the span of
   its upsampled basis; ``dct:K``: its exact projection): the probes of QEBA and GeoDA can
   only see this share;
2. the top ``a`` % of the pixels hold, ranked by ``|g|`` itself (the best any per-pixel prior
   could do), by the edge map of the clean video (``hba_lib.oracle.priors.edge_map``: what
   ``prior="edge:P"`` weights the probes by), and at random (``a`` %);
3. what each probe prior (``--priors``) buys, two numbers (:func:`prior_merit`): ``M``, the
   factor by which it multiplies the probe count as far as the estimate's cosine with ``g`` goes,
   and ``cos(S^2 g, g)``, how far the direction the estimate points along is from ``g`` (its
   bias); beside them the same for ``|g|^2`` itself as the prior (a reference that knows the
   gradient, not a bound: ``M`` alone grows without limit as the variance piles onto the
   largest values, and the lean with it).

Prints medians over the videos, one table a model (the printout,
``benchmarks/results/cpu_gradient_energy_train.txt``, was made with the defaults)::

    .venv/bin/python benchmarks/gradient_energy.py --videos 10
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import torch

from hba_lib.data.synthetic import SyntheticActions
from hba_lib.models import load_default_model
from hba_lib.oracle.priors import edge_map, parse_prior
from hba_lib.oracle.subspace import parse_subspace

AREAS = (0.05, 0.10, 0.30)


def logits(model, v: torch.Tensor) -> torch.Tensor:
    """``model(v)`` for a batch that may require grad (the models' input check reads
    ``x.min()`` as a float, which warns then: the warning is silenced here, nothing else)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
        return model(v)


def margin_gradient(model, x: torch.Tensor, y: int) -> torch.Tensor:
    """The gradient of ``logit_y - max_{k != y} logit_k`` at ``x`` (``[C, T, H, W]``)."""
    v = x.clone().unsqueeze(0).requires_grad_(True)
    logits_ = logits(model, v)[0]
    other = torch.cat([logits_[:y], logits_[y + 1 :]]).max()
    (logits_[y] - other).backward()
    return v.grad[0].detach()


def _linear_upsampling(n_in: int, n_out: int) -> torch.Tensor:
    """The ``[n_out, n_in]`` matrix of 1-D linear upsampling (``align_corners=False``): bilinear
    resizing is this along H times this along W."""
    eye = torch.eye(n_in, dtype=torch.float64).unsqueeze(1)  # [n_in, 1, n_in]
    out = torch.nn.functional.interpolate(eye, size=n_out, mode="linear", align_corners=False)
    return out[:, 0, :].T


def _projector(a: torch.Tensor) -> torch.Tensor:
    return a @ torch.linalg.solve(a.T @ a, a.T)


def kept_by_subspace(g: torch.Tensor, spec: str) -> float:
    """Share of ``||g||^2`` in the subspace ``spec``: its exact orthogonal projection (``dct``),
    or the projection onto the span of ``resize``'s upsampled basis (separable in H and W)."""
    space = parse_subspace(spec)
    g = g.double()
    if space.kind == "dct":
        p = space.project(g)
    else:
        if space.temporal != 1:
            raise ValueError("resize with a temporal factor is not measured here")
        _, h2, w2 = space.coefficient_shape(tuple(g.shape))[1:]
        ph = _projector(_linear_upsampling(h2, g.shape[-2]))
        pw = _projector(_linear_upsampling(w2, g.shape[-1]))
        p = ph @ g @ pw.T
    return float((p * p).sum() / (g * g).sum())


def kept_by_ranking(energy: torch.Tensor, score: torch.Tensor, area: float) -> float:
    """Share of ``energy`` (per pixel) on the top ``area`` of the pixels ranked by ``score``."""
    k = max(1, int(round(area * score.numel())))
    top = torch.topk(score.flatten(), k).indices
    return float(energy.flatten()[top].sum() / energy.sum())


def prior_merit(g: torch.Tensor, var: torch.Tensor) -> tuple[float, float]:
    """What a probe prior with per-value variance ``var`` (``s^2``, shaped like ``g``) buys an
    estimate of the normal ``g``, as ``(M, cos(S^2 g, g))``.

    HopSkipJump's estimate ``v = mean_k phi_k u_k`` with ``u_k ~ N(0, S^2)``, scaled so that
    ``mean(s^2) = 1`` (the probes' total energy is the flat probes'), has mean
    ``sqrt(2/pi) S^2 g / ||S g||`` and noise of total variance ``d / n``. Its part along ``g`` is
    ``sqrt(2/pi) ||S g|| / ||g||`` = ``sqrt(2/pi) sqrt(M)``, with

        M = sum(s^2 g^2) / sum(g^2)      (flat probes: 1)

    so at equal probes the estimate's cosine with ``g`` grows by ``sqrt(M)``: a prior with merit
    ``M`` counts as ``M`` times the probes (to first order, while the cosine is small). What the
    attack then steps along is ``S^2 g``, not ``g``; ``cos(S^2 g, g)`` says how far it leans."""
    var = var.double() / var.double().mean()
    g = g.double()
    m = float((var * g * g).sum() / (g * g).sum())
    s2g = var * g
    cos = float((s2g * g).sum() / (s2g.norm() * g.norm()))
    return m, cos


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="c3d,lrcn")
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--subspaces", default="resize:2,resize:4,dct:4,dct:8")
    ap.add_argument("--priors", default="edge:3,cedge:3,lcedge:3")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    priors = [parse_prior(p) for p in args.priors.split(",") if p not in ("", "none")]
    torch.set_num_threads(1)
    data = SyntheticActions(split="train")
    print(f"# gradient of the top-2 logit margin at clean TRAINING videos (synthetic train split, "
          f"the first {args.videos} correctly classified), medians over the videos")  # fmt: skip
    for name in [m for m in args.models.split(",") if m]:
        model = load_default_model(name).eval()
        rows: dict[str, list[float]] = {}
        gen = torch.Generator().manual_seed(args.seed)
        n = 0
        for i in range(len(data)):
            if n == args.videos:
                break
            x, y = data[i]
            with torch.no_grad():
                if int(model(x.unsqueeze(0)).argmax(1)[0]) != int(y):
                    continue
            n += 1
            g = margin_gradient(model, x, int(y))
            energy = (g * g).sum(0)  # per pixel [T, H, W]: a prior weights the channels alike
            for spec in [s for s in args.subspaces.split(",") if s]:
                rows.setdefault(f"kept by {spec}", []).append(kept_by_subspace(g, spec))
            edges = edge_map(x)
            rand = torch.rand(energy.shape, generator=gen)
            for a in AREAS:
                pct = f"{100 * a:.0f} %"
                rows.setdefault(f"top {pct} by |g| (the best prior)", []).append(
                    kept_by_ranking(energy, energy, a))  # fmt: skip
                rows.setdefault(f"top {pct} by the edge map", []).append(
                    kept_by_ranking(energy, edges, a))  # fmt: skip
                rows.setdefault(f"{pct} at random", []).append(kept_by_ranking(energy, rand, a))
            for prior in priors:
                m, cos = prior_merit(g, prior.std(x) ** 2)
                rows.setdefault(f"prior {prior.spec}: probe-count factor M", []).append(m)
                rows.setdefault(f"prior {prior.spec}: cos(S^2 g, g)", []).append(cos)
            m, cos = prior_merit(g, energy.unsqueeze(0).expand_as(g))
            rows.setdefault("|g|^2 as the prior (a white-box reference): M", []).append(m)
            rows.setdefault("|g|^2 as the prior: cos(S^2 g, g)", []).append(cos)
        print(f"\n## {name} (default checkpoint), {n} videos: share of ||g||^2\n")
        print("| where | median share | min | max |\n|---|---:|---:|---:|")
        for key, vals in rows.items():
            v = np.array(vals)
            print(f"| {key} | {np.median(v):.3f} | {v.min():.3f} | {v.max():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
