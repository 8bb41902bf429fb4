"""Opt-attack (Cheng et al., ICLR 2019) for videos, as fixed by ``docs/algorithm.md``.

The attack searches for the direction ``theta`` (unit L2, video-shaped) that minimises
``g(theta)``, the distance to the decision boundary along ``theta``:

1. **Initialisation** (:meth:`OptAttack.initialise`): candidate videos of other classes are
   queried (counted) to learn their class; each one the goal accepts gives ``theta = p / ||p||``,
   ``p = (x_hat - x) * M``; ``g(theta)`` by a fine-grained + binary search
   (:func:`untargeted_initial_search`, :func:`targeted_initial_search`); the smallest wins.
2. **Optimisation** (:meth:`OptAttack.optimise`): the random gradient-free estimate of eq. (1)
   with ``q`` probes ``theta + beta * u`` whose ``g`` comes from a :func:`local_search`, then a
   backtracking line search on ``eta``, with ``beta`` divided by 10 when ``eta`` collapses and a
   stop after ``max_beta_decays`` such divisions, ``max_iter`` iterations or the query budget.
3. **Output**: ``x_adv = clip(x + g(theta*) theta*)`` and one final check query.

Every search is a small generator that yields a ``lam`` to query and receives "adversarial?";
it reads like the pseudo-code. The ``q`` probes' local searches are independent, so the batched
mode runs them in **lockstep** (one oracle call per search step over all probes still searching)
and the sequential mode runs them one after another, one query per call. Both spend exactly the
same queries on the same points, and give the same result (``tests/test_opt_attack.py``).

Reproducibility: one ``seed`` fixes a run on a given device and batching. A model's float
arithmetic can depend on the batch size (about 1e-6 in the logits of the small C3D on a CPU),
so a query within that of the boundary can be answered differently when the same clip is
evaluated in another batch; from there the runs of two batchings can part. The equality tests
use a model whose arithmetic is per clip.

A 0/1 ``mask`` (video-shaped or broadcastable) restricts every direction and probe; pixels
outside it are never changed. ``init=(theta, g)`` skips the candidate search. These two are the
hooks the heuristics (key frames, saliency) plug into.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from hba_lib import metrics
from hba_lib.attacks.common import (
    AttackResult,
    QueryProcess,
    Request,
    TraceRow,
    drive,
    drive_many,
)
from hba_lib.goals import Goal, make_goal
from hba_lib.oracle import Answer, BudgetExhausted, Oracle

# A search yields the next lam to query and is sent True when x + lam * theta is adversarial;
# it returns g (the smallest adversarial lam it found, inf on failure).
Search = Generator[float, bool, float]


@dataclass
class OptAttackConfig:
    """Every constant of the attack (``docs/algorithm.md``); report these beside every MQ.

    - ``q``: random probes per gradient estimate; ``beta``: probe step (smoothing).
    - ``eta``: initial line-search step (carried over between iterations, reset on a collapse);
      ``eta_floor``: a collapse below it divides ``beta`` by 10; ``line_search_steps``: the most
      doublings / quarterings per iteration.
    - ``tol``: bisection tolerance on ``lam`` (L2 in [0, 1] units) for every search.
    - ``max_beta_decays``: stop after ``beta`` has been divided by 10 this many times.
    - ``max_iter``: iteration limit. ``query_budget``: the most queries one attack on one video
      spends (``None``: unlimited), whatever the oracle's own budget (which also holds).
    - ``grow``/``shrink``: local-search steps (x1.01 / x0.99); ``targeted_grow`` (x1.05) and
      ``grid_points`` (100) for the targeted initial search.
    - ``lam_cap``: searches give up past this ``lam`` (``None``: the diagonal of the [0, 1] box
      over the free values, ``sqrt(#values in the mask)``, beyond which every pixel has clipped).
    - ``lockstep``: run the ``q`` probes' local searches in lockstep (batched) or one by one.
    - ``seed``: seeds the probes' random directions (the same for every video).
    """

    q: int = 20
    beta: float = 0.005
    eta: float = 0.2
    eta_floor: float = 1e-4
    line_search_steps: int = 15
    tol: float = 1e-2
    max_beta_decays: int = 3
    max_iter: int = 1000
    query_budget: int | None = None
    grow: float = 1.01
    shrink: float = 0.99
    targeted_grow: float = 1.05
    grid_points: int = 100
    lam_cap: float | None = None
    lockstep: bool = True
    seed: int = 0


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
) -> Search:
    """Grow ``lam`` by x``grow`` until adversarial (``inf`` past ``cap``), scan a ``grid_points``
    grid on ``[0, lam]`` for the first adversarial point, then bisect to ``tol``."""
    lam = lam0
    if not known_adversarial:
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


def run_search(
    oracle: Oracle,
    x: torch.Tensor,
    theta: torch.Tensor,
    search: Search,
    goal: Goal,
    phase: str = "init",
) -> tuple[float, list[tuple[float, bool]]]:
    """Run one search for ``g(theta)`` through ``oracle`` (one query per step, counted).

    Returns ``g`` and the searched ``(lam, adversarial)`` pairs in order, e.g. for a picture of
    the boundary search or for ``g(theta)`` of a masked direction.
    """
    x = x.to(oracle.device, torch.float32)
    theta = theta.to(oracle.device, torch.float32).unsqueeze(0)
    steps: list[tuple[float, bool]] = []
    try:
        lam = next(search)
        while True:
            ans = oracle(points(x, theta, [lam], clip=False), phase)
            adv = bool(goal.is_adversarial(ans.labels)[0])
            steps.append((lam, adv))
            lam = search.send(adv)
    except StopIteration as stop:
        return stop.value, steps


class _State:
    """The attack's running best (read back when the budget runs out) and its bookkeeping."""

    def __init__(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        self.x = x
        self.mask = mask
        self.theta: torch.Tensor | None = None
        self.g = math.inf
        self.queries = 0
        self.by_phase: dict[str, int] = {"init": 0, "optimisation": 0, "check": 0}
        self.iterations = 0
        self.trace: list[TraceRow] = []
        self.stop_reason = "max_iter"

    def record(self) -> None:
        if self.theta is None or not math.isfinite(self.g):
            return
        x_adv = points(self.x, self.theta.unsqueeze(0), [self.g])[0]
        self.trace.append(
            TraceRow(self.queries, self.g, metrics.mean_absolute_perturbation(self.x, x_adv))
        )


class OptAttack:
    """Opt-attack for videos; configure once (:class:`OptAttackConfig`), run on many videos."""

    name = "Opt-attack"

    def __init__(self, config: OptAttackConfig | None = None, **overrides) -> None:
        cfg = config or OptAttackConfig()
        self.config = OptAttackConfig(**{**asdict(cfg), **overrides})

    # -- plumbing: asking the oracle ----------------------------------------------------------------
    def _ask(self, st: _State, pts: torch.Tensor, phase: str, reserve: int = 1):
        budget = self.config.query_budget
        if budget is not None and st.queries + pts.shape[0] > budget - reserve:
            raise BudgetExhausted(
                f"attack's query budget exhausted: {st.queries} of {budget} used, a request for "
                f"{pts.shape[0]} more ({phase}) does not fit"
            )
        answer: Answer = yield Request(pts, phase, reserve)
        st.queries += pts.shape[0]
        st.by_phase[phase] += pts.shape[0]
        return answer

    def _search_one(
        self, st: _State, goal: Goal, theta: torch.Tensor, search: Search, phase: str
    ) -> Generator[Request, Answer, float]:
        """Run one search, one query per oracle call."""
        try:
            lam = next(search)
            while True:
                ans = yield from self._ask(st, points(st.x, theta.unsqueeze(0), [lam], False), phase)
                lam = search.send(bool(goal.is_adversarial(ans.labels)[0]))
        except StopIteration as stop:
            return stop.value

    def _search_many(
        self, st: _State, goal: Goal, thetas: torch.Tensor, searches: list[Search], phase: str
    ) -> Generator[Request, Answer, list[float]]:
        """Run independent searches, in lockstep (one call per step) or one after another."""
        if not self.config.lockstep:
            out = []
            for theta, search in zip(thetas, searches):
                out.append((yield from self._search_one(st, goal, theta, search, phase)))
            return out
        results = [math.inf] * len(searches)
        lams: dict[int, float] = {}
        for i, search in enumerate(searches):
            try:
                lams[i] = next(search)
            except StopIteration as stop:
                results[i] = stop.value
        while lams:
            idx = list(lams)
            active = thetas if len(idx) == len(thetas) else thetas[idx]
            pts = points(st.x, active, [lams[i] for i in idx], clip=False)
            ans = yield from self._ask(st, pts, phase)
            adv = goal.is_adversarial(ans.labels).tolist()
            for j, i in enumerate(idx):
                try:
                    lams[i] = searches[i].send(bool(adv[j]))
                except StopIteration as stop:
                    results[i] = stop.value
                    del lams[i]
        return results

    def _cap(self, st: _State) -> float:
        if self.config.lam_cap is not None:
            return self.config.lam_cap
        free = st.x.numel() if st.mask is None else int((st.mask.expand_as(st.x) > 0).sum())
        return math.sqrt(max(free, 1))

    # -- the algorithm --------------------------------------------------------------------------
    def initialise(self, st: _State, goal: Goal, candidates: torch.Tensor):
        """Query the candidates; keep the direction with the smallest ``g`` (updates ``st``)."""
        cfg = self.config
        candidates = candidates.to(st.x.device, st.x.dtype)
        ans = yield from self._ask(st, candidates, "init")
        for i in goal.is_adversarial(ans.labels).nonzero().flatten().tolist():
            p = candidates[i] - st.x
            if st.mask is not None:
                p = p * st.mask
            lam0 = float(torch.linalg.vector_norm(p))
            if lam0 == 0.0:
                continue
            theta = p / lam0
            known = st.mask is None
            if goal.targeted:
                search = targeted_initial_search(
                    lam0, cfg.tol, self._cap(st), known, cfg.targeted_grow, cfg.grid_points
                )
            else:
                search = untargeted_initial_search(lam0, st.g, cfg.tol, known)
            g = yield from self._search_one(st, goal, theta, search, "init")
            if g < st.g:
                st.theta, st.g = theta, g

    def optimise(self, st: _State, goal: Goal, generator: torch.Generator):
        """The Opt-attack iterations from ``st.theta`` (updates ``st`` after every iteration)."""
        cfg = self.config
        cap = self._cap(st)
        theta, g2 = st.theta, st.g
        eta, beta, decays = cfg.eta, cfg.beta, 0
        st.stop_reason = "max_iter"
        for it in range(cfg.max_iter):
            # random gradient-free estimate, eq. (1): q probes theta + beta * u
            u = torch.randn((cfg.q, *st.x.shape), generator=generator, device=st.x.device)
            u = normalize(u, st.mask)
            probes = normalize(theta.unsqueeze(0) + beta * u, st.mask)
            searches = [local_search(g2, cfg.tol, cap, cfg.grow, cfg.shrink) for _ in range(cfg.q)]
            g1 = yield from self._search_many(st, goal, probes, searches, "optimisation")
            g1 = torch.tensor(g1, dtype=torch.float64)
            ok = torch.isfinite(g1)
            if not bool(ok.any()):  # every probe failed: reset eta, shrink beta
                eta, beta, decays = cfg.eta, beta / 10.0, decays + 1
                st.iterations = it + 1
                if decays >= cfg.max_beta_decays:
                    st.stop_reason = "converged"
                    break
                continue
            coef = torch.where(ok, (g1 - g2) / beta, torch.zeros_like(g1)).to(u.dtype)
            grad = (coef.to(u.device).view(-1, 1, 1, 1, 1) * u).sum(0) / cfg.q
            k = int(torch.argmin(torch.where(ok, g1, torch.full_like(g1, math.inf))))
            min_g1, min_probe = float(g1[k]), probes[k]

            # backtracking line search on eta
            min_theta, min_g2 = theta, g2
            for _ in range(cfg.line_search_steps):
                new_theta = normalize(theta - eta * grad, st.mask)
                new_g2 = yield from self._search_one(
                    st, goal, new_theta,
                    local_search(min_g2, cfg.tol, cap, cfg.grow, cfg.shrink), "optimisation",
                )  # fmt: skip
                eta *= 2.0
                if new_g2 < min_g2:
                    min_theta, min_g2 = new_theta, new_g2
                else:
                    break
            if min_g2 >= g2:
                for _ in range(cfg.line_search_steps):
                    eta *= 0.25
                    new_theta = normalize(theta - eta * grad, st.mask)
                    new_g2 = yield from self._search_one(
                        st, goal, new_theta,
                        local_search(g2, cfg.tol, cap, cfg.grow, cfg.shrink), "optimisation",
                    )  # fmt: skip
                    if new_g2 < g2:
                        min_theta, min_g2 = new_theta, new_g2
                        break
            # keep the best probe if it beats the line search
            if min_g2 <= min_g1:
                theta, g2 = min_theta, min_g2
            else:
                theta, g2 = min_probe, min_g1
            st.theta, st.g, st.iterations = theta, g2, it + 1
            st.record()

            if eta < cfg.eta_floor:  # eta collapsed: reset it, shrink beta, maybe stop
                eta, beta, decays = cfg.eta, beta / 10.0, decays + 1
                if decays >= cfg.max_beta_decays:
                    st.stop_reason = "converged"
                    break

    def process(
        self,
        x: torch.Tensor,
        goal: Goal,
        candidates: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        init: tuple[torch.Tensor, float] | None = None,
        device: str | torch.device | None = None,
    ) -> QueryProcess:
        """The attack on one clean video ``x [C, T, H, W]`` as a query process (see ``common``).

        Give ``candidates [N, C, T, H, W]`` (queried to find initial directions) or ``init =
        (theta, g)`` (a known adversarial direction and its ``g``). ``mask``: 0/1, broadcastable
        to ``x``. Returns an :class:`AttackResult`.
        """
        t0 = time.perf_counter()
        dev = torch.device(device) if device is not None else x.device
        x = x.detach().to(dev, torch.float32)
        mask_t = None if mask is None else mask.detach().to(dev, torch.float32)
        if candidates is None and init is None:
            raise ValueError("give candidate videos or init=(theta, g)")
        st = _State(x, mask_t)
        gen = torch.Generator(device=dev).manual_seed(self.config.seed)
        attacked = True
        try:
            ans = yield from self._ask(st, x.unsqueeze(0), "check")
            if int(ans.labels[0]) != goal.label:
                attacked = False
                st.stop_reason = "clean_misclassified"
            else:
                if init is not None:
                    st.theta = normalize(init[0].detach().to(dev, torch.float32), mask_t)
                    st.g = float(init[1])
                else:
                    yield from self.initialise(st, goal, candidates)
                st.record()
                if st.theta is None or not math.isfinite(st.g):
                    st.stop_reason = "no_initial_direction"
                else:
                    yield from self.optimise(st, goal, gen)
        except BudgetExhausted:
            st.stop_reason = "budget_exhausted"

        # output and final check
        x_adv, label, success = x, None, False
        if attacked and st.theta is not None and math.isfinite(st.g):
            x_adv = points(x, st.theta.unsqueeze(0), [st.g])[0]
            try:
                ans = yield from self._ask(st, x_adv.unsqueeze(0), "check", reserve=0)
                label = int(ans.labels[0])
                success = bool(goal.is_adversarial(ans.labels)[0])
            except BudgetExhausted:
                pass
        return AttackResult(
            x_adv=x_adv.cpu(),
            success=success,
            label=label,
            stop_reason=st.stop_reason,
            queries=st.queries,
            queries_by_phase=dict(st.by_phase),
            distance=metrics.l2_distance(x, x_adv),
            map=metrics.mean_absolute_perturbation(x, x_adv),
            map_star=metrics.mean_absolute_perturbation(x, x_adv, mask_t),
            sparsity=metrics.sparsity(None if mask_t is None else mask_t.expand_as(x)),
            iterations=st.iterations,
            trace=st.trace,
            wall_time=time.perf_counter() - t0,
            started=t0,
            attacked=attacked,
            goal=goal.describe(),
            info={"config": asdict(self.config)},
        )

    # -- convenience ------------------------------------------------------------------------------
    def run(
        self,
        oracle: Oracle,
        x: torch.Tensor,
        label: int,
        target: int | None = None,
        candidates: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        init: tuple[torch.Tensor, float] | None = None,
    ) -> AttackResult:
        """Attack one video through ``oracle`` (its budget applies; its counts accumulate)."""
        goal = make_goal(label, target)
        return drive(self.process(x, goal, candidates, mask, init, oracle.device), oracle)

    def run_many(
        self,
        oracle: Oracle,
        xs: torch.Tensor,
        labels: Sequence[int],
        targets: Sequence[int | None] | None = None,
        candidates: Sequence[torch.Tensor] | None = None,
        masks: Sequence[torch.Tensor | None] | None = None,
        inits: Sequence[tuple[torch.Tensor, float] | None] | None = None,
        progress: bool = True,
    ) -> list[AttackResult]:
        """Attack several videos in lockstep, each on a fresh fork of ``oracle`` with
        ``config.query_budget``: one joint forward pass answers all their pending requests.
        Each result equals what :meth:`run` gives on its own fresh oracle. ``progress``: a
        progress bar of the queries spent (out of the budgets, when there is one)."""
        n = len(xs)
        targets = targets or [None] * n
        candidates = candidates or [None] * n
        masks = masks or [None] * n
        inits = inits or [None] * n
        oracles = [oracle.fork(self.config.query_budget) for _ in range(n)]
        procs = [
            self.process(xs[i], make_goal(labels[i], targets[i]), candidates[i], masks[i],
                         inits[i], oracle.device)
            for i in range(n)
        ]  # fmt: skip
        if not progress:
            return drive_many(procs, oracles)
        from tqdm.auto import tqdm

        budget = self.config.query_budget
        with tqdm(total=None if budget is None else budget * n, unit="query", desc="Opt-attack",
                  mininterval=0.5) as bar:  # fmt: skip

            def step(done: int) -> None:
                bar.update(sum(o.used for o in oracles) - bar.n)
                bar.set_postfix_str(f"{done}/{n} videos done", refresh=False)

            results = drive_many(procs, oracles, on_step=step)
            bar.total = bar.n  # videos that stopped early leave part of their budget unspent
            bar.refresh()
        return results
