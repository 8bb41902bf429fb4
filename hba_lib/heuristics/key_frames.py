"""Heuristic temporal sparsity: the paper's Algorithm 1 (key frames under a MAP bound omega).

Given the clean video ``x``, an adversarial candidate ``x_hat`` and a mask ``M`` (the salient
regions, or all ones), Algorithm 1 looks for the fewest frames to perturb:

1. ``p = (x_hat - x) * M``.
2. **Frame importance** (:func:`frame_importance`, ``T`` queries in one batch): for each frame
   ``t``, query ``x + p * M_t`` (``p`` with frame ``t`` zeroed). If that is still adversarial,
   its top-1 probability says how little frame ``t`` matters; frames whose removal breaks the
   attack are no deletion candidates. Frames are sorted by that probability, descending.
3. **Greedy deletion** (:func:`select_key_frames`): walk the sorted frames; tentatively drop
   each, form ``theta = p' / ||p'||``, find ``g(theta)`` (the initial boundary search) and the
   mean absolute perturbation ``MAP(g * theta)`` (0-255, whole video). The paper's rule: accept
   when ``MAP <= omega`` (the deletion always leaves fewer frames), else when the MAP is lower
   than the current one; otherwise keep the frame. So ``omega = 0`` still drops every frame
   whose removal lowers the MAP.

The authors' code uses a looser rule (``acceptance="adversarial_once_under_omega"``): MAP is
measured over the perturbed region only (MAP*), and once the current MAP* is under ``omega``
every still-adversarial deletion is accepted, even one that lifts MAP* above ``omega``.

Every function here is a query process (``hba_lib.oracle.queries``): it yields requests and is sent
answers, so the attack that drives it counts every query (phase ``init``) under its budget.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import torch

from hba_lib.oracle import Answer, distances
from hba_lib.oracle.queries import (
    Request,
    normalize,
    points,
    search_process,
    targeted_initial_search,
    untargeted_initial_search,
)

ACCEPTANCE_RULES = ("paper", "adversarial_once_under_omega")


@dataclass
class Trial:
    """One tentative deletion: the frame, ``g`` and MAP without it, and whether it was kept out."""

    frame: int
    g: float
    map: float
    accepted: bool
    frames_left: int


@dataclass
class KeyFrameSearch:
    """What Algorithm 1 found for one candidate: the mask ``[1, T, H, W]`` (or ``[C, T, H, W]``),
    the direction and its ``g`` and MAP, the frame importance and every trial, in order."""

    mask: torch.Tensor
    theta: torch.Tensor | None
    g: float
    map: float
    importance: list[float]
    order: list[int]
    trials: list[Trial] = field(default_factory=list)
    initial_g: float = math.inf
    initial_map: float = math.inf

    @property
    def key_frames(self) -> list[int]:
        """The frames left in the mask."""
        return frame_support(self.mask)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (for results tables and stores)."""
        return {
            "key_frames": self.key_frames,
            "g": self.g,
            "map": self.map,
            "initial_g": self.initial_g,
            "initial_map": self.initial_map,
            "importance": self.importance,
            "order": self.order,
            "trials": [vars(t) for t in self.trials],
        }


def frame_support(mask: torch.Tensor) -> list[int]:
    """Indices of the frames with any pixel in a ``[C|1, T, H, W]`` mask."""
    return torch.nonzero(mask.flatten(2).amax(dim=(0, 2)) > 0).flatten().tolist()


def drop_frame(mask: torch.Tensor, t: int) -> torch.Tensor:
    """``mask`` with frame ``t`` zeroed (a copy)."""
    out = mask.clone()
    out[:, t] = 0
    return out


def frame_importance(
    x: torch.Tensor, p: torch.Tensor, goal: Any
) -> Generator[Request, Answer, tuple[list[float], list[int]]]:
    """Step 2 of Algorithm 1: ``T`` counted queries, one batch.

    Returns the probability per frame (``-inf`` where removing the frame breaks the attack)
    and the deletion order: the frames whose removal keeps ``x + p`` adversarial, by
    descending probability (ties by frame index).
    """
    num_frames = x.shape[1]
    keep = torch.ones((num_frames, 1, num_frames, 1, 1), dtype=x.dtype, device=x.device)
    keep[torch.arange(num_frames), 0, torch.arange(num_frames)] = 0  # M_t: all but frame t
    ans = yield Request((x + p * keep).clamp_(0.0, 1.0), "init")
    adv = goal.is_adversarial(ans.labels)
    probs = [float(pr) if bool(a) else -math.inf for pr, a in zip(ans.probs, adv)]
    order = sorted((t for t in range(num_frames) if probs[t] > -math.inf),
                   key=lambda t: (-probs[t], t))  # fmt: skip
    return probs, order


def boundary_search(
    x: torch.Tensor, theta: torch.Tensor, lam0: float, goal: Any, tol: float, cap: float,
    known_adversarial: bool = False, grow: float = 1.05, grid_points: int = 100,
) -> Generator[Request, Answer, float]:  # fmt: skip
    """``g(theta)`` by the initial search of Opt-attack, starting at ``lam0 = ||p||``."""
    if goal.targeted:
        search = targeted_initial_search(lam0, tol, cap, known_adversarial, grow, grid_points)
    else:
        search = untargeted_initial_search(lam0, math.inf, tol, known_adversarial)
    return (yield from search_process(x, theta, search, goal, "init"))


def accept_deletion(rule: str, omega: float, cur_map: float, new_map: float) -> bool:
    """Whether a tentative frame deletion stays (``new_map`` is ``inf`` when it broke the attack).

    ``paper``: ``new_map <= omega`` (fewer frames under the bound), else ``new_map < cur_map``.
    ``adversarial_once_under_omega`` (the authors' code, MAP* values): as ``paper``, and any
    still-adversarial deletion once ``cur_map < omega``.
    """
    if not math.isfinite(new_map):
        return False
    if rule == "adversarial_once_under_omega" and cur_map < omega:
        return True
    return new_map <= omega or new_map < cur_map


def _perturbation_map(x: torch.Tensor, theta: torch.Tensor, g: float, mask, star: bool) -> float:
    if not math.isfinite(g):
        return math.inf
    x_adv = points(x, theta.unsqueeze(0), [g])[0]
    return distances.mean_absolute_perturbation(x, x_adv, mask if star else None)


def select_key_frames(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    goal: Any,
    omega: float,
    mask: torch.Tensor | None = None,
    tol: float = 1e-2,
    cap: float | None = None,
    acceptance: str = "paper",
    grow: float = 1.05,
    grid_points: int = 100,
) -> Generator[Request, Answer, KeyFrameSearch]:
    """Algorithm 1 for one candidate ``x_hat``: frame importance, then greedy deletion under
    the MAP bound ``omega`` (0-255). ``mask``: the spatial mask (``None``: every pixel).

    Every query is phase ``init``. Returns a :class:`KeyFrameSearch`; its ``g`` is ``inf``
    when even the full masked direction is not adversarial.
    """
    if acceptance not in ACCEPTANCE_RULES:
        raise ValueError(f"acceptance must be one of {ACCEPTANCE_RULES}, got {acceptance!r}")
    if omega < 0:
        raise ValueError(f"omega (a MAP bound, 0-255) must be >= 0, got {omega}")
    m = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device) if mask is None else (
        mask.to(x.device, x.dtype))  # fmt: skip
    star = acceptance != "paper"
    cap = math.sqrt(x.numel()) if cap is None else cap
    p = (x_hat - x) * m
    importance, order = yield from frame_importance(x, p, goal)

    lam0 = float(torch.linalg.vector_norm(p))
    theta = p / max(lam0, 1e-30)
    g = math.inf
    if lam0 > 0:  # the unmasked candidate itself is x + p: queried already, adversarial
        g = yield from boundary_search(x, theta, lam0, goal, tol, cap, mask is None, grow,
                                       grid_points)  # fmt: skip
    cur_map = _perturbation_map(x, theta, g, m, star)
    out = KeyFrameSearch(m, theta if math.isfinite(g) else None, g, cur_map, importance, order,
                         initial_g=g, initial_map=cur_map)  # fmt: skip
    if not math.isfinite(g):
        return out
    frames_left = len(frame_support(m))
    for t in order:
        if frames_left <= 1:
            break
        m_new = drop_frame(m, t)
        p_new = p * m_new
        lam0 = float(torch.linalg.vector_norm(p_new))
        if lam0 == 0.0:
            continue
        theta_new = p_new / lam0
        g_new = yield from boundary_search(x, theta_new, lam0, goal, tol, cap, False, grow,
                                           grid_points)  # fmt: skip
        new_map = _perturbation_map(x, theta_new, g_new, m_new, star)
        accept = accept_deletion(acceptance, omega, cur_map, new_map)
        if accept:
            m, p, theta, g, cur_map = m_new, p_new, theta_new, g_new, new_map
            frames_left -= 1
        out.trials.append(Trial(t, g_new, new_map, accept, frames_left))
    out.mask, out.theta, out.g, out.map = m, normalize(theta), g, cur_map
    return out
