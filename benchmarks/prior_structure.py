"""What structure is left for a probe prior beyond the edge maps (issue 22): a white-box look.

Like ``gradient_energy.py`` (whose gradient and ``prior_merit`` it uses), never an attack: the
gradient ``g`` of the top-2 logit margin at clean *training* videos that the model classifies
correctly. It asks which coarse structure of ``g`` a prior could still exploit on top of the
edge priors, measured by the probe-count factor ``M`` of ``prior_merit`` (a prior of merit ``M``
counts as ``M`` times the probes) and the lean ``cos(S^2 g, g)``:

1. **shares a subspace keeps** (at random in brackets): the lowest half and quarter of the
   temporal frequencies with the full spatial band (``dct:1:2``, ``dct:1:4``: [1/2], [1/4]),
   and the channels' mean (probes alike in R, G and B: [1/3]);
2. **multipliers of the edge priors** (``edge:3`` and ``cedge:3``, their ``M`` and lean in the
   first rows; each row's ``M`` as a ratio to its base prior's on the same video, median over
   the videos), the floor 0.01 added after the product:
   - ``x motion``: the colour magnitude of the frames' central temporal difference, blurred
     5 x 5 (:func:`motion_map`), plus 0.1 (the synthetic classes differ only in motion);
   - ``x frames^a`` / ``x frames x positions^a``: the model's own profile of ``|g|^2`` over the
     frames (over frames and pixel positions), averaged over the *other* videos (leave one
     out): what an attacker that knew where the model looks, on average, could weight by;
   - ``x own frames^a``: the video's own frame profile (white-box per video: a bound);
   - ``x window bB pP``: a fixed centre window, ``min(1, (d + 1) / B)^P`` in each of H and W,
     ``d`` the distance to the border (convolutions see the border less);
3. with ``--learned``: a **simulation** of learning a frame x ``G x G``-cell profile from the
   attack's own estimates. HopSkipJump's estimates ``v_t`` (``n_t = min(100 sqrt(t), 1000)``
   probes with the base prior's weights, signs ``sign(<g, u>)`` of the white-box ``g``, centred)
   are whitened (``v_t / s``) and summed; each cell's energy above the noise floor (the 10th
   percentile of the cells'), over the prior's mean variance there, is the cell's estimated
   ``|g|^2``; its square root, mixed 0.8 / 0.2 with flat, multiplies the base prior. Printed:
   ``M`` over the base prior's at iterations 5, 10, 15 and 25 (about 0.5k, 2k, 4k, 8.5k queries
   of probes), beside the cell profile of the true ``g`` in the same form. The signs come from
   the clean video's ``g``, not from boundary points: an optimistic stand-in for the attack.

Prints one table a model (the printout ``benchmarks/results/cpu_prior_structure_train.txt``
was made with)::

    .venv/bin/python benchmarks/prior_structure.py --videos 20 --learned
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from hba_lib.data.synthetic import SyntheticActions
from hba_lib.models import load_default_model
from hba_lib.oracle.priors import parse_prior
from hba_lib.paths import load_script

_energy = load_script("benchmarks/gradient_energy.py")
kept_by_subspace, margin_gradient, prior_merit = (
    _energy.kept_by_subspace, _energy.margin_gradient, _energy.prior_merit)  # fmt: skip

BASES = ("edge:3", "cedge:3")
FLOOR = 0.01
WINDOWS = ((4, 2), (8, 1), (8, 2))
ITERATIONS = (5, 10, 15, 25)


def motion_map(x: torch.Tensor, blur: int = 5) -> torch.Tensor:
    """``[T, H, W]``: the colour magnitude of each frame's central temporal difference
    (one-sided at the first and last frame) of ``x [C, T, H, W]``, averaged over a
    ``blur x blur`` window. A diagnostic map, not a prior."""
    x = x.double()
    d = torch.empty_like(x)
    d[:, 1:-1] = (x[:, 2:] - x[:, :-2]) / 2
    d[:, 0], d[:, -1] = x[:, 1] - x[:, 0], x[:, -1] - x[:, -2]
    mag = d.pow(2).sum(0).sqrt().unsqueeze(1)
    return torch.nn.functional.avg_pool2d(mag, blur, 1, blur // 2, count_include_pad=False)[:, 0]


def centre_window(h: int, w: int, border: int, power: float) -> torch.Tensor:
    """``[H, W]``: ``min(1, (d + 1) / border)^power`` along H times the same along W."""

    def side(n: int) -> torch.Tensor:
        d = torch.arange(n, dtype=torch.float64)
        return ((torch.minimum(d, n - 1 - d) + 1) / border).clamp(max=1.0) ** power

    return side(h)[:, None] * side(w)[None, :]


def grey_share(g: torch.Tensor) -> float:
    """Share of ``||g||^2`` (``g [C, T, H, W]``) in the channels' mean."""
    g = g.double()
    grey = g.mean(0, keepdim=True).expand_as(g)
    return float((grey * grey).sum() / (g * g).sum())


def _unit(w: torch.Tensor) -> torch.Tensor:
    return w / w.mean()


def _cells(e: torch.Tensor, grid: int) -> torch.Tensor:
    """Sums of ``e [T, H, W]`` over a ``grid x grid`` partition of each frame: ``[T, G, G]``."""
    t, h, w = e.shape
    return e.reshape(t, grid, h // grid, grid, w // grid).sum((2, 4))


def _spread(c: torch.Tensor, h: int, w: int) -> torch.Tensor:
    g = c.shape[-1]
    return c.repeat_interleave(h // g, 1).repeat_interleave(w // g, 2)


def cell_multiplier(energy: torch.Tensor, prior_var: torch.Tensor, grid: int) -> torch.Tensor:
    """``[T, H, W]``: a cell's ``energy`` over the prior's variance there, square-rooted, mean 1,
    mixed 0.8 / 0.2 with flat (module docstring, 3.)."""
    return _multiplier(_cells(energy, grid), prior_var, grid)


def _multiplier(cell_energy: torch.Tensor, prior_var: torch.Tensor, grid: int) -> torch.Tensor:
    """:func:`cell_multiplier` from the cells' energies ``[T, G, G]``."""
    m = _unit((cell_energy / _cells(prior_var, grid)).clamp_min(0).sqrt())
    return _spread(0.8 * m + 0.2, *prior_var.shape[1:])


def learned_profile(g: torch.Tensor, s: torch.Tensor, grid: int, gen: torch.Generator) -> dict:
    """``{t: M of the base prior x the learned cell profile / M of the base prior}`` at the
    iterations ``ITERATIONS``, and ``"white-box"`` for the true ``g``'s cell profile."""
    var = s * s
    base = prior_merit(g, var)[0]
    acc, out = torch.zeros_like(g), {}
    for t in range(1, max(ITERATIONS) + 1):
        n = min(int(100 * t**0.5), 1000)
        u = torch.randn((n, *g.shape), generator=gen, dtype=torch.float64) * s
        u = u / u.flatten(1).norm(dim=1).view(-1, 1, 1, 1, 1)
        phi = torch.sign((u * g).flatten(1).sum(1))
        v = ((phi - phi.mean()).view(-1, 1, 1, 1, 1) * u).mean(0)
        acc += v / v.norm() / s
        if t in ITERATIONS:
            e = _cells((acc * acc).sum(0), grid)
            e = (e - torch.quantile(e.flatten(), 0.1)).clamp_min(0)
            m = _multiplier(e, var[0], grid)
            out[t] = prior_merit(g, var * m)[0] / base
    m = cell_multiplier((g * g).sum(0), var[0], grid)
    out["white-box"] = prior_merit(g, var * m)[0] / base
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="c3d,lrcn")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--learned", action="store_true", help="also the simulation (3.), slower")
    ap.add_argument("--learned-videos", type=int, default=8)
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = SyntheticActions(split="train")
    print(f"# white-box gradient of the top-2 logit margin at clean TRAINING videos (synthetic train "
          f"split, the first {args.videos} correctly classified); M: prior_merit's probe-count "
          f"factor, as a ratio to the base prior's on the same video; medians over the videos")  # fmt: skip
    for name in [m for m in args.models.split(",") if m]:
        model = load_default_model(name).eval()
        xs, gs = [], []
        for i in range(len(data)):
            if len(xs) == args.videos:
                break
            x, y = data[i]
            with torch.no_grad():
                if int(model(x.unsqueeze(0)).argmax(1)[0]) != int(y):
                    continue
            xs.append(x)
            gs.append(margin_gradient(model, x, int(y)).double())
        energy = torch.stack([(g * g).sum(0) for g in gs])  # [N, T, H, W]
        energy = energy / energy.sum((1, 2, 3), keepdim=True)
        frames, positions = energy.sum((2, 3)), energy.sum(1)
        _, t, h, w = energy.shape
        shares: dict[str, list[float]] = {}
        merit: dict[str, list[tuple[float, float]]] = {}
        for k, (x, g) in enumerate(zip(xs, gs)):
            for spec in ("dct:1:2", "dct:1:4"):
                shares.setdefault(f"kept by {spec} [1/{spec[-1]}]", []).append(
                    kept_by_subspace(g, spec)
                )
            shares.setdefault("kept by the channels' mean [1/3]", []).append(grey_share(g))
            others = [j for j in range(len(xs)) if j != k]
            frame_p = _unit(frames[others].mean(0))[:, None, None].expand(t, h, w)
            full_p = _unit(frames[others].mean(0)[:, None, None] * positions[others].mean(0)[None])
            own_p = _unit(frames[k])[:, None, None].expand(t, h, w)
            gate = _unit(motion_map(x)) + 0.1
            for base in BASES:
                w0 = _unit(parse_prior(base).std(x).double()[0] ** 2 - FLOOR)
                m0, cos0 = prior_merit(g, (w0 + FLOOR).expand_as(g))
                merit.setdefault(base, []).append((m0, cos0))
                rows = {"x motion": w0 * gate}
                for a in (0.5, 1.0):
                    rows[f"x frames^{a:g}"] = w0 * frame_p**a
                    rows[f"x frames x positions^{a:g}"] = w0 * full_p**a
                    rows[f"x own frames^{a:g} (white-box per video)"] = w0 * own_p**a
                for b, p in WINDOWS:
                    rows[f"x window b{b} p{p}"] = w0 * centre_window(h, w, b, p)
                for key, wk in rows.items():
                    m, cos = prior_merit(g, (_unit(wk) + FLOOR).expand_as(g))
                    merit.setdefault(f"{base} {key}", []).append((m / m0, cos))
        print(f"\n## {name} (default checkpoint), {len(xs)} videos\n")
        print("| share of ||g||^2 [at random] | median | min | max |\n|---|---:|---:|---:|")
        for key, vals in shares.items():
            v = np.array(vals)
            print(f"| {key} | {np.median(v):.3f} | {v.min():.3f} | {v.max():.3f} |")
        print("\n| prior | M (base rows) or M / base M | min | max | cos(S^2 g, g) |")
        print("|---|---:|---:|---:|---:|")
        for key, vals in merit.items():
            v = np.array(vals)
            print(f"| {key} | {np.median(v[:, 0]):.2f} | {v[:, 0].min():.2f} | "
                  f"{v[:, 0].max():.2f} | {np.median(v[:, 1]):.3f} |")  # fmt: skip
        if args.learned:
            gen = torch.Generator().manual_seed(args.seed)
            n = min(args.learned_videos, len(xs))
            print(f"\nLearned cell profile (simulation, {args.grid} x {args.grid} cells a frame, "
                  f"first {n} videos): M over the base prior's, median (min-max)\n")  # fmt: skip
            print("| base | " + " | ".join(f"t = {i}" for i in ITERATIONS) + " | white-box |")
            print("|---|" + "---:|" * (len(ITERATIONS) + 1))
            for base in BASES:
                res = [learned_profile(gs[k], parse_prior(base).std(xs[k]).double(), args.grid, gen)
                       for k in range(n)]  # fmt: skip
                cells = []
                for key in (*ITERATIONS, "white-box"):
                    v = np.array([r[key] for r in res])
                    cells.append(f"{np.median(v):.2f} ({v.min():.2f}-{v.max():.2f})")
                print(f"| {base} | " + " | ".join(cells) + " |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
