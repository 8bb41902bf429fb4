"""What every attack here shares: the drivers' entry points, the state of a search for the
boundary, the step-size schedule, and the whole run of a boundary-search attack.

- :class:`QueryAttack`: :meth:`~QueryAttack.run` (one video) and :meth:`~QueryAttack.run_many`
  (videos in lockstep, one joint forward pass per step) over the attack's query process; every
  attack is one (Opt-attack, Sign-OPT, Algorithm 2).
- :class:`BoundaryAttack`: an attack on ``g(theta)``, the distance to the decision boundary
  along a unit direction ``theta`` (Opt-attack and Sign-OPT). It holds the counted, budgeted
  plumbing (:meth:`~BoundaryAttack._ask`, the searches in lockstep), the initialisation from
  candidate videos, the backtracking line search, the iteration loop under a
  :class:`StepSchedule`, and the output (the closest adversarial video queried, one final
  check). A subclass writes one iteration's gradient estimate and move (:meth:`~BoundaryAttack.
  step`): Opt-attack's random gradient-free estimate, or Sign-OPT's signs.
- :class:`AttackConfig`: every constant, with Opt-attack's paper defaults.
- :class:`AttackState`: the running best and the bookkeeping of one attack on one video.

A 0/1 ``mask`` (video-shaped or broadcastable) restricts every direction and probe; pixels
outside it are never changed. ``init=(theta, g)`` skips the candidate search and
``initialiser=`` replaces it. These are the hooks the heuristics (key frames, saliency) plug into.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass

import torch

from hba_lib.attacks.common import (
    AttackResult,
    TraceRow,
    drive,
    drive_many,
    stopped_by,
    unchecked_success,
    validate_candidates,
    validate_video,
)
from hba_lib.oracle import (
    Answer,
    BudgetExhausted,
    NonFiniteOutputError,
    Oracle,
    distances,
)
from hba_lib.oracle.closest import Closest
from hba_lib.oracle.goals import Goal, make_goal
from hba_lib.oracle.priors import parse_prior
from hba_lib.oracle.queries import (
    QueryProcess,
    Request,
    Search,
    local_search,
    normalize,
    points,
    random_directions,
    targeted_initial_search,
    untargeted_initial_search,
)
from hba_lib.oracle.subspace import Subspace, parse_subspace


@dataclass
class AttackConfig:
    """Every constant of a boundary-search attack, with Opt-attack's paper defaults
    (``docs/algorithm.md``); report these beside every MQ.

    - ``q``: random probes per gradient estimate; ``beta``: probe step (smoothing).
    - ``eta``: initial line-search step (carried over between iterations, reset on a collapse);
      ``eta_floor``: a collapse below it divides ``beta`` by 10; ``line_search_steps``: the most
      doublings / quarterings per iteration.
    - ``tol``: bisection tolerance on ``lam`` (L2 in [0, 1] units) for every search.
    - ``tol_rel``: ``None`` (the paper: ``tol`` everywhere) or a tolerance *relative to the
      signal* for the optimisation's searches (probes and line search):
      ``tol_rel * beta * g / sqrt(d)``, ``d`` the number of free values. A probe
      ``theta + beta * u`` moves the boundary point by about ``beta * g / sqrt(d)`` along the
      boundary's normal, so an absolute ``tol`` far above that turns the gradient estimate into
      bisection noise (``docs/algorithm.md``, "Measured").
    - ``grad_scale``: the gradient estimate is multiplied by this (the authors' code: ``d = 15``).
    - ``eta_reset``: ``eta`` after a collapse (``None``: back to ``eta``; the authors' code: 1.0).
    - ``subspace``: where the random probes are drawn (:mod:`hba_lib.oracle.subspace`):
      ``None`` (the papers' i.i.d. Gaussian probes, every preset's default), ``"resize:S"``
      (Gaussian on a grid ``S`` times coarser in H and W, upsampled: QEBA's probes),
      ``"dct:K"`` (a low band of a 3-D DCT); ``":R"`` appended also reduces T by ``R``.
      Probes are masked after they are drawn, so they stay in the mask.
    - ``prior``: per-pixel weights of the random probes from the clean video
      (:mod:`hba_lib.oracle.priors`): ``None`` (the papers' probes, every preset's default) or
      ``"edge:P"`` (``"edge:P:F"``), more probe energy on the video's edges; no query.
    - ``probe_scale``: the older name of ``subspace="resize:S"`` (1: off).
    - ``max_beta_decays``: stop after ``beta`` has been divided by 10 this many times.
    - ``max_iter``: iteration limit. ``query_budget``: the most queries one attack on one video
      spends (``None``: unlimited), whatever the oracle's own budget (which also holds).
    - ``grow``/``shrink``: local-search steps (x1.01 / x0.99); ``targeted_grow`` (x1.05) and
      ``grid_points`` (100) for the targeted initial search.
    - ``lam_cap``: searches give up past this ``lam`` (``None``: the diagonal of the [0, 1] box
      over the free values, ``sqrt(#values in the mask)``, beyond which every pixel has clipped).
    - ``lockstep``: run independent searches in lockstep (batched) or one by one: the ``q``
      probes' local searches, and Algorithm 2's key-frame searches of its candidates.
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
    tol_rel: float | None = None
    grad_scale: float = 1.0
    eta_reset: float | None = None
    probe_scale: int = 1
    subspace: str | None = None
    prior: str | None = None

    def __post_init__(self) -> None:
        space = parse_subspace(self.subspace)  # a clear error for a bad name, before any query
        parse_prior(self.prior)
        if self.probe_scale > 1 and not space.is_full:
            raise ValueError("give either probe_scale or subspace, not both")

    def probe_space(self) -> Subspace:
        """The subspace the random probes are drawn in (``probe_scale`` folded in)."""
        if self.probe_scale > 1:
            return Subspace("resize", self.probe_scale)
        return parse_subspace(self.subspace)

    def probe_dim(self, free: int, shape: tuple[int, ...]) -> float:
        """The dimension the probes span: ``free`` values the attack may change, divided by
        the subspace's reduction for a video of ``shape``."""
        return max(free / self.probe_space().reduction(tuple(shape)), 1.0)

    def search_tol(self, beta: float, g: float, free: int, shape=None) -> float:
        """The optimisation's bisection tolerance at probe step ``beta`` and distance ``g``
        (``free``: values the attack may change; probes in a subspace span fewer)."""
        if self.tol_rel is None or not math.isfinite(g):
            return self.tol
        if shape is None or parse_subspace(self.subspace).is_full:  # probe_scale: H and W only
            return self.tol_rel * beta * g / math.sqrt(max(free / self.probe_scale**2, 1))
        return self.tol_rel * beta * g / math.sqrt(self.probe_dim(free, shape))


def validate_mask_init(
    x: torch.Tensor, mask: torch.Tensor | None, init: tuple[torch.Tensor, float] | None
) -> None:
    """A clear error unless ``mask`` is a 0/1 tensor broadcastable to ``x`` and ``init`` a
    ``(theta shaped like x, finite g > 0)``."""
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        try:
            ok = torch.broadcast_shapes(mask.shape, x.shape) == x.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to x {tuple(x.shape)}"
            )
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0 and 1")
        if not bool(mask.any()):
            raise ValueError("mask is all 0: no pixel may change")
    if init is not None:
        theta, g = init
        if not isinstance(theta, torch.Tensor) or tuple(theta.shape) != tuple(x.shape):
            raise ValueError(f"init theta must be a tensor shaped like x {tuple(x.shape)}")
        if not (math.isfinite(float(g)) and float(g) > 0):
            raise ValueError(f"init g must be finite and > 0, got {g!r}")


Initialiser = Callable[["BoundaryAttack", "AttackState", Goal, torch.Tensor], QueryProcess]


class AttackState:
    """The attack's running best (read back when the budget runs out) and its bookkeeping.

    Besides ``(theta, g)`` it keeps the closest adversarial video any query has seen (``best``,
    ``best_distance``): the exact tensor the oracle evaluated (the query, clipped to [0, 1]),
    never a rebuilt one, so the returned video is one the model answered. Points that change
    pixels outside ``mask`` do not count; narrowing ``mask`` (the key-frame search does) drops
    a kept video that leaves the new mask (:meth:`keep` offers one inside it). ``goal`` is set
    by the process; without it nothing is kept.
    """

    def __init__(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        self.x = x
        self.goal: Goal | None = None
        self.closest = Closest(x)
        self.error = ""
        self.mask = mask
        self.theta: torch.Tensor | None = None
        self.g = math.inf
        self.queries = 0
        self.by_phase: dict[str, int] = {"init": 0, "optimisation": 0, "check": 0}
        self.iterations = 0
        self.trace: list[TraceRow] = []
        self.stop_reason = "max_iter"
        self.info: dict = {}  # what an initialiser wants in the result (e.g. key-frame trials)
        self.probe_std: torch.Tensor | None = (
            None  # the probe prior's weights (BoundaryAttack.probes)
        )

    @property
    def mask(self) -> torch.Tensor | None:
        """Where the attack may perturb (0/1, broadcastable to ``x``; ``None``: everywhere)."""
        return self._mask

    @mask.setter
    def mask(self, mask: torch.Tensor | None) -> None:
        self._mask = mask
        self.closest.restrict(mask)

    @property
    def best(self) -> torch.Tensor | None:
        """The closest adversarial video seen inside the mask (``None``: none yet)."""
        return self.closest.video

    @property
    def best_distance(self) -> float:
        return self.closest.distance

    def inside(self, video: torch.Tensor) -> bool:
        """Whether ``video`` changes no pixel of ``x`` outside the mask."""
        return self.closest.inside(video)

    def see(self, pts: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep the closest of the queried ``pts`` answered adversarial (work only for those)."""
        adv = self.goal.is_adversarial(labels)
        if not bool(adv.any()):
            return
        idx = adv.nonzero().flatten().to(pts.device)
        self.keep(pts.index_select(0, idx).clamp_(0.0, 1.0))  # what the oracle evaluated

    def keep(self, videos: torch.Tensor) -> None:
        """Keep the closest of ``videos [n, C, T, H, W]``, each one the oracle evaluated (bit
        for bit) and answered adversarial, if it beats ``best`` and stays inside the mask."""
        self.closest.offer(videos)

    def record(self, queries: int | None = None) -> None:
        """Add ``(theta, g)`` to the trace, at ``queries`` (default: the queries spent so far)."""
        if self.theta is None or not math.isfinite(self.g):
            return
        x_adv = points(self.x, self.theta.unsqueeze(0), [self.g])[0]
        self.trace.append(
            TraceRow(
                self.queries if queries is None else queries,
                self.g,
                distances.mean_absolute_perturbation(self.x, x_adv),
                distances.l2_distance(self.x, x_adv),
            )
        )


@dataclass
class StepSchedule:
    """The step sizes of Opt-attack and Sign-OPT between iterations, and when to stop.

    ``eta`` (the line-search step) is carried from one iteration to the next. When it collapses
    below ``eta_floor``, or an iteration finds nowhere to move (every probe failed, ``g`` not
    finite), the schedule *decays*: ``eta`` goes back to ``eta_reset``, ``beta`` (the probe
    step) is divided by 10, and after ``max_decays`` decays the attack has converged.
    """

    eta: float
    beta: float
    eta_reset: float
    eta_floor: float
    max_decays: int
    decays: int = 0

    @classmethod
    def from_config(cls, cfg: AttackConfig) -> StepSchedule:
        reset = cfg.eta if cfg.eta_reset is None else cfg.eta_reset
        return cls(cfg.eta, cfg.beta, reset, cfg.eta_floor, cfg.max_beta_decays)

    def collapsed(self) -> bool:
        """``eta`` fell below its floor."""
        return self.eta < self.eta_floor

    def decay(self) -> bool:
        """Reset ``eta``, divide ``beta`` by 10; True when that was the last decay allowed."""
        self.eta, self.beta, self.decays = self.eta_reset, self.beta / 10.0, self.decays + 1
        return self.decays >= self.max_decays


class QueryAttack:
    """What every attack here shares: :meth:`run` (one video) and :meth:`run_many` (videos in
    lockstep) over its :meth:`process`, with inputs checked and ``config.query_budget`` held."""

    name = "attack"
    config: AttackConfig

    def process(self, x, goal, candidates=None, mask=None, init=None, device=None) -> QueryProcess:
        """The attack on one video as a query process (see ``hba_lib.oracle.queries``)."""
        raise NotImplementedError

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
        """Attack one video through ``oracle`` (its budget applies; its counts accumulate).

        Inputs are checked first (``x`` must have the oracle's ``num_frames``); a NaN/Inf answer
        raises :class:`~hba_lib.oracle.NonFiniteOutputError` naming the query."""
        validate_video(x, oracle.num_frames)
        goal = make_goal(label, target)
        options = self._process_options(oracle.remaining)
        return drive(self.process(x, goal, candidates, mask, init, oracle.device, **options),
                     oracle)  # fmt: skip

    def _process_options(self, remaining: float | None) -> dict:
        """Keyword arguments for :meth:`process` from the queries its oracle can still answer
        it (``None``: not known; the heuristic attack proves its overlapped searches against
        it)."""
        return {}

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
        width: int | None = None,
    ) -> list[AttackResult]:
        """Attack several videos in lockstep, each on a fork of ``oracle`` with
        ``config.query_budget``: one joint forward pass answers all their pending requests.

        Every query is also counted on ``oracle``, whose own budget caps the total (requests are
        admitted in video order). While that budget does not bind, each result equals what
        :meth:`run` gives on its own fresh oracle. Every video's inputs are checked before any
        query. A NaN/Inf answer ends only that video (``stop_reason == "nonfinite_output"``,
        ``info["error"]``); the others finish. ``progress``: a progress bar of the
        queries spent (out of the budgets, when there is one). ``width``: at most this many
        videos in lockstep, the next starting as one ends (``None``: all at once)."""
        n = len(xs)
        targets = targets or [None] * n
        candidates = candidates or [None] * n
        masks = masks or [None] * n
        inits = inits or [None] * n
        for what, seq in (("labels", labels), ("targets", targets), ("candidates", candidates),
                          ("masks", masks), ("inits", inits)):  # fmt: skip
            if len(seq) != n:
                raise ValueError(f"{n} videos but {len(seq)} {what}")
        for i in range(n):
            validate_video(xs[i], oracle.num_frames, f"xs[{i}]")
            if candidates[i] is not None:
                validate_candidates(candidates[i], xs[i], f"candidates[{i}]")
            elif inits[i] is None:
                raise ValueError(f"video {i}: give candidate videos or init=(theta, g)")
            validate_mask_init(xs[i], masks[i], inits[i])
        budget = self.config.query_budget
        oracles = [oracle.fork(budget) for _ in range(n)]
        shared = oracle.remaining  # the videos share it: known per video only if it cannot bind
        binds = math.isfinite(shared) and (budget is None or budget * n > shared)
        procs = [
            self.process(xs[i], make_goal(labels[i], targets[i]), candidates[i], masks[i],
                         inits[i], oracle.device,
                         **self._process_options(None if binds else oracles[i].remaining))
            for i in range(n)
        ]  # fmt: skip
        if not progress:
            return drive_many(procs, oracles, width=width)
        from tqdm.auto import tqdm

        with tqdm(total=None if budget is None else budget * n, unit="query", desc=self.name,
                  mininterval=0.5) as bar:  # fmt: skip

            def step(done: int) -> None:
                bar.update(sum(o.used for o in oracles) - bar.n)
                bar.set_postfix_str(f"{done}/{n} videos done", refresh=False)

            results = drive_many(procs, oracles, on_step=step, width=width)
            bar.total = bar.n  # videos that stopped early leave part of their budget unspent
            bar.refresh()
        return results


class BoundaryAttack(QueryAttack):
    """A search over unit directions ``theta`` for the smallest ``g(theta)`` (module docstring);
    configure once (``config``), run on many videos. Subclasses implement :meth:`step`."""

    name = "boundary attack"
    config: AttackConfig

    # -- plumbing: asking the oracle ----------------------------------------------------------------
    def _ask(self, st: AttackState, pts: torch.Tensor, phase: str, reserve: int = 1,
             see: bool = True):  # fmt: skip
        """Ask the oracle about ``pts`` under the budget, counted; ``see``: offer the answered
        adversarial points to ``st`` (``False``: the caller keeps that bookkeeping)."""
        budget = self.config.query_budget
        if budget is not None and st.queries + pts.shape[0] > budget - reserve:
            raise BudgetExhausted(
                f"attack's query budget exhausted: {st.queries} of {budget} used, a request for "
                f"{pts.shape[0]} more ({phase}) does not fit"
            )
        try:
            answer: Answer = yield Request(pts, phase, reserve)
        except NonFiniteOutputError:  # the model saw them: they count
            st.queries += pts.shape[0]
            st.by_phase[phase] += pts.shape[0]
            raise
        st.queries += pts.shape[0]
        st.by_phase[phase] += pts.shape[0]
        if see and st.goal is not None:
            st.see(pts, answer.labels)
        return answer

    def delegate(self, st: AttackState, process: QueryProcess):
        """Run a query process (e.g. a heuristic's) through this attack's counted, budgeted
        :meth:`_ask`; return its value."""
        try:
            request = next(process)
            while True:
                answer = yield from self._ask(st, request.points, request.phase)
                request = process.send(answer)
        except StopIteration as stop:
            return stop.value

    def _search_one(
        self, st: AttackState, goal: Goal, theta: torch.Tensor, search: Search, phase: str
    ) -> Generator[Request, Answer, float]:
        """Run one search, one query per oracle call."""
        try:
            lam = next(search)
            while True:
                ans = yield from self._ask(
                    st, points(st.x, theta.unsqueeze(0), [lam], False), phase
                )
                lam = search.send(bool(goal.is_adversarial(ans.labels)[0]))
        except StopIteration as stop:
            return stop.value

    def _search_many(
        self, st: AttackState, goal: Goal, thetas: torch.Tensor, searches: list[Search], phase: str
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

    def _cap(self, st: AttackState) -> float:
        if self.config.lam_cap is not None:
            return self.config.lam_cap
        free = st.x.numel() if st.mask is None else int((st.mask.expand_as(st.x) > 0).sum())
        return math.sqrt(max(free, 1))

    # -- the algorithm --------------------------------------------------------------------------
    def initialise(self, st: AttackState, goal: Goal, candidates: torch.Tensor):
        """Query the candidates; keep the direction with the smallest ``g`` (updates ``st``)."""
        candidates = candidates.to(st.x.device, st.x.dtype)
        ans = yield from self._ask(st, candidates, "init")
        for i in goal.is_adversarial(ans.labels).nonzero().flatten().tolist():
            best = math.inf if goal.targeted else st.g  # the targeted search starts afresh
            theta, g = yield from self.candidate_search(st, goal, candidates[i], best)
            if g < st.g:
                st.theta, st.g = theta, g

    def candidate_search(self, st: AttackState, goal: Goal, candidate: torch.Tensor,
                         best: float = math.inf):  # fmt: skip
        """``(theta, g)`` of one candidate's direction ``(candidate - x) * mask`` by Opt-attack's
        initial search from ``||p||``, abandoned after one query at ``best`` when it cannot
        beat it; ``(None, inf)`` when the candidate equals ``x`` on the mask."""
        cfg = self.config
        p = candidate - st.x
        if st.mask is not None:
            p = p * st.mask
        lam0 = float(torch.linalg.vector_norm(p))
        if lam0 == 0.0:
            return None, math.inf
        theta = p / lam0
        known = st.mask is None  # unmasked, x + p is the (queried) candidate: adversarial
        if goal.targeted:
            search = targeted_initial_search(lam0, cfg.tol, self._cap(st), known,
                                             cfg.targeted_grow, cfg.grid_points, best=best)  # fmt: skip
        else:
            search = untargeted_initial_search(lam0, best, cfg.tol, known)
        return theta, (yield from self._search_one(st, goal, theta, search, "init"))

    def probes(self, st: AttackState, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random unit probes for ``st``: in the mask, in the configured subspace, weighted
        by the configured prior (computed once per video from the clean ``st.x``, no query)."""
        cfg = self.config
        prior = parse_prior(cfg.prior)
        std = None
        if prior is not None:
            if st.probe_std is None:
                st.probe_std = prior.std(st.x)
            std = st.probe_std
        return random_directions(n, tuple(st.x.shape), generator, st.mask,
                                 subspace=cfg.probe_space(), std=std)  # fmt: skip

    def _free(self, st: AttackState) -> int:
        """Number of values the attack may change (the mask's support, or the whole video)."""
        return st.x.numel() if st.mask is None else int((st.mask.expand_as(st.x) > 0).sum())

    def line_search(
        self, st: AttackState, goal: Goal, theta: torch.Tensor, g2: float, grad: torch.Tensor,
        eta: float, tol: float, cap: float,
    ) -> Generator[Request, Answer, tuple[torch.Tensor, float, float]]:  # fmt: skip
        """Backtracking line search on ``eta`` along ``-grad`` from ``(theta, g2)``.

        Try ``eta``, doubling while ``g`` keeps falling (up to ``line_search_steps`` times); if
        the first try did not improve, quarter ``eta`` until ``g`` falls. Returns the best
        ``(theta, g)`` found (``(theta, g2)`` if none improved) and the ``eta`` to carry over.
        """
        cfg = self.config
        min_theta, min_g2 = theta, g2
        for _ in range(cfg.line_search_steps):
            new_theta = normalize(theta - eta * grad, st.mask)
            new_g2 = yield from self._search_one(
                st,
                goal,
                new_theta,
                local_search(min_g2, tol, cap, cfg.grow, cfg.shrink),
                "optimisation",
            )
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
                    st,
                    goal,
                    new_theta,
                    local_search(g2, tol, cap, cfg.grow, cfg.shrink),
                    "optimisation",
                )
                if new_g2 < g2:
                    min_theta, min_g2 = new_theta, new_g2
                    break
        return min_theta, min_g2, eta

    def optimise(self, st: AttackState, goal: Goal, generator: torch.Generator):
        """Iterate :meth:`step` from ``st.theta`` under the :class:`StepSchedule`: record after
        every move; decay on a collapse or a failed iteration; stop when converged,
        after ``max_iter`` iterations or at the budget."""
        cfg = self.config
        cap, free = self._cap(st), self._free(st)
        sched = StepSchedule.from_config(cfg)
        st.stop_reason = "max_iter"
        for it in range(cfg.max_iter):
            moved = yield from self.step(st, goal, generator, sched, cap, free)
            st.iterations = it + 1
            if moved:
                st.record()
            if (not moved or sched.collapsed() or not math.isfinite(st.g)) and sched.decay():
                st.stop_reason = "converged"
                break

    def step(
        self, st: AttackState, goal: Goal, generator: torch.Generator, sched: StepSchedule,
        cap: float, free: int,
    ) -> Generator[Request, Answer, bool]:  # fmt: skip
        """One iteration: estimate a gradient, move ``(st.theta, st.g)``, update ``sched.eta``;
        return False when there was nowhere to move (the schedule then decays)."""
        raise NotImplementedError

    def process(
        self,
        x: torch.Tensor,
        goal: Goal,
        candidates: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        init: tuple[torch.Tensor, float] | None = None,
        device: str | torch.device | None = None,
        initialiser: Initialiser | None = None,
    ) -> QueryProcess:
        """The attack on one clean video ``x [C, T, H, W]`` as a query process (see ``common``).

        Give ``candidates [N, C, T, H, W]`` (queried to find initial directions) or ``init =
        (theta, g)`` (a known adversarial direction and its ``g``). ``mask``: 0/1, broadcastable
        to ``x``. ``initialiser(attack, state, goal, candidates)``: a query process that replaces
        :meth:`initialise` (the key-frame search of Algorithm 1 plugs in here; it may narrow
        ``state.mask``). Returns an :class:`AttackResult`. Bad inputs raise before any query.
        """
        t0 = time.perf_counter()
        x = validate_video(x)
        if candidates is None and init is None:
            raise ValueError("give candidate videos or init=(theta, g)")
        if candidates is not None:
            candidates = validate_candidates(candidates, x)
        validate_mask_init(x, mask, init)
        budget = self.config.query_budget
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget < 0):
            raise ValueError(f"query_budget must be an int >= 0 or None, got {budget!r}")
        dev = torch.device(device) if device is not None else x.device
        x = x.to(dev, torch.float32)
        mask_t = None if mask is None else mask.detach().to(dev, torch.float32)
        st = AttackState(x, mask_t)
        st.goal = goal
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
                elif initialiser is not None:
                    yield from initialiser(self, st, goal, candidates.to(dev, torch.float32))
                else:
                    yield from self.initialise(st, goal, candidates)
                if initialiser is None or not st.trace:
                    st.record()
                if st.theta is None or not math.isfinite(st.g):
                    st.stop_reason = "no_initial_direction"
                else:
                    yield from self.optimise(st, goal, gen)
        except BudgetExhausted as exc:  # or a served model went away (OracleUnavailable)
            st.stop_reason, error = stopped_by(exc)
            st.error = error or st.error
        except NonFiniteOutputError as exc:  # only drive_many throws it in: this video ends
            st.stop_reason, st.error = "nonfinite_output", f"{type(exc).__name__}: {exc}"

        # output: the closest adversarial video queried inside the final mask, the very tensor
        # the oracle answered (x + g theta rebuilt can differ from it in the last bits, enough
        # to cross an int8 model's boundary), and one final check on exactly that tensor
        x_adv, label, success, note = x, None, False, {}
        rebuilt = None
        if attacked:
            if st.theta is not None and math.isfinite(st.g):
                rebuilt = points(x, st.theta.unsqueeze(0), [st.g])[0]
            if st.best is not None and st.inside(st.best):
                x_adv = st.best
                if rebuilt is None or st.best_distance < distances.l2_distance(x, rebuilt) * (
                    1 - 1e-6
                ):
                    note["kept_closest_adversarial_seen"] = True  # a stop cut a search short
            elif rebuilt is not None:  # never queried as such (e.g. init=): the check decides
                x_adv = rebuilt
        if x_adv is not x:
            try:
                ans = yield from self._ask(st, x_adv.unsqueeze(0), "check", reserve=0)
                label = int(ans.labels[0])
                success = bool(goal.is_adversarial(ans.labels)[0])
            except (BudgetExhausted, NonFiniteOutputError) as exc:
                success, failed = unchecked_success(exc, answered_adversarial=x_adv is st.best)
                note.update(failed)
            if not success and x_adv is st.best and "final_check_failed" not in note:
                # answered adversarial when queried, not now (float rounding that depends on the
                # batch, at the boundary): check the videos it replaced, closest first, while
                # the budget allows; each check is a query, counted
                note["closest_answered_otherwise"] = label
                for _, video in st.closest.runners_up:
                    try:
                        ans = yield from self._ask(st, video.unsqueeze(0), "check", reserve=0)
                    except (BudgetExhausted, NonFiniteOutputError):
                        break
                    if bool(goal.is_adversarial(ans.labels)[0]):
                        x_adv, label, success = video, int(ans.labels[0]), True
                        note["returned_runner_up"] = True
                        break
            if not success and x_adv is rebuilt:  # no answer says it is adversarial
                note["unqueried_point_not_adversarial"] = label
                x_adv, label = x, None
        if st.error:
            note["error"] = st.error
        return AttackResult(
            x_adv=x_adv.cpu(),
            success=success,
            label=label,
            stop_reason=st.stop_reason,
            queries=st.queries,
            queries_by_phase=dict(st.by_phase),
            distance=distances.l2_distance(x, x_adv),
            map=distances.mean_absolute_perturbation(x, x_adv),
            map_star=distances.mean_absolute_perturbation(x, x_adv, st.mask),
            sparsity=distances.sparsity(None if st.mask is None else st.mask.expand_as(x)),
            iterations=st.iterations,
            trace=st.trace,
            wall_time=time.perf_counter() - t0,
            started=t0,
            attacked=attacked,
            goal=goal.describe(),
            info={"config": asdict(self.config), "optimizer": self.name, **st.info, **note},
            mask=None if st.mask is None else (st.mask > 0).cpu(),
            linf=distances.linf_distance(x, x_adv),
        )
