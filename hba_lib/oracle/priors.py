"""Probe priors: where in the video a random probe puts its energy.

A subspace (:mod:`hba_lib.oracle.subspace`) decides *which* directions a probe may take; a
prior decides *how much* of each pixel a probe moves. A hard-label attack estimates the
boundary's normal from random probes; the estimate ``mean_k phi_k u_k`` of probes with
per-pixel standard deviations ``s`` points along ``S^2 g`` (``g`` the normal, ``S = diag(s)``),
still a descent direction, and its noise falls where ``s`` is small. Where ``s`` follows where
the normal's energy lies, the estimate is much better for the same number of probes.

Measured on the default models' *training* videos (``docs/algorithm.md``, "Beyond the paper:
an edge prior"): the top-2 logit margin's gradient at a clean video is high-frequency (a
4 x coarser grid keeps 4-5 % of its energy, which is why low-frequency subspaces lose on these
clips) but sparse, and it sits on the video's edges: a blurred luminance-gradient magnitude
covers 66 % (LRCN) / 21 % (C3D) of the gradient's energy on 10 % of the pixels (random: 10 %).

So the prior here, ``"edge:P"`` (``"edge:P:F"``), uses the clean video alone, no query:

    e = blur3x3(|grad_xy luminance(x)|)      per frame
    s^2 = (e^P / mean(e^P)) + F               (F, the floor, 0.01 unless given)

the same for every channel; each probe is the Gaussian probe (or the subspace's) times ``s``,
then masked and normalised, so it still changes no pixel outside the mask. ``P`` sharpens the
prior (``P = 0``: flat, the papers' probes up to the floor's scale); the floor keeps every pixel
of the mask reachable. ``tests/test_priors.py`` checks the probes' shape, mask and weights.

``"cedge:P[:F]"`` is the same on the **colour** edge map, ``e = blur3x3(sqrt(sum_c |grad_xy
x_c|^2))``: an object that differs from its background in hue but hardly in luminance has no
luminance edge, and ``edge`` then sends the probes to the background's texture. Measured on
the default LRCN (``benchmarks/whitebox_floor.py``, ``cpu_whitebox_floor_lrcn.txt``): on 3 of
the 20 test videos a white-box attack's perturbation holds 2-16 % of its energy on the top
10 % of the luminance edges (37-80 % on the others but one) and 47-72 % on the colour edges,
and those are the videos where ``edge`` ends 3.2-5.0 x farther than white-box.

``"lcedge:P[:F]"`` gives each map half of the probes' energy, ``s^2 = (w_l + w_c) / 2 + F``
with ``w = e^P / mean(e^P)`` for the luminance and the colour map: where one map misses the
edges the model looks at, the other still sends half the energy there. It was written after
``edge`` and ``cedge`` had each lost the goal on one default model's test videos (and met it on
both models' ``val`` videos), as the one prior for both models; ``docs/peers.md`` says what was
run on which videos, in which order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hba_lib.oracle.specs import named_option, split_spec

KINDS = ("edge", "cedge", "lcedge")
DEFAULT_FLOOR = 0.01


def _central_differences(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical central differences of ``v [..., H, W]`` (zero at the border)."""
    gx = torch.zeros_like(v)
    gy = torch.zeros_like(v)
    gx[..., 1:-1] = (v[..., 2:] - v[..., :-2]) / 2
    gy[..., 1:-1, :] = (v[..., 2:, :] - v[..., :-2, :]) / 2
    return gx, gy


def _blurred(mag: torch.Tensor, blur: int) -> torch.Tensor:
    """``mag [T, H, W]`` averaged over a ``blur x blur`` window (the window cut at the border)."""
    if blur <= 1:
        return mag
    return F.avg_pool2d(mag.unsqueeze(1), blur, 1, blur // 2, count_include_pad=False)[:, 0]


def _check_video(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a video [C, T, H, W], got shape {tuple(x.shape)}")


def edge_map(x: torch.Tensor, blur: int = 3) -> torch.Tensor:
    """The magnitude of each frame's luminance gradient (central differences), averaged over a
    ``blur x blur`` window: ``[T, H, W]`` for a video ``x [C, T, H, W]`` in [0, 1]."""
    _check_video(x)
    gx, gy = _central_differences(x.float().mean(0))  # luminance [T, H, W]
    return _blurred((gx * gx + gy * gy).sqrt(), blur)


def colour_edge_map(x: torch.Tensor, blur: int = 3) -> torch.Tensor:
    """The magnitude of each frame's colour gradient, ``sqrt(sum_c |grad_xy x_c|^2)`` (central
    differences), averaged over a ``blur x blur`` window: ``[T, H, W]`` for ``x [C, T, H, W]``.
    Unlike :func:`edge_map` it sees an edge between two colours of equal luminance."""
    _check_video(x)
    gx, gy = _central_differences(x.float())  # [C, T, H, W]
    return _blurred((gx * gx + gy * gy).sum(0).sqrt(), blur)


EDGE_MAPS = {"edge": edge_map, "cedge": colour_edge_map}
MIXED = {"lcedge": ("edge", "cedge")}  # each map's normalised weights, averaged


def _weights(kind: str, power: float, x: torch.Tensor) -> torch.Tensor:
    """``e^P / mean(e^P)`` of ``kind``'s edge map (zero for a flat video), or the average of
    those of the maps ``MIXED[kind]`` names: ``[T, H, W]``, mean 1 unless a map is flat. A flat
    map's half of ``lcedge`` stays zero (mean 1/2 then, so the floor weighs twice as much): on a
    video with colour edges of equal luminance, ``lcedge`` is half of ``cedge``."""
    if kind in MIXED:
        return torch.stack([_weights(k, power, x) for k in MIXED[kind]]).mean(0)
    if power == 0:
        return torch.ones(x.shape[1:], device=x.device)
    e = EDGE_MAPS[kind](x) ** power
    mean = e.mean()
    return e / mean if float(mean) > 0 else torch.zeros_like(e)


class ProbePrior:
    """Per-pixel weights for random probes (module docstring): ``kind`` (``edge``, ``cedge``,
    ``lcedge``), ``power`` ``P`` and ``floor`` ``F``. :meth:`std` is the per-pixel standard
    deviation for a video."""

    def __init__(self, kind: str = "edge", power: float = 1.0, floor: float = DEFAULT_FLOOR):
        if kind not in KINDS:
            raise ValueError(f"unknown probe prior {kind!r}; expected one of {KINDS}")
        if not (power >= 0 and floor >= 0):
            raise ValueError(f"need power >= 0 and floor >= 0, got {power}, {floor}")
        if floor == 0 and power == 0:
            raise ValueError("power 0 and floor 0 would give every pixel weight 1: use no prior")
        self.kind, self.power, self.floor = kind, float(power), float(floor)

    @property
    def spec(self) -> str:
        """The name this prior is parsed from (:func:`parse_prior`)."""
        tail = "" if self.floor == DEFAULT_FLOOR else f":{self.floor:g}"
        return f"{self.kind}:{self.power:g}{tail}"

    def __repr__(self) -> str:
        return f"ProbePrior({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProbePrior) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def std(self, x: torch.Tensor) -> torch.Tensor:
        """The probes' per-pixel standard deviation ``s`` for the clean video ``x [C, T, H, W]``
        (same shape, on ``x``'s device; a flat video gives the floor's flat weights)."""
        var = _weights(self.kind, self.power, x) + self.floor
        if float(var.max()) == 0.0:  # flat video, no floor: nothing to weight by
            var = torch.ones_like(var)
        return var.sqrt().unsqueeze(0).expand_as(x).to(x.dtype)


@named_option(ProbePrior, "prior", "'edge:2'")
def parse_prior(spec: str | ProbePrior | None) -> ProbePrior | None:
    """A :class:`ProbePrior` from its name (``"edge:P"``, ``"edge:P:F"``, ``"cedge:P[:F]"``,
    ``"lcedge:P[:F]"``), or ``None`` for ``None`` / ``""`` / ``"none"`` (a clear error
    otherwise)."""
    kind, values = split_spec(spec, "prior", KINDS, (1, 2),
                              "'edge:P', 'edge:P:F', 'cedge:...' or 'lcedge:...' (P power, F floor)",
                              not_numbers="power and floor must be numbers")  # fmt: skip
    return ProbePrior(kind, *values)


def energy_weights(p: torch.Tensor, blur: int = 3, frames: int = 1) -> torch.Tensor:
    """``[C, T, H, W]`` weights (the same in every channel, mean 1) from a perturbation ``p``:
    ``sum_c p_c^2`` averaged over ``blur x blur`` pixels and ``frames`` frames (odd sizes; the
    border averages over the pixels it has); all ones where ``p`` is zero. Not a prior of the
    clean video: HopSkipJump's narrowing ranks pixels by it (``narrow_by``,
    :mod:`hba_lib.attacks.hsja`), and ``benchmarks/perturbation_merit.py`` measures it."""
    e = (p * p).sum(0, keepdim=True).unsqueeze(0)
    e = F.avg_pool3d(e, (frames, blur, blur), 1, (frames // 2, blur // 2, blur // 2),
                     count_include_pad=False)[0]  # fmt: skip
    mean = float(e.mean())
    return (e / mean if mean > 0 else torch.ones_like(e)).expand_as(p)
