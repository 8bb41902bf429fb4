"""Query processes and the searches for ``g(theta)``: what attacks and heuristics share.

A *query process* is a generator that yields a :class:`Request` (a batch of videos to ask the
oracle about, and the phase to count them under) and is sent the oracle's
:class:`~hba_lib.oracle.Answer`. It never holds the oracle: a driver does
(``hba_lib.attacks.common.drive`` / ``drive_many``), which is what lets many videos, probes or
key-frame trials share one forward pass.

A *search* is a smaller generator: it yields the next ``lam`` to try along a direction
``theta`` and is sent whether ``x + lam * theta`` was adversarial; it returns ``g(theta)``, the
smallest adversarial ``lam`` it found (``inf`` on failure). The searches are those of
Opt-attack (Cheng et al., ICLR 2019) as ``docs/algorithm.md`` fixes them; they read like the
pseudo-code, and :func:`search_process` turns one into a query process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from hba_lib.oracle import Answer, BudgetExhausted
from hba_lib.oracle.subspace import Subspace, parse_subspace


class Request(NamedTuple):
    """A batch of videos ``[n, C, T, H, W]`` to query, its phase, and queries to keep in reserve."""

    points: torch.Tensor
    phase: str
    reserve: int = 0


QueryProcess = Generator[Request, Answer, Any]

# A search yields the next lam to query and is sent True when x + lam * theta is adversarial;
# it returns g (the smallest adversarial lam it found, inf on failure).
Search = Generator[float, bool, float]


# -- the searches for g(theta) ---------------------------------------------------------------------
def bisect(lo: float, hi: float, tol: float) -> Search:
    """Halve ``[lo, hi]`` (``lo`` not adversarial, ``hi`` adversarial) until narrower than ``tol``;
    return the adversarial end."""
    while hi - lo > tol:
        mid = (lo + hi) / 2.0
        if (yield mid):
            hi = mid
        else:
            lo = mid
    return hi


def untargeted_initial_search(
    lam0: float, best: float, tol: float, known_adversarial: bool = False
) -> Search:
    """Fine-grained + binary search from ``lam0 = ||p||`` (or from ``best`` when smaller).

    When ``best < lam0`` the point at ``best`` is queried first and the candidate is skipped
    (``inf``) if it is not adversarial. Otherwise ``lam0`` is queried unless
    ``known_adversarial`` (an unmasked candidate is itself the point at ``lam0``). Then bisect
    ``[0, hi]`` to ``tol``.
    """
    if best < lam0:
        if not (yield best):
            return math.inf
        hi = best
    else:
        hi = lam0
        if not known_adversarial and not (yield hi):
            return math.inf
    lo = 0.0
    return (yield from bisect(lo, hi, tol))


def targeted_initial_search(
    lam0: float,
    tol: float,
    cap: float,
    known_adversarial: bool = False,
    grow: float = 1.05,
    grid_points: int = 100,
    best: float = math.inf,
) -> Search:
    """Grow ``lam`` by x``grow`` until adversarial (``inf`` past ``cap``), scan a ``grid_points``
    grid on ``[0, lam]`` for the first adversarial point, then bisect to ``tol``.

    ``best`` (finite): only a ``g`` below it matters (candidate pruning), so the point at
    ``best`` is queried first and the candidate skipped (``inf``) if it is not adversarial;
    otherwise the grid scans ``[0, best]``.
    """
    lam = lam0
    if math.isfinite(best) and not (known_adversarial and lam0 <= best):
        if not (yield best):
            return math.inf
        lam = best
    elif not known_adversarial:
        while not (yield lam):
            lam *= grow
            if lam > cap:
                return math.inf
    lo, hi = 0.0, lam
    for v in np.linspace(0.0, lam, grid_points)[1:-1].tolist():  # the last point is lam itself
        if (yield v):
            hi = v
            break
        lo = v
    return (yield from bisect(lo, hi, tol))


def local_search(
    lam0: float, tol: float, cap: float, grow: float = 1.01, shrink: float = 0.99
) -> Search:
    """``g(theta')`` near a known ``g(theta) = lam0``.

    If ``lam0`` is not adversarial, raise the upper end by x``grow`` until it is (``inf`` past
    ``cap``); otherwise lower the lower end by x``shrink`` until it is not. The bracket is the
    last non-adversarial / adversarial pair seen; then bisect to ``tol``.
    """
    if (yield lam0):
        hi, lo = lam0, lam0 * shrink
        while (yield lo):
            hi, lo = lo, lo * shrink
            if lo < 1e-9:  # below this x + lo * theta is the clean video (checked not adversarial)
                lo = 0.0
                break
    else:
        lo, hi = lam0, lam0 * grow
        while True:
            if hi > cap:
                return math.inf
            if (yield hi):
                break
            lo, hi = hi, hi * grow
    return (yield from bisect(lo, hi, tol))


# -- helpers ---------------------------------------------------------------------------------------
def points(
    x: torch.Tensor, thetas: torch.Tensor, lams: Sequence[float], clip: bool = True
) -> torch.Tensor:
    """``clip(x + lam_i * theta_i)`` for a batch ``thetas [n, C, T, H, W]`` -> ``[n, C, T, H, W]``.

    ``clip=False`` leaves the clipping to the oracle (it clips every query): one pass fewer.
    """
    lam = torch.tensor(lams, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
    out = (lam * thetas).add_(x)  # same rounding as x + lam * theta, without a broadcast copy
    return out.clamp_(0.0, 1.0) if clip else out


def normalize(v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``v * mask / ||v * mask||`` over the last four dims (works on one or a batch of videos)."""
    if mask is not None:
        v = v * mask
    n = torch.linalg.vector_norm(v, dim=(-4, -3, -2, -1), keepdim=True)
    return v / n.clamp_min(1e-30)


def random_directions(
    n: int,
    shape: tuple[int, ...],
    generator: torch.Generator,
    mask: torch.Tensor | None = None,
    scale: int = 1,
    subspace: Subspace | str | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` random unit directions ``[n, C, T, H, W]``, zero outside ``mask``.

    ``subspace`` (:mod:`hba_lib.oracle.subspace`; ``None``: the full space) is where they are
    drawn: i.i.d. Gaussian values (the papers' probes), or Gaussian in a low-frequency subspace
    (``"resize:S"``: on a grid ``S`` times coarser in H and W, upsampled bilinearly, as QEBA;
    ``"dct:K"``: a low band of a 3-D DCT). ``scale = s > 1`` is the older name of
    ``"resize:s"``. ``std`` (a prior's per-pixel standard deviation, shaped like a video:
    :mod:`hba_lib.oracle.priors`) multiplies each probe before the mask. Either way the probes
    are masked before they are normalised, so no probe changes a pixel outside ``mask``.
    """
    space = parse_subspace(subspace)
    if scale > 1:
        if not space.is_full:
            raise ValueError("give either scale (probe_scale) or subspace, not both")
        space = Subspace("resize", scale)
    u = space.sample(n, tuple(shape), generator)
    if std is not None:
        u = u * std.to(u.device, u.dtype)
    return normalize(u, mask)


def search_process(
    x: torch.Tensor, theta: torch.Tensor, search: Search, goal: Any, phase: str = "init"
) -> Generator[Request, Answer, float]:
    """Run one search for ``g(theta)`` as a query process, one query per request."""
    try:
        lam = next(search)
        while True:
            ans = yield Request(points(x, theta.unsqueeze(0), [lam], clip=False), phase)
            lam = search.send(bool(goal.is_adversarial(ans.labels)[0]))
    except StopIteration as stop:
        return stop.value


def observe(process: QueryProcess, on_answer) -> QueryProcess:
    """Run the query process ``process`` as ``yield from`` would, calling ``on_answer(request,
    answer)`` for every request it is answered; returns what ``process`` returns. An exception
    thrown in (the budget's, say) goes on to ``process``."""
    try:
        request = next(process)
        while True:
            try:
                answer = yield request
            except GeneratorExit:
                raise
            except BaseException as exc:  # noqa: B036 - handed on, as ``yield from`` does
                request = process.throw(exc)
                continue
            on_answer(request, answer)
            request = process.send(answer)
    except StopIteration as stop:
        return stop.value


def merge(requests: Sequence[Request], reserve: int | None = None) -> Request:
    """One request for several (same phase): their points in order; ``reserve`` (default: the
    largest of theirs). A single request is returned as it is."""
    if len(requests) == 1 and reserve is None:
        return requests[0]
    pts = requests[0].points if len(requests) == 1 else torch.cat([r.points for r in requests])
    keep = max(r.reserve for r in requests) if reserve is None else reserve
    return Request(pts, requests[0].phase, keep)


def split(answer: Answer, requests: Sequence[Request]) -> list[Answer]:
    """The answer to :func:`merge` of ``requests``, cut back into one answer per request."""
    parts, offset = [], 0
    for request in requests:
        size = request.points.shape[0]
        parts.append(Answer(answer.labels[offset : offset + size],
                            answer.probs[offset : offset + size]))  # fmt: skip
        offset += size
    return parts


class Stepper:
    """A query process driven one answer at a time: its pending ``request`` and, once it has
    returned, ``done`` and its ``value``. :meth:`advance` with ``None`` starts it."""

    def __init__(self, process: QueryProcess) -> None:
        self.process = process
        self.request: Request | None = None
        self.done, self.value = False, None

    def advance(self, answer: Answer | None) -> None:
        try:
            self.request = next(self.process) if answer is None else self.process.send(answer)
        except StopIteration as stop:
            self.request, self.done, self.value = None, True, stop.value


def together(
    processes: Sequence[Generator[Request, Answer, Any]],
    done: Callable[[int, Any], None] | None = None,
) -> Generator[Request, Answer, list[Any]]:
    """Run several independent query processes as one: each step merges their pending requests
    into one :class:`Request` (the processes whose request has the phase of the first pending
    one, in order; the others wait) and splits the answer. Each process is sent exactly the
    answers it would get alone. Returns their values, in order; ``done(i, value)`` is called as
    process ``i`` returns.

    A :class:`~hba_lib.oracle.BudgetExhausted` thrown in for a merged request (it did not fit)
    is answered by asking again without its last part (that process waits), so what the budget
    allows goes to the processes in order; thrown in for a single part, it goes on to that
    process, which ends (its value is kept) or raises, as it would alone. Any other exception
    thrown in ends them all.
    """
    results: list[Any] = [None] * len(processes)
    pending: dict[int, Request] = {}

    def finished(i: int, value: Any) -> None:
        results[i] = value
        pending.pop(i, None)
        if done is not None:
            done(i, value)

    for i, proc in enumerate(processes):
        try:
            pending[i] = next(proc)
        except StopIteration as stop:
            finished(i, stop.value)
    while pending:
        phase = next(iter(pending.values())).phase
        idx = [i for i, req in pending.items() if req.phase == phase]
        while True:
            parts = [pending[i] for i in idx]
            merged = merge(parts)
            try:
                answer = yield merged
                break
            except BudgetExhausted as exc:
                if len(idx) > 1:
                    idx.pop()  # ask again for fewer; the last part waits
                    continue
                try:  # a single part that does not fit: its process decides, as alone
                    pending[idx[0]] = processes[idx[0]].throw(exc)
                except StopIteration as stop:
                    finished(idx[0], stop.value)
                idx = []
                break
        for i, part in zip(idx, split(answer, [pending[i] for i in idx])):
            try:
                pending[i] = processes[i].send(part)
            except StopIteration as stop:
                finished(i, stop.value)
    return results
