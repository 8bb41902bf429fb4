"""How close could any attack get? A white-box reference for the L2 goal of issue 22.

A diagnostic, never an attack on the tables' terms: with the model's gradients (autograd, no
oracle, nothing counted) it searches, for each video a ``heuristic_attack.py`` run attacked,
the smallest L2 perturbation it can find that changes the top-1 label, in the whole video and
in ``[0, 1]``. Every distance it reports is an *upper bound* on the video's true minimal
adversarial L2 (an adversarial video was found at that distance; nothing smaller is ruled
out), and black-box attacks, which see only the top-1 label, rarely come below a strong
white-box attack. Set beside the records of a run (the same videos, read from its JSON-lines
file), it says how much room the goal leaves:

- per video, the black-box rows' L2 over the white-box one (1.0: as close as white-box);
- the median white-box L2 over the bar (``0.8 x`` the better peer's median L2): above 1, the
  goal would ask a label-only attack to beat a white-box one on these videos; below, it asks
  the black-box row to come that close to white-box.

The search, DDN (Rony et al., "Decoupling Direction and Norm", CVPR 2019) on every video at
once, with the step relative to the norm and on the top-2 logit margin (the cross-entropy's
gradient underflows on a sure model): ``steps`` normalised gradient steps, each of size
``alpha * eps`` (``alpha`` annealed by a cosine to ``alpha / 100``), after which the
perturbation is put on the sphere of radius ``eps``, ``eps`` shrinking by ``1 - gamma`` while
the point is adversarial and growing by ``1 + gamma`` while it is not. From each of
``restarts`` starts (small random directions, seeded; initial radii 1, 0.3, 3, ...) the
smallest adversarial point met is kept, then shrunk along its own direction by bisection while
it stays adversarial. Every distance is that of the clipped video, checked once more.

    .venv/bin/python benchmarks/whitebox_floor.py \\
        benchmarks/results/heuristic_lrcn_20v_10000q_seed0.jsonl --model lrcn --videos 20

The videos are those of the records file (``attack_set`` with the same ``--videos`` and
``--seed``; the script checks that the indices agree).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from hba_lib.paths import load_script

_intervals = load_script("benchmarks/median_intervals.py")  # the records as the verdict reads them
PEERS, GOAL_L2 = _intervals.PEERS, _intervals.GOAL_L2
_energy = load_script("benchmarks/gradient_energy.py")
kept_by_ranking, _logits = _energy.kept_by_ranking, _energy.logits


def is_adversarial(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Whether each video of the batch ``x`` is not classified as its ``y`` (no gradient)."""
    with torch.no_grad():
        return _logits(model, x).argmax(1) != y


def ddn(model, x: torch.Tensor, y: torch.Tensor, steps: int = 500, gamma: float = 0.05,
        alpha: float = 0.5, eps0: float = 1.0, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """One DDN run on the batch ``x [B, C, T, H, W]`` (labels ``y``): the smallest adversarial
    perturbation per video it met (a row of NaN where it met none)."""
    gen = torch.Generator().manual_seed(seed)
    b = x.shape[0]
    flat = (b, -1)
    delta = torch.randn(x.shape, generator=gen) * 1e-3
    eps = torch.full((b,), float(eps0))
    best = torch.full(x.shape, math.nan)
    best_norm = torch.full((b,), math.inf)
    for i in range(steps):
        a = alpha / 100 + (alpha - alpha / 100) * (1 + math.cos(math.pi * i / steps)) / 2
        d = delta.clone().requires_grad_(True)
        logits = _logits(model, (x + d).clamp(0.0, 1.0))
        true = logits.gather(1, y.view(-1, 1))[:, 0]
        other = logits.scatter(1, y.view(-1, 1), -math.inf).max(1).values
        loss = (other - true).sum()  # the margin: its gradient does not vanish when sure
        (grad,) = torch.autograd.grad(loss, d)
        with torch.no_grad():
            adv = logits.argmax(1) != y
            p = (x + delta).clamp(0.0, 1.0) - x
            norm = p.reshape(flat).norm(dim=1)
            better = adv & (norm < best_norm)
            best[better] = p[better]
            best_norm[better] = norm[better]
            eps = torch.where(adv, eps * (1 - gamma), eps * (1 + gamma))
            gn = grad.reshape(flat).norm(dim=1).clamp_min(1e-20)
            delta = delta + (a * eps / gn).view(-1, 1, 1, 1, 1) * grad
            dn = delta.reshape(flat).norm(dim=1).clamp_min(1e-20)
            delta = delta * (eps / dn).view(-1, 1, 1, 1, 1)
            delta = (x + delta).clamp(0.0, 1.0) - x
    return best


def shrink(model, x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, iters: int = 20):
    """Scale each adversarial perturbation ``p`` down along itself while it stays adversarial
    (bisection on the factor in [0, 1]); the shrunk, clipped perturbations."""
    lo = torch.zeros(x.shape[0])
    hi = torch.ones(x.shape[0])
    for _ in range(iters):
        mid = (lo + hi) / 2
        adv = is_adversarial(model, (x + mid.view(-1, 1, 1, 1, 1) * p).clamp(0.0, 1.0), y)
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    return (x + hi.view(-1, 1, 1, 1, 1) * p).clamp(0.0, 1.0) - x


def whitebox_l2(model, x: torch.Tensor, y: torch.Tensor, steps: int = 500, restarts: int = 3,
                seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:  # fmt: skip
    """The smallest adversarial L2 per video found by ``restarts`` DDN runs (initial norms
    1, 0.3, 3, ...), each shrunk and checked once more (``inf`` where none was found), and
    those perturbations (zero where none)."""
    b = x.shape[0]
    best = torch.full((b,), math.inf)
    best_p = torch.zeros_like(x)
    for r in range(restarts):
        eps0 = (1.0, 0.3, 3.0, 0.1, 10.0)[r % 5]
        p = ddn(model, x, y, steps=steps, eps0=eps0, seed=seed + r)
        found = ~torch.isnan(p.reshape(b, -1)[:, 0])
        if not bool(found.any()):
            continue
        p = torch.where(found.view(-1, 1, 1, 1, 1), p, torch.zeros_like(p))
        p = shrink(model, x, y, p)
        adv = is_adversarial(model, x + p, y) & found
        norm = p.reshape(b, -1).norm(dim=1)
        better = adv & (norm < best)
        best = torch.where(better, norm, best)
        best_p[better] = p[better]
    return best.numpy(), best_p


def edge_share(x: torch.Tensor, p: torch.Tensor, area: float = 0.1, colour: bool = False) -> float:
    """Share of the perturbation's energy (summed over channels) on the ``area`` of the pixels
    where the clean video's edge map is largest (luminance: ``hba_lib.oracle.priors.edge_map``,
    what the ``edge`` prior weights probes by; ``colour``: ``colour_edge_map``, ``cedge``'s):
    near 1, such a prior points the probes where the white-box perturbation lies; near
    ``area``, no better than flat."""
    from hba_lib.oracle.priors import colour_edge_map, edge_map

    energy = (p.double() ** 2).sum(0)
    if float(energy.sum()) == 0.0:
        return math.nan
    return kept_by_ranking(energy, (colour_edge_map if colour else edge_map)(x), area)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("records", type=Path, help="a heuristic_attack.py JSON-lines file")
    ap.add_argument("--model", default="lrcn", choices=["c3d", "lrcn"])
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0, help="the records' video seed")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument(
        "--rows", default="", help="comma-separated hba rows to set beside (default: all)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=int, default=None,
                    help="the records' last budget (default: from the records, or the file name)")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        records, budget = _intervals.read_records(args.records, args.budget)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from hba_lib.attacks.common import attack_set
    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model

    finals = _intervals.last_values(records, budget)
    rows = {name: {v: l2 for v, (_, l2) in by.items()} for name, by in finals.items()}
    model = load_default_model(args.model)
    for p in model.parameters():
        p.requires_grad_(False)
    data = SyntheticActions(split=args.split)
    chosen = attack_set(data, model, args.videos, args.candidates, seed=args.seed)
    vids = list(chosen.indices)
    for name, rs in rows.items():
        if sorted(rs) != sorted(vids):
            print(f"{args.records}: row {name!r} has videos {sorted(rs)}, not the chosen "
                  f"{sorted(vids)} (another --videos, --seed or --split?)",
                  file=sys.stderr)  # fmt: skip
            return 2
    x = torch.stack([v.float().cpu() for v in chosen.xs])
    y = torch.as_tensor([int(v) for v in chosen.labels])
    wb, wb_p = whitebox_l2(model, x, y, steps=args.steps, restarts=args.restarts, seed=args.seed)

    peers = [p for p in PEERS if p in rows]
    ours = [n for n in rows if n not in PEERS and not n.startswith("ART")]
    if args.rows:
        ours = [n for n in args.rows.split(",") if n]
        missing = [n for n in ours if n not in rows]
        if missing:
            print(f"no such rows in {args.records}: {missing}", file=sys.stderr)
            return 2
    med = {n: float(np.median([rows[n][v] for v in vids])) for n in peers + ours}
    print(f"# White-box reference (DDN, {args.steps} steps x {args.restarts} restarts, shrunk; "
          f"gradients, no oracle) for {args.model}, synthetic {args.split} set, {len(vids)} "
          f"videos (seed {args.seed}); records {args.records.name}\n")  # fmt: skip
    cols = peers + ours
    print("| video | white-box L2 | its energy on the top 10 % edges: luminance | colour | "
          + " | ".join(cols) + " |")  # fmt: skip
    print("|---:|---:|---:|---:|" + "---:|" * len(cols))
    for v in sorted(vids, key=lambda v: wb[vids.index(v)]):
        i = vids.index(v)
        w = wb[i]
        cells = [f"{rows[n][v]:.3f} ({rows[n][v] / w:.1f} x)" for n in cols]
        shares = f"{edge_share(x[i], wb_p[i]):.2f} | {edge_share(x[i], wb_p[i], colour=True):.2f}"
        print(f"| {v} | {w:.3f} | {shares} | " + " | ".join(cells) + " |")
    wb_med = float(np.median(wb))
    print(f"| median | {wb_med:.3f} | | | " + " | ".join(f"{med[n]:.3f}" for n in cols) + " |")
    if peers:
        better = min(peers, key=lambda n: med[n])
        bar = GOAL_L2 * med[better]
        print(f"\nThe bar: {GOAL_L2} x {better}'s median L2 {med[better]:.3f} = {bar:.3f}.")
        verdict = (
            "(above it: the goal asks a label-only attack to beat white-box)."
            if wb_med > bar
            else "(below it: the goal is within white-box reach)."
        )
        print(f"White-box median L2 {wb_med:.3f} = {wb_med / bar:.2f} x the bar {verdict}")
        for n in ours:
            ratio = np.median([rows[n][v] / wb[vids.index(v)] for v in vids])
            print(
                f"- {n}: median L2 {med[n]:.3f} ({med[n] / bar:.2f} x the bar); per video, "
                f"median {ratio:.2f} x the white-box L2"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
