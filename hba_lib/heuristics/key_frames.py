"""Heuristic temporal sparsity: the paper's Algorithm 1 (key frames under a MAP bound omega).

Given the clean video ``x``, an adversarial candidate ``x_hat`` and a mask ``M`` (the salient
regions, or all ones), Algorithm 1 looks for the fewest frames to perturb:

1. ``p = (x_hat - x) * M``.
2. **Frame importance** (:func:`frame_importance`, ``T`` queries in one batch): for each frame
   ``t``, query ``x + p * M_t`` (``p`` with frame ``t`` zeroed). If that is still adversarial,
   its top-1 probability says how little frame ``t`` matters; frames whose removal breaks the
   attack are no deletion candidates. Frames are sorted by that probability, descending.
3. **Greedy deletion** (:func:`select_key_frames`): walk the sorted frames; tentatively drop
   each (``p_hat = p * M_hat``). The trial first queries ``x + p_hat`` once (Algorithm 1, lines
   12-13): a deletion after which the candidate's own perturbation is no longer adversarial
   (targeted: no longer the target) is refused at once. Otherwise ``theta = p_hat / ||p_hat||``,
   ``g(theta)`` by bisection on ``[0, ||p_hat||]``, and the mean absolute perturbation of
   ``g * theta`` **on the selected key frames** (0-255), i.e. over the support of the mask:

   > "When the mean absolute perturbation on the selected key frames [is] lower than the
   > bound omega, our method will continue searching a smaller set of key frames."

   The paper's rule (``acceptance="paper"``): accept when that MAP ``<= omega`` (the deletion
   always leaves fewer frames), else when it is lower than the current one; otherwise keep the
   frame. Dropping a frame concentrates the perturbation on fewer frames, so the key-frame MAP
   tends to rise: omega decides how far the deletion goes (``omega = inf`` keeps deleting while
   the candidate stays adversarial, ``omega = 0`` only where the key-frame MAP falls).

Two other readings are options, named for what they do:

- ``acceptance="whole_video"``: the same rule on the MAP over the *whole* video. Dropping a
  frame removes its perturbation from that mean, so nearly every still-adversarial deletion
  passes whatever omega is: a sparser variant (lower MAP, higher MAP*), and omega does
  almost nothing.
- ``acceptance="adversarial_once_under_omega"`` (the authors' code): MAP over the perturbed
  region, and once the current value is under ``omega`` every still-adversarial deletion is
  accepted, even one that lifts it above ``omega``.

``trial="grow"`` replaces the check of ``x + p_hat`` by Opt-attack's initial search along
``theta`` (targeted: grow ``lam`` by x1.05 up to a cap, then a 100-point grid), which accepts
deletions that are adversarial only at a larger scale and costs 100+ queries a targeted trial.

Every function here is a query process (``hba_lib.oracle.queries``): it yields requests and is sent
answers, so the attack that drives it counts every query (phase ``init``) under its budget.

A trial's queries depend only on which frames the trials before it dropped (``p_hat`` is ``p``
on the kept frames), not on their exact ``g``. So where nothing can cut the search (the caller
proves it: ``select_key_frames(overlap=...)``), the next trial starts as soon as every trial
before it has a certain outcome, read off the bracket ``(lo, hi]`` of its bisection, and the
rest of those bisections goes in the same requests: the same queries and result, fewer
requests (one-clip steps) in a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import torch

from hba_lib.oracle import Answer, distances
from hba_lib.oracle.closest import Closest
from hba_lib.oracle.queries import (
    Request,
    Stepper,
    merge,
    normalize,
    points,
    search_process,
    split,
    targeted_initial_search,
    untargeted_initial_search,
)

ACCEPTANCE_RULES = ("paper", "whole_video", "adversarial_once_under_omega")
TRIALS = ("check", "grow")


@dataclass
class Trial:
    """One tentative deletion: the frame, ``g`` and MAP without it, and whether it was kept out."""

    frame: int
    g: float
    map: float
    accepted: bool
    frames_left: int
    queries: int = 0


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
    queries: int = 0  # every query this search spent (frame importance, searches, trials)
    initial_queries: int = 0  # of which the full candidate's boundary search
    x_adv: torch.Tensor | None = None  # the closest adversarial video queried inside ``mask``

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
            "queries": self.queries,
            "importance": self.importance,
            "order": self.order,
            "trials": [vars(t) for t in self.trials],
        }


def counted(process: Generator[Request, Answer, Any], tally: list[int]):
    """Run ``process``, adding the size of every answered request to ``tally[0]``."""
    try:
        request = next(process)
        while True:
            answer = yield request
            tally[0] += request.points.shape[0]
            request = process.send(answer)
    except StopIteration as stop:
        return stop.value


def inside(x: torch.Tensor, video: torch.Tensor, mask: torch.Tensor) -> bool:
    """Whether ``video`` changes no pixel of ``x`` where ``mask`` is 0."""
    return not bool((video != x)[mask.expand_as(x) == 0].any())


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
    if bool(ans.probs[adv].isnan().any()):
        raise ValueError(
            "the key-frame search (Algorithm 1) ranks frames by the top-1 probability, and this "
            "oracle answers labels only (a model server started with --labels-only): serve "
            "the probability, or attack without key frames"
        )
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

    ``paper`` and ``whole_video`` (which differ in what the MAP is measured over, not here):
    ``new_map <= omega`` (fewer frames under the bound), else ``new_map < cur_map``.
    ``adversarial_once_under_omega`` (the authors' code): as ``paper``, and any
    still-adversarial deletion once ``cur_map < omega``.
    """
    if not math.isfinite(new_map):
        return False
    if rule == "adversarial_once_under_omega" and cur_map < omega:
        return True
    return new_map <= omega or new_map < cur_map


def key_frame_map(
    x: torch.Tensor, theta: torch.Tensor, g: float, mask: torch.Tensor, acceptance: str = "paper"
) -> float:
    """The MAP (0-255) of ``g * theta`` that Algorithm 1 bounds: over the mask's support (the
    selected key frames; ``paper`` and the authors' rule) or over the whole video
    (``whole_video``). ``inf`` when ``g`` is."""
    if not math.isfinite(g):
        return math.inf
    x_adv = points(x, theta.unsqueeze(0), [g])[0]
    return distances.mean_absolute_perturbation(
        x, x_adv, None if acceptance == "whole_video" else mask
    )


def _bracketed(search, bracket: list[float]):
    """``search`` (a :data:`~hba_lib.oracle.queries.Search`), keeping ``bracket = [lo, hi]``:
    the largest scale answered not adversarial and the smallest answered adversarial so far. A
    bisection returns its last adversarial scale, so its ``g`` lies in ``(lo, hi]`` at every
    step, whatever the model answers."""
    try:
        lam = next(search)
        while True:
            adversarial = yield lam
            if adversarial:
                bracket[1] = min(bracket[1], lam)
            else:
                bracket[0] = max(bracket[0], lam)
            lam = search.send(adversarial)
    except StopIteration as stop:
        return stop.value


def deletion_trial(
    x: torch.Tensor, p_hat: torch.Tensor, goal: Any, tol: float, cap: float, trial: str = "check",
    grow: float = 1.05, grid_points: int = 100, bracket: list[float] | None = None,
) -> Generator[Request, Answer, tuple[torch.Tensor, float]]:  # fmt: skip
    """One tentative deletion: ``(theta, g)`` of ``p_hat`` (``g = inf``: refused).

    ``check`` (the paper): query ``x + p_hat`` once; unless the goal accepts it, refuse (one
    query); else bisect ``g`` on ``[0, ||p_hat||]``. ``grow``: Opt-attack's initial search
    from ``||p_hat||`` (targeted: grow and scan a grid). ``bracket`` (``check``, an empty list):
    once the check has passed it holds ``[lo, hi]``, ``g`` in ``(lo, hi]``, as the bisection goes.
    """
    lam0 = float(torch.linalg.vector_norm(p_hat))
    theta = p_hat / max(lam0, 1e-30)
    if lam0 == 0.0:
        return theta, math.inf
    if trial == "grow":
        return theta, (yield from boundary_search(x, theta, lam0, goal, tol, cap, False, grow,
                                                  grid_points))  # fmt: skip
    ans = yield Request((x + p_hat).clamp_(0.0, 1.0).unsqueeze(0), "init")
    if not bool(goal.is_adversarial(ans.labels)[0]):
        return theta, math.inf
    search = untargeted_initial_search(lam0, math.inf, tol, known_adversarial=True)
    if bracket is not None:
        bracket[:] = [0.0, lam0]
        search = _bracketed(search, bracket)
    return theta, (yield from search_process(x, theta, search, goal, "init"))


class _Deletion(Stepper):
    """One deletion trial of :func:`select_key_frames` in flight: its frame, mask and
    perturbation, its process (counted, its queries watched by its own :class:`Closest`), the
    bisection's bracket and, once done, its ``(theta, g)``."""

    def __init__(self, t: int, m_new: torch.Tensor, p_new: torch.Tensor, process, tried: Closest,
                 bracket: list[float]) -> None:  # fmt: skip
        self.tally = [0]
        super().__init__(counted(process, self.tally))
        self.t, self.m_new, self.p_new, self.tried, self.bracket = t, m_new, p_new, tried, bracket
        self.verdict: bool | None = None  # its outcome, once certain and planned on
        self.theta = p_new / max(float(torch.linalg.vector_norm(p_new)), 1e-30)  # as the trial


def _certain(run: _Deletion, x: torch.Tensor, omega: float, cur_map: float, acceptance: str):
    """Whether ``run`` will be accepted (``True``), refused (``False``) or cannot tell yet
    (``None``), from what it has been answered: refused once its check failed; while it
    bisects, ``g`` lies in ``(lo, hi]`` and the MAP grows with ``g`` (every value of
    ``|clamp(x + g theta) - x|`` does, in floating point too), and :func:`accept_deletion` only
    accepts more as the new MAP falls, so the ends of the bracket decide it when they agree."""
    if run.done:
        theta, g = run.value
        return accept_deletion(acceptance, omega, cur_map,
                               key_frame_map(x, theta, g, run.m_new, acceptance))  # fmt: skip
    if len(run.bracket) < 2:  # the check not answered yet
        return None
    lo, hi = run.bracket
    high = key_frame_map(x, run.theta, hi, run.m_new, acceptance)
    if accept_deletion(acceptance, omega, cur_map, high):
        return True
    low = key_frame_map(x, run.theta, lo, run.m_new, acceptance) if lo > 0 else 0.0
    return None if accept_deletion(acceptance, omega, cur_map, low) else False


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
    trial: str = "check",
    initial_g: float | None = None,
    initial_x_adv: torch.Tensor | None = None,
    overlap: Callable[[], bool] | None = None,
) -> Generator[Request, Answer, KeyFrameSearch]:
    """Algorithm 1 for one candidate ``x_hat``: frame importance, then greedy deletion under
    the MAP bound ``omega`` (0-255). ``mask``: the spatial mask (``None``: every pixel).

    ``acceptance``: what the bound reads (:data:`ACCEPTANCE_RULES`, module docstring);
    ``trial``: how a deletion is tried (:data:`TRIALS`). ``initial_g``: ``g`` of the full
    candidate direction when the caller has already searched it (the candidate pruning of
    Algorithm 2), else it is searched here; ``initial_x_adv``: the closest adversarial video
    that search queried. Every query is phase ``init``. Returns a :class:`KeyFrameSearch`; its
    ``g`` is ``inf`` when even the full masked direction is not adversarial, its ``x_adv`` the
    closest adversarial video queried inside its mask, bit for bit as the oracle saw it.

    ``overlap`` (``check`` trials): a test that the budget can no longer cut this search (its
    caller knows the budget and what it still owes other searches). While it holds, the next
    trial starts as soon as every trial before it has a certain outcome (:func:`_certain`:
    refused, or accepted under omega), its queries asked in the same request as the rest of
    their bisections: a trial's queries depend only on which frames the trials before it
    dropped, never on their exact ``g``, so every trial asks exactly the queries and gets
    exactly the answers it would one after another, and the trials are taken in in their
    order: the same result, in fewer requests (for a model that answers a clip the same in any
    batch, as every oracle here assumes). ``None``: one trial after another. A model that
    answers NaN, or a server that stops answering, stops the search with the same error, but
    possibly at another query than one after another would.
    """
    if acceptance not in ACCEPTANCE_RULES:
        raise ValueError(f"acceptance must be one of {ACCEPTANCE_RULES}, got {acceptance!r}")
    if trial not in TRIALS:
        raise ValueError(f"trial must be one of {TRIALS}, got {trial!r}")
    if omega < 0:
        raise ValueError(f"omega (a MAP bound, 0-255) must be >= 0, got {omega}")
    m = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device) if mask is None else (
        mask.to(x.device, x.dtype))  # fmt: skip
    cap = math.sqrt(x.numel()) if cap is None else cap
    p = (x_hat - x) * m
    spent = [0]
    kept = Closest(x, m)  # the closest adversarial query inside the current mask m
    if initial_x_adv is not None:
        kept.offer(initial_x_adv.unsqueeze(0))
    importance, order = yield from counted(kept.watch(frame_importance(x, p, goal), goal), spent)

    lam0 = float(torch.linalg.vector_norm(p))
    theta = p / max(lam0, 1e-30)
    g = math.inf if initial_g is None else float(initial_g)
    if initial_g is None and lam0 > 0:  # unmasked, the candidate itself is x + p: adversarial
        g = yield from counted(kept.watch(boundary_search(
            x, theta, lam0, goal, tol, cap, mask is None, grow, grid_points), goal), spent)  # fmt: skip
    cur_map = key_frame_map(x, theta, g, m, acceptance)
    out = KeyFrameSearch(m, theta if math.isfinite(g) else None, g, cur_map, importance, order,
                         initial_g=g, initial_map=cur_map)  # fmt: skip
    out.queries, out.initial_queries = spent[0], spent[0] - len(importance)
    if not math.isfinite(g):
        return out
    frames_left = len(frame_support(m))
    pending = list(order)  # the frames still to try, in order
    flights: list[_Deletion] = []  # the trials started and not yet taken in, in order
    # the plan: the state once the first `planned` trials in flight are taken in, as their
    # outcomes (already certain) will have it; a trial starts only from the plan
    planned, plan_m, plan_p, plan_frames, plan_cur = 0, m, p, frames_left, cur_map

    def start_next() -> bool:
        """Start the next trial from the plan (the loop above, one frame at a time)."""
        nonlocal plan_frames
        while pending and plan_frames > 1:
            t = pending.pop(0)
            m_new = drop_frame(plan_m, t)
            p_new = plan_p * m_new
            if not bool(p_new.any()):
                continue
            bracket: list[float] = []
            tried = Closest(x)  # its queries all lie inside m_new (inside m)
            process = tried.watch(deletion_trial(x, p_new, goal, tol, cap, trial, grow, grid_points,
                                                 bracket if trial == "check" else None), goal)  # fmt: skip
            run = _Deletion(t, m_new, p_new, process, tried, bracket)
            run.advance(None)
            flights.append(run)
            return True
        pending.clear()
        return False

    def plan_ahead() -> bool:
        """Take the trials in flight whose outcome is certain into the plan, in order; whether
        every trial in flight now is, each refused or accepted under omega (then the next
        trial's outcome does not depend on the exact MAP the accepted one ends at: under omega,
        every rule accepts exactly what it would accept at any other MAP under omega)."""
        nonlocal planned, plan_m, plan_p, plan_frames, plan_cur
        while planned < len(flights):
            run = flights[planned]
            verdict = _certain(run, x, omega, plan_cur, acceptance)
            if verdict is None:
                return False
            if verdict:
                theta, g_at_most = run.value if run.done else (run.theta, run.bracket[1])
                new_map = key_frame_map(x, theta, g_at_most, run.m_new, acceptance)
                if not (run.done or new_map < omega):
                    return False
                plan_m, plan_p, plan_frames, plan_cur = (
                    run.m_new,
                    run.p_new,
                    plan_frames - 1,
                    new_map,
                )
            run.verdict = verdict
            planned += 1
        return True

    while True:
        while not flights or (overlap is not None and trial == "check" and overlap()
                              and plan_ahead()):  # fmt: skip
            if not start_next():
                break
        if not flights:
            break
        running = [run for run in flights if not run.done]
        if running:
            parts = [run.request for run in running]
            try:
                answer = yield merge(parts)
            except BaseException:  # the budget's, a model's NaN, a close: every trial ends
                for run in flights:
                    run.process.close()
                raise
            for run, part in zip(running, split(answer, parts)):
                run.advance(part)
            spent[0] += sum(req.points.shape[0] for req in parts)
        while flights and flights[0].done:  # taken in, in the order one after another has
            run = flights.pop(0)
            theta_new, g_new = run.value
            new_map = key_frame_map(x, theta_new, g_new, run.m_new, acceptance)
            accept = accept_deletion(acceptance, omega, cur_map, new_map)
            if accept:
                m, p, theta, g, cur_map = run.m_new, run.p_new, theta_new, g_new, new_map
                frames_left -= 1
                run.tried.restrict(m)  # what was kept before counts if it leaves frame t alone
                if kept.video is not None:
                    run.tried.offer(kept.video.unsqueeze(0))
                kept = run.tried
            elif run.tried.video is not None:
                kept.offer(run.tried.video.unsqueeze(0))
            out.trials.append(Trial(run.t, g_new, new_map, accept, frames_left, run.tally[0]))
            out.queries = spent[0]
            if planned:  # its outcome was planned on: it must be the one taken
                planned -= 1
                if accept != run.verdict:
                    raise RuntimeError(f"key-frame trial of frame {run.t}: planned "
                                       f"{run.verdict}, taken {accept}")  # fmt: skip
            if not planned:  # nothing planned ahead: the plan is the state
                plan_m, plan_p, plan_frames, plan_cur = m, p, frames_left, cur_map
    out.mask, out.theta, out.g, out.map = m, normalize(theta), g, cur_map
    out.x_adv = kept.video
    return out


# -- upper bounds on the queries a search asks (for running searches early, in lockstep) ---------
# Each bound follows the loops above and in ``hba_lib.oracle.queries``: it is the most queries the
# search can ask whatever the oracle answers. ``HeuristicAttack`` starts a search ahead of its turn
# only where these bounds prove the searches before it still fit in the budget.
_WIDTH_SLACK = 1.0 + 1e-6  # a norm of a sub-perturbation, or a grid step, rounded up


def bisection_queries(width: float, tol: float) -> float:
    """The most queries :func:`~hba_lib.oracle.queries.bisect` asks on an interval of
    ``width``: halvings until the width is ``<= tol``, plus one for floating-point rounding of
    the midpoints (``inf`` for an infinite width or a tolerance that is not > 0)."""
    if not width > tol:
        return 0
    if not (math.isfinite(width) and tol > 0):
        return math.inf
    n, w = 0, float(width)
    while w > tol:
        w /= 2.0
        n += 1
    return n + 1


def grow_queries(lam0: float, cap: float, grow: float) -> float:
    """The most queries the growing loop of
    :func:`~hba_lib.oracle.queries.targeted_initial_search` asks from ``lam0``: ``lam0``, then
    ``lam * grow`` while it stays ``<= cap`` (the same float products as the loop)."""
    if not (lam0 > 0 and grow > 1 and math.isfinite(cap)):
        return math.inf
    n, lam = 1, float(lam0)
    while True:
        lam *= grow
        if lam > cap:
            return n
        n += 1


def initial_search_queries(
    lam0: float, tol: float, targeted: bool = False, cap: float = math.inf,
    known_adversarial: bool = False, grow: float = 1.05, grid_points: int = 100,
    lam_max: float | None = None,
) -> float:  # fmt: skip
    """The most queries Opt-attack's initial search for ``g`` from ``lam0 = ||p||`` asks
    (:func:`~hba_lib.oracle.queries.untargeted_initial_search`, :func:`~hba_lib.oracle.queries.
    targeted_initial_search`), whatever ``best`` (the pruning bound) it is given. Targeted,
    ``lam_max`` bounds that ``best`` (default: ``max(lam0, cap)``, what any such search returns)."""
    if lam0 <= 0:
        return 0
    if not targeted:  # one query (at best or lam0) unless skipped, then [0, min(best, lam0)]
        return 1 + bisection_queries(lam0 * _WIDTH_SLACK, tol)
    top = max(lam0, cap) if lam_max is None else max(lam0, cap, lam_max)
    grid = max(grid_points - 2, 0)  # the grid's inner points
    start = 1 if known_adversarial else grow_queries(lam0, cap, grow)
    step = top * _WIDTH_SLACK / max(grid_points - 1, 1)  # a grid cell, where the bisection starts
    return max(start, 1) + grid + bisection_queries(step, tol)


def frame_norms(p: torch.Tensor) -> list[float]:
    """The L2 norm of ``p [C, T, H, W]`` on each frame."""
    return torch.linalg.vector_norm(p.transpose(0, 1).flatten(1), dim=1).tolist()


def key_frame_query_bound(
    p: torch.Tensor, tol: float, targeted: bool = False, cap: float = math.inf,
    trial: str = "check", grow: float = 1.05, grid_points: int = 100,
    initial_search: bool = False, known_adversarial: bool = False,
) -> float:  # fmt: skip
    """The most queries :func:`select_key_frames` asks for the masked perturbation
    ``p = (x_hat - x) * M`` (``[C, T, H, W]``): ``T`` for the frame importance, the initial
    boundary search when it is not given (``initial_search``), then at most ``T`` deletion
    trials. Every trial's perturbation is ``p`` on a subset of its frames, so its norm lies
    between the smallest nonzero frame norm and ``||p||``: a ``check`` trial is one query and a
    bisection on ``[0, ||p_hat||]``; a ``grow`` trial is the initial search from ``||p_hat||``."""
    num_frames = p.shape[1]
    norms = [v for v in frame_norms(p) if v > 0]
    if not norms:
        return num_frames
    norm = float(torch.linalg.vector_norm(p))
    total = float(num_frames)
    if initial_search:
        total += initial_search_queries(norm, tol, targeted, cap, known_adversarial, grow,
                                        grid_points)  # fmt: skip
    if trial == "check" or not targeted:  # one query (the check, or lam0), then a bisection
        per_trial = 1 + bisection_queries(norm * _WIDTH_SLACK, tol)
    else:  # targeted grow from the smallest norm a trial may have
        lam_min = min(norms) / _WIDTH_SLACK
        per_trial = initial_search_queries(lam_min, tol, True, cap, False, grow, grid_points,
                                           lam_max=norm)  # fmt: skip
    return total + num_frames * per_trial
