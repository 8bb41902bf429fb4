"""Algorithm 2 of the paper: salient regions, then key frames, then any optimizer on the mask.

    M     <- SPATIAL(x, phi)                      saliency, no query (the clean video is ours)
    g_i   <- g((x_hat_i - x) * M)                 each candidate's distance, pruned: a search
                                                  that cannot beat the best so far stops
    M     <- Algorithm1(F, x, x_hat, M, omega)    key frames, for every surviving candidate
    theta <- normalize((x_hat - x) * M)           the one closest to the boundary (smallest g)
    theta <- optimise(theta) on directions masked by M

The paper's three configurations are presets (:data:`PRESETS`): ``opt`` (no heuristic),
``temporal`` (key frames, ``omega``) and ``temporal+spatial`` (``omega`` and ``phi``), with the
paper's defaults (untargeted omega 3, phi 0.6; targeted omega 30, phi 0.8). The optimizer is
one argument: ``opt`` (Opt-attack with the paper's constants), ``opt-authors`` (the authors'
code's constants), ``opt-relative`` (Opt-attack with a signal-relative tolerance) or
``sign-opt`` (Sign-OPT, one query a probe), ``hsja`` (HopSkipJump's boundary steps) or
``cgba`` (HopSkipJump's normal with CGBA's semicircular boundary search), each
optionally with probes in a low-frequency subspace (``"hsja@resize:4"``: QEBA's method on the
masks). :func:`make_attack` builds any combination.

Query accounting: saliency costs none; frame importance and the key-frame search are
initialisation queries (``init``), like the candidates' classes and boundary searches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from hba_lib.attacks.base import AttackConfig, AttackState, BoundaryAttack, QueryAttack
from hba_lib.attacks.hsja import HopSkipJump, SemicircleBoundary, parse_support
from hba_lib.attacks.opt_attack import OPT_PRESETS, OptAttack, OptAttackConfig
from hba_lib.attacks.sign_opt import SignOPT
from hba_lib.heuristics.key_frames import (
    ACCEPTANCE_RULES,
    TRIALS,
    KeyFrameSearch,
    initial_search_queries,
    key_frame_query_bound,
    select_key_frames,
)
from hba_lib.oracle import BudgetExhausted, NonFiniteOutputError
from hba_lib.oracle.closest import Closest
from hba_lib.oracle.goals import Goal
from hba_lib.oracle.priors import parse_prior
from hba_lib.oracle.queries import QueryProcess, Request, Stepper, observe, split, together
from hba_lib.oracle.subspace import parse_subspace

OPTIMIZERS = ("opt", "opt-authors", "opt-relative", "sign-opt", "hsja", "cgba")
"""Optimizer names for :func:`make_optimizer`; any of them may carry a probe subspace after an
``@`` (``"hsja@resize:4"``, ``"sign-opt@dct:4"``: :mod:`hba_lib.oracle.subspace`) and a probe
prior after a ``+`` (``"hsja+edge:2"``: :mod:`hba_lib.oracle.priors`); ``hsja`` and ``cgba`` also
a narrowed support after a ``+`` (``"hsja+edge:3+top:0.05"``: :mod:`hba_lib.attacks.hsja`)."""

PRESETS: dict[str, dict[bool, dict[str, float | None]]] = {
    "opt": {False: {"omega": None, "phi": 1.0}, True: {"omega": None, "phi": 1.0}},
    "temporal": {False: {"omega": 3.0, "phi": 1.0}, True: {"omega": 30.0, "phi": 1.0}},
    "temporal+spatial": {False: {"omega": 3.0, "phi": 0.6}, True: {"omega": 30.0, "phi": 0.8}},
}
"""The paper's configurations, by name and goal (``targeted``): omega (MAP bound, 0-255,
``None``: no key-frame search) and phi (salient area ratio, 1: no spatial sparsity)."""


SCHEDULE_TERMS = {"step": "step", "fade": "fade", "nb": "narrow_by"}  # name term -> hsja option


def make_optimizer(name: str = "opt", **overrides) -> BoundaryAttack:
    """An optimizer by name (:data:`OPTIMIZERS`), with constant overrides; ``name@subspace``
    draws its probes in that subspace (``"hsja@resize:4"`` is QEBA's method) and ``name+prior``
    weights them by a prior from the clean video (``"hsja+edge:2"``:
    :mod:`hba_lib.oracle.priors`); both: ``"hsja@dct:4+edge:2"``. ``+top:K[:F]`` (``hsja``,
    ``cgba``) narrows the support once a share of the budget is spent, and their terms
    ``+step:K[:F]``, ``+fade:A:B`` and ``+nb:K[:T]`` set the three options screened on ``val``
    (:class:`~hba_lib.attacks.hsja.HopSkipJumpConfig`)."""
    head, *terms = name.split("+")
    base, _, subspace = head.partition("@")
    prior = support = ""
    schedule = {}  # hsja's (and cgba's) step, fade and narrow_by terms
    for term in terms:
        key = SCHEDULE_TERMS.get(term.split(":")[0])
        if key is not None:
            if base not in ("hsja", "cgba"):
                raise ValueError(f"optimizer {name!r}: {term!r} is a term of hsja and cgba")
            if key in schedule or key in overrides:
                raise ValueError(f"optimizer {name!r} names {key} twice")
            schedule[key] = term
        elif term.startswith("top:"):
            if support:
                raise ValueError(f"optimizer {name!r} names two supports")
            support = term
        elif prior:
            raise ValueError(f"optimizer {name!r} names two priors")
        else:
            prior = term
    if subspace:
        if "subspace" in overrides:
            raise ValueError(f"optimizer {name!r} names a subspace; do not pass subspace= too")
        parse_subspace(subspace)  # a clear error for a bad name
        overrides["subspace"] = subspace
    if prior:
        if "prior" in overrides:
            raise ValueError(f"optimizer {name!r} names a prior; do not pass prior= too")
        parse_prior(prior)
        overrides["prior"] = prior
    if support:
        if base not in ("hsja", "cgba"):
            raise ValueError(f"optimizer {name!r}: only hsja and cgba narrow their support")
        if "support" in overrides:
            raise ValueError(f"optimizer {name!r} names a support; do not pass support= too")
        parse_support(support)
        overrides["support"] = support
    overrides.update(schedule)
    if base == "sign-opt":
        optimizer: BoundaryAttack = SignOPT(**overrides)
    elif base == "hsja":
        optimizer = HopSkipJump(**overrides)
    elif base == "cgba":
        optimizer = SemicircleBoundary(**overrides)
    else:
        presets = {"opt": "paper", "opt-authors": "authors", "opt-relative": "relative"}
        if base not in presets:
            raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}, "
                             "optionally with '@subspace'")  # fmt: skip
        optimizer = OptAttack(OptAttackConfig(**OPT_PRESETS[presets[base]]), **overrides)
    space, weights = optimizer.config.probe_space(), parse_prior(optimizer.config.prior)
    tags = ([] if space.is_full else [space.spec]) + ([] if weights is None else [weights.spec])
    narrowed = parse_support(getattr(optimizer.config, "support", None))
    tags += [] if narrowed is None else [narrowed.spec]
    if isinstance(optimizer, HopSkipJump):
        tags += [t.spec for t in (optimizer.boost, optimizer.fading, optimizer.narrowing_by)
                 if t is not None]  # fmt: skip
    if tags:
        optimizer.name = f"{optimizer.name} [{', '.join(tags)}]"
    return optimizer


@dataclass
class HeuristicConfig:
    """The heuristics' constants: ``omega`` (MAP bound for key frames, 0-255; ``None``: no
    key-frame search), ``phi`` (share of each frame's pixels kept by saliency; 1: none),
    ``saliency`` (``spectral_residual`` or ``fine_grained``), ``saliency_backend`` (``torch``
    or ``opencv``), ``acceptance`` (what omega bounds: ``paper``, the MAP on the selected key
    frames; ``whole_video``; the authors' ``adversarial_once_under_omega``), ``trial`` (how a
    deletion is tried: the paper's ``check`` of ``x + p_hat``, or ``grow``), ``prune`` (skip a
    candidate whose boundary search cannot beat the best ``g`` found so far, and run
    Algorithm 1 on the survivors only; ``False``: on every adversarial candidate),
    ``batch_key_frames`` (the key-frame searches in lockstep, for more clips a forward:
    ``"auto"``, the default, runs a search early only where upper bounds on the queries prove
    the result is exactly the one-after-another one; ``True``, the survivors' searches all in
    lockstep, which differs where a budget cuts the stage; ``False``, one after another)."""

    omega: float | None = 3.0
    phi: float = 0.6
    saliency: str = "spectral_residual"
    saliency_backend: str = "torch"
    acceptance: str = "paper"
    trial: str = "check"
    prune: bool = True
    batch_key_frames: bool | str = "auto"

    def __post_init__(self) -> None:
        if self.omega is not None and not self.omega >= 0:
            raise ValueError(f"omega must be >= 0 or None, got {self.omega}")
        if not 0.0 < self.phi <= 1.0:
            raise ValueError(f"phi must be in (0, 1], got {self.phi}")
        if self.acceptance not in ACCEPTANCE_RULES:
            raise ValueError(f"acceptance must be one of {ACCEPTANCE_RULES}")
        if self.trial not in TRIALS:
            raise ValueError(f"trial must be one of {TRIALS}")
        if self.batch_key_frames not in (True, False, "auto"):
            raise ValueError(f"batch_key_frames must be True, False or 'auto', got "
                             f"{self.batch_key_frames!r}")  # fmt: skip


class HeuristicAttack(QueryAttack):
    """Algorithm 2: saliency mask, key frames (Algorithm 1), then ``optimizer`` on the mask.

    ``run`` / ``run_many`` / ``process`` as :class:`OptAttack`; every query goes through the
    optimizer's counted, budgeted plumbing (its ``config.query_budget`` holds for the whole
    attack, heuristics included).
    """

    def __init__(
        self,
        optimizer: BoundaryAttack | str = "opt",
        config: HeuristicConfig | None = None,
        name: str | None = None,
        **overrides,
    ) -> None:
        heur = {
            k: overrides.pop(k) for k in list(overrides) if k in HeuristicConfig.__annotations__
        }
        self.heuristics = HeuristicConfig(**{**asdict(config or HeuristicConfig()), **heur})
        self.optimizer = make_optimizer(optimizer, **overrides) if isinstance(optimizer, str) else (
            optimizer)  # fmt: skip
        self.name = name or self._default_name()

    def _process_options(self, remaining: float | None) -> dict:
        return {"oracle_remaining": remaining}

    def _default_name(self) -> str:
        h = self.heuristics
        parts = [self.optimizer.name]
        if h.omega is not None:
            parts.append(f"temporal (omega {h.omega:g})")
        if h.phi < 1.0:
            parts.append(f"spatial (phi {h.phi:g})")
        return " + ".join(parts)

    @property
    def config(self) -> AttackConfig:
        """The optimizer's constants (``query_budget`` among them)."""
        return self.optimizer.config

    # -- Algorithm 2 ----------------------------------------------------------------------------
    def spatial_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """``SPATIAL(x, phi)``: the top-``phi`` salient pixels of each clean frame (no query)."""
        h = self.heuristics
        if h.phi >= 1.0:
            return None
        from hba_lib.heuristics.saliency import saliency_mask

        return saliency_mask(x, h.phi, method=h.saliency, backend=h.saliency_backend)

    def candidate_starts(self, attack: BoundaryAttack, st: AttackState, goal: Goal,
                         candidates: torch.Tensor, adversarial: list[int],
                         found: list | None = None, on_search=None):  # fmt: skip
        """``g`` of each adversarial candidate's direction on the spatial mask ``st.mask``, the
        candidates in order; returns ``[(index, g, video)]`` of those Algorithm 1 should run
        on, ``video`` the closest adversarial video the search queried (exactly as queried).

        With ``prune`` (the authors' code does the same), a candidate's search first asks
        whether it can beat the best ``g`` so far (one query at that distance) and is
        abandoned if not, so the survivors are the candidates that set a new best in turn,
        the best of all among them. Without it, every candidate with a finite ``g``.

        ``found`` (a list) receives each start as it is found, ``on_search(k)`` is called as
        the search of ``adversarial[k]`` begins (:func:`key_frames_overlapped` reads both)."""
        starts, best, before = [] if found is None else found, math.inf, st.queries
        for k, i in enumerate(adversarial):
            if on_search is not None:
                on_search(k)
            seen = Closest(st.x)
            if st.mask is None:  # the candidate itself (queried above) is the point at ||p||
                seen.offer(candidates[i].unsqueeze(0))
            bound = best if self.heuristics.prune else math.inf
            theta, g = yield from seen.watch(
                attack.candidate_search(st, goal, candidates[i], bound), goal
            )
            if theta is None:
                continue
            if math.isfinite(g) and (g < best or not self.heuristics.prune):
                starts.append((i, g, seen.video))
            best = min(best, g)
        st.info.setdefault("key_frames", {})["start_queries"] = st.queries - before
        return starts

    def key_frame_initialiser(self, attack: BoundaryAttack, st: AttackState, goal: Goal,
                              candidates: torch.Tensor, limit: float | None = None):  # fmt: skip
        """Algorithm 1 on the candidates that survive :meth:`candidate_starts`; the one whose
        key-frame direction is closest to the boundary (smallest ``g``: the paper's "initial
        direction which has the minimum distance to the decision boundary") seeds ``st``.

        The survivors' key-frame searches are independent of one another: with
        ``batch_key_frames`` (and the optimizer's ``lockstep``) they run in lockstep
        (:func:`key_frames_in_lockstep`), one request per step for all, with exactly the
        queries and the result of running them one after another whenever the budget does not
        cut them; where a budget cuts the stage, one after another finishes the first survivors
        and lockstep has every survivor half done, so the results differ. ``"auto"`` (the
        default) runs them, and each survivor's search as soon as its candidate is found,
        alongside the candidates' boundary searches (:func:`key_frames_overlapped`), only where
        bounds on the queries prove the result is the one-after-another one; ``limit`` is the
        budget it proves that against (the queries the attack may spend, ``inf``: none;
        ``None``: not known, so one after another)."""
        h, cfg = self.heuristics, attack.config
        spatial, cap = st.mask, attack._cap(st)  # st.mask narrows as key frames are found
        ans = yield from attack._ask(st, candidates, "init")
        adversarial = goal.is_adversarial(ans.labels).nonzero().flatten().tolist()
        searches, best, starts = [], None, []

        def search(i: int, g0: float, seen: torch.Tensor | None, overlap=None):
            return select_key_frames(
                st.x, candidates[i], goal, h.omega, spatial, cfg.tol, cap, h.acceptance,
                cfg.targeted_grow, cfg.grid_points, h.trial, initial_g=g0, initial_x_adv=seen,
                overlap=overlap,
            )  # fmt: skip

        def adopt(i: int, found: KeyFrameSearch, queries: int | None = None) -> None:
            """What follows candidate ``i``'s search: keep it if it is the closest so far."""
            nonlocal best
            searches.append((i, found))
            usable = found.theta is not None and math.isfinite(found.g)
            if usable and (best is None or found.g < best[1].g):
                best = (i, found)
                st.theta, st.g, st.mask = found.theta, found.g, found.mask
                if found.x_adv is not None:  # the closest it queried inside its mask
                    st.keep(found.x_adv.unsqueeze(0))
                st.record(queries)  # the trace shows the key-frame search's progress

        def finished_starts(value: list) -> None:
            nonlocal starts
            starts = value

        try:
            if h.batch_key_frames == "auto" and cfg.lockstep and limit is not None:
                chain_bound = self._candidate_bounds(attack, st, goal, candidates, adversarial,
                                                     spatial, cap)  # fmt: skip

                def search_bound(i: int) -> float:
                    p = candidates[i] - st.x
                    p = p if spatial is None else p * spatial
                    return key_frame_query_bound(p, cfg.tol, goal.targeted, cap, h.trial,
                                                 cfg.targeted_grow, cfg.grid_points)  # fmt: skip

                found: list = []
                chain = self.candidate_starts(attack, st, goal, candidates, adversarial, found,
                                              chain_bound.begin)  # fmt: skip
                yield from key_frames_overlapped(attack, st, goal, spatial, chain, found,
                                                 finished_starts, chain_bound, search_bound,
                                                 search, adopt, limit)  # fmt: skip
                return
            starts = yield from self.candidate_starts(attack, st, goal, candidates, adversarial)
            if h.batch_key_frames is True and cfg.lockstep and len(starts) > 1:
                yield from key_frames_in_lockstep(attack, st, goal, spatial, starts, search, adopt)
            else:
                for i, g0, seen in starts:
                    adopt(i, (yield from attack.delegate(st, search(i, g0, seen))))
        finally:  # also when the budget cuts the search: the result says what was tried
            st.info["key_frames"] = {
                "start_queries": st.info.get("key_frames", {}).get("start_queries", 0),
                "adversarial_candidates": adversarial,
                "survivors": [start[0] for start in starts],
                "candidates": [i for i, _ in searches],
                "searches": [f.as_dict() for _, f in searches],
                **({"chosen": best[0], "key_frames": best[1].key_frames} if best else {}),
            }

    @staticmethod
    def _candidate_bounds(attack: BoundaryAttack, st: AttackState, goal: Goal,
                          candidates: torch.Tensor, adversarial: list[int],
                          spatial: torch.Tensor | None, cap: float) -> ChainBound:  # fmt: skip
        """Upper bounds on the queries of each candidate's boundary search in
        :meth:`candidate_starts` (``inf`` for an optimizer whose search is not Opt-attack's)."""
        cfg = attack.config
        if type(attack).candidate_search is not BoundaryAttack.candidate_search:
            return ChainBound([math.inf] * len(adversarial))
        lam0 = []
        for i in adversarial:
            p = candidates[i] - st.x
            lam0.append(float(torch.linalg.vector_norm(p if spatial is None else p * spatial)))
        top = max([cap, *lam0])
        return ChainBound([
            initial_search_queries(v, cfg.tol, goal.targeted, cap, spatial is None,
                                   cfg.targeted_grow, cfg.grid_points, lam_max=top)
            for v in lam0
        ])  # fmt: skip

    def process(
        self,
        x: torch.Tensor,
        goal: Goal,
        candidates: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        init: tuple[torch.Tensor, float] | None = None,
        device: str | torch.device | None = None,
        oracle_remaining: float | None = None,
    ) -> QueryProcess:
        """Algorithm 2 on one clean video as a query process; returns an :class:`AttackResult`.

        ``mask`` (optional) is multiplied into the saliency mask; ``init`` skips the
        heuristics' search (the optimizer starts from it on the spatial mask).
        ``oracle_remaining``: the queries the oracle that answers this process can still
        answer it (``math.inf``: no budget; :meth:`run` and :meth:`run_many` pass it). With
        ``batch_key_frames="auto"`` the key-frame stage overlaps its searches only where it can
        prove the result against the tighter of it and ``query_budget``; ``None`` (not known):
        one after another.
        """
        dev = torch.device(device) if device is not None else x.device
        spatial = self.spatial_mask(x.detach().to(dev, torch.float32))
        if mask is not None:
            mask = mask.to(dev, torch.float32)
            spatial = mask if spatial is None else spatial * mask
        use_key_frames = self.heuristics.omega is not None and init is None
        limit = None
        if oracle_remaining is not None:
            budget = self.config.query_budget
            limit = min(math.inf if budget is None else budget, oracle_remaining)

        def initialiser(attack, st, goal, candidates):
            return self.key_frame_initialiser(attack, st, goal, candidates, limit)

        result = yield from self.optimizer.process(
            x, goal, candidates, spatial, init, dev,
            initialiser=initialiser if use_key_frames else None,
        )  # fmt: skip
        result.info["heuristics"] = asdict(self.heuristics)
        result.info["attack"] = self.name
        return result


class FrameGroups:
    """The adversarial points one key-frame search queried, for replaying later what
    :meth:`AttackState.see <hba_lib.attacks.base.AttackState.see>` would have kept of them.

    Which mask a point is kept under depends on the searches before it, so the points are
    grouped by what decides that: whether the point stays inside the spatial mask, and the set
    of frames it changes (every mask in play is the spatial mask with whole frames dropped).
    Each group keeps its closest point (the first of equals), with its distance computed as
    :class:`~hba_lib.oracle.closest.Closest` computes it and its place in the query order."""

    def __init__(self, x: torch.Tensor, spatial: torch.Tensor | None, goal: Goal) -> None:
        self.x, self.goal = x, goal
        self._outside = None if spatial is None else spatial.expand_as(x) == 0
        self.groups: dict[tuple, tuple[float, int, torch.Tensor]] = {}
        self.queries = 0  # queries answered for this search
        self._seen = 0

    def add(self, pts: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one answered request (as ``AttackState.see`` reads it)."""
        self.queries += pts.shape[0]
        adv = self.goal.is_adversarial(labels)
        if not bool(adv.any()):
            return
        videos = pts.index_select(0, adv.nonzero().flatten().to(pts.device)).clamp_(0.0, 1.0)
        d = torch.linalg.vector_norm((videos - self.x).flatten(1), dim=1).tolist()
        changed = videos != self.x
        frames = changed.flatten(3).any(3).any(1).tolist()  # [n, T]
        inside = [True] * len(d) if self._outside is None else (
            (~(changed & self._outside).flatten(1).any(1)).tolist())  # fmt: skip
        for k in range(len(d)):
            key = (inside[k], tuple(frames[k]))
            if key not in self.groups or d[k] < self.groups[key][0]:
                self.groups[key] = (d[k], self._seen + k, videos[k].clone())
        self._seen += len(d)

    def watch(self, process: QueryProcess):
        """Run ``process``, recording every request it is answered; returns its value."""
        return (yield from observe(process, lambda req, ans: self.add(req.points, ans.labels)))

    def offer_to(self, closest: Closest) -> None:
        """What offering every recorded point to ``closest``, in query order, would leave."""
        inside = [v for v in self.groups.values() if closest.inside(v[2])]
        if inside:
            d, _, video = min(inside, key=lambda v: (v[0], v[1]))
            if d < closest.distance:
                closest.distance, closest.video = d, video


class ChainBound:
    """The most queries the candidates' boundary searches (run one after another by
    :meth:`HeuristicAttack.candidate_starts`) may still ask: the rest of the current search's
    bound and the bounds of those after it. ``begin(k)`` as search ``k`` starts, ``add(n)`` as
    it is answered ``n`` queries."""

    def __init__(self, bounds: list[float]) -> None:
        self.bounds, self.k, self.spent = bounds, 0, 0

    def begin(self, k: int) -> None:
        self.k, self.spent = k, 0

    def add(self, n: int) -> None:
        self.spent += n

    def left(self) -> float:
        if self.k >= len(self.bounds):
            return 0
        current = self.bounds[self.k] - self.spent
        if current < 0:  # a bound that did not hold: prove nothing more
            return math.inf
        return current + sum(self.bounds[self.k + 1 :])


class _Search(Stepper):
    """One key-frame search of :func:`key_frames_overlapped`: its process, what it queried,
    its bound, its pending request and, once done, its value."""

    def __init__(self, start: tuple, process, groups: FrameGroups, bound: float,
                 safe: list[bool]) -> None:  # fmt: skip
        super().__init__(process)
        self.start, self.groups, self.bound = start, groups, bound
        self.safe = safe  # [True] while the budget cannot cut it (its trials may overlap)

    def left(self) -> float:
        """The most queries it may still ask."""
        left = self.bound - self.groups.queries
        return 0 if self.done else (left if left >= 0 else math.inf)


def key_frames_overlapped(attack: BoundaryAttack, st: AttackState, goal: Goal,
                          spatial: torch.Tensor | None, chain: QueryProcess, found: list,
                          finished, chain_bound: ChainBound, search_bound, search, adopt,
                          limit: float):  # fmt: skip
    """Algorithm 2's initial stage with its searches overlapped, and exactly the queries and
    the result of running them one after another (``batch_key_frames="auto"``).

    One after another, the candidates' boundary searches (``chain``, the process of
    :meth:`HeuristicAttack.candidate_starts`, which appends each survivor to ``found``) come
    first, then each survivor's key-frame search (``search(i, g0, video)``) in turn. Here a
    survivor's search starts as soon as its candidate is found, and every search with a pending
    request shares one request a step. A key-frame search's request is asked ahead of its turn
    only when the queries spent so far, the request and the most queries every search before
    it may still ask (``chain_bound``, ``search_bound(i)``: the bounds of
    :mod:`hba_lib.heuristics.key_frames`) fit in ``limit - 1`` (the attack reserves one query
    for its final check); otherwise it waits. So the searches before it can never be cut by
    it, a search is cut only when it is the first one unfinished (then nothing after it has
    spent a query, and it is cut exactly where one after another would cut it), and every
    search gets the answers it gets alone. The key-frame searches' points are recorded
    (:class:`FrameGroups`) and replayed in the one-after-another order once the candidates are
    done, each followed by ``adopt``, as :func:`key_frames_in_lockstep` does; ``finished(starts)``
    gets the chain's value when it completes."""
    runs: list[_Search] = []
    chain_request: Request | None = None
    chain_done, chain_queries = False, 0
    try:
        chain_request = next(chain)
    except StopIteration as stop:
        chain_done = True
        finished(stop.value)
    try:
        while True:
            while len(runs) < len(found):  # a new survivor: its search starts (no query yet)
                start = found[len(runs)]
                i, g0, seen = start
                groups = FrameGroups(st.x, spatial, goal)
                safe = [False]
                process = search(i, g0, seen, overlap=lambda safe=safe: safe[0])
                run = _Search(start, groups.watch(process), groups, search_bound(i), safe)
                run.advance(None)
                runs.append(run)
            parts: list[tuple[_Search | None, Request]] = []
            if not chain_done:
                parts.append((None, chain_request))
            ahead = chain_bound.left() if not chain_done else 0  # what the searches before may ask
            first = chain_done
            budget = attack.config.query_budget
            room = min(limit, math.inf if budget is None else budget) - 1
            for run in runs:
                if run.done:
                    continue
                # all it may still ask fits beside what the searches before it may: the budget
                # cannot cut it, so its own trials may overlap (later searches ask only past
                # what this one may still ask, so this holds from here on while the bounds
                # hold; a bound that fails makes left() inf: no new trial starts, though the
                # ones already in flight go on together)
                run.safe[0] = st.queries + ahead + run.left() <= room
                n = run.request.points.shape[0]
                if first:  # the first search unfinished: its turn, as one after another
                    if budget is not None and st.queries + n > budget - 1:
                        raise BudgetExhausted(
                            f"attack's query budget exhausted: {st.queries} of {budget} used, a "
                            f"request for {n} more ({run.request.phase}) does not fit"
                        )
                    parts.append((run, run.request))
                elif st.queries + n + ahead <= limit - 1:
                    parts.append((run, run.request))
                ahead += run.left()
                first = False
            if not parts:
                break
            phase = parts[0][1].phase
            if any(req.phase != phase for _, req in parts):
                raise RuntimeError("the initial stage's searches ask in one phase (init)")
            pts = parts[0][1].points if len(parts) == 1 else torch.cat([r.points for _, r in parts])
            try:
                answer = yield Request(pts, phase, 1)
            except (BudgetExhausted, NonFiniteOutputError) as exc:
                if isinstance(exc, NonFiniteOutputError):  # the model saw them all: they count
                    for run, req in parts:
                        if run is not None:
                            st.queries += req.points.shape[0]
                            st.by_phase[phase] += req.points.shape[0]
                if not chain_done:  # the chain ends as it would alone (counting its part)
                    chain.throw(exc)
                raise
            chain_part = None
            # the key-frame searches' parts counted first, then the chain
            for (run, req), part in zip(parts, split(answer, [req for _, req in parts])):
                size = req.points.shape[0]
                if run is None:
                    chain_part = part
                    continue
                st.queries += size
                st.by_phase[phase] += size
                run.advance(part)
            if chain_part is not None:
                chain_bound.add(chain_request.points.shape[0])
                chain_queries += chain_request.points.shape[0]
                try:
                    chain_request = chain.send(chain_part)
                except StopIteration as stop:
                    chain_done = True
                    chain_bound.begin(len(chain_bound.bounds))
                    finished(stop.value)
                    st.info["key_frames"]["start_queries"] = chain_queries  # its own queries
    finally:  # what the one-after-another loop does after each search, in its order
        spent = st.queries - sum(run.groups.queries for run in runs)
        for run in runs:
            run.groups.offer_to(st.closest)
            spent += run.groups.queries
            if not run.done:
                break
            adopt(run.start[0], run.value, spent)


def key_frames_in_lockstep(attack: BoundaryAttack, st: AttackState, goal: Goal,
                           spatial: torch.Tensor | None, starts: list, search, adopt):  # fmt: skip
    """The key-frame searches of ``starts`` (``search(i, g0, video)`` builds one) in lockstep:
    one request per step for every search still running (:func:`~hba_lib.oracle.queries.
    together`), counted and budgeted by ``attack``. Then, in the candidates' order, what the
    one-after-another loop does after each search (``adopt(i, found, queries)``), and what
    ``st`` would have kept of its queries under the mask in force at the time, so ``st``,
    its trace (at the query counts the loop would have had) and the result are those of the
    loop. A budget that cuts them short ends the searches still running (their points are
    still offered; the finished ones are adopted); a request that does not fit is asked again
    with fewer searches, so the budget holds exactly."""
    groups = [FrameGroups(st.x, spatial, goal) for _ in starts]
    found: dict[int, KeyFrameSearch] = {}
    merged = together(
        [groups[k].watch(search(i, g0, seen)) for k, (i, g0, seen) in enumerate(starts)],
        done=found.__setitem__,
    )
    spent = st.queries
    try:
        request = next(merged)
        while True:
            try:
                answer = yield from attack._ask(st, request.points, request.phase, see=False)
            except BudgetExhausted as exc:  # did not fit: fewer searches, or the end
                request = merged.throw(exc)
                continue
            request = merged.send(answer)
    except StopIteration:
        pass
    finally:  # also when cut: replay what the one-after-another loop does, in its order
        for k, (i, _, _) in enumerate(starts):
            groups[k].offer_to(st.closest)
            spent += groups[k].queries
            if k in found:
                adopt(i, found[k], spent)


def make_attack(
    name: str = "temporal+spatial", targeted: bool = False, optimizer: str | BoundaryAttack = "opt",
    **params,
) -> HeuristicAttack:  # fmt: skip
    """One of the paper's configurations (:data:`PRESETS`: ``opt``, ``temporal``,
    ``temporal+spatial``) with its defaults for the goal, on ``optimizer``; ``params``
    override heuristic constants (``omega``, ``phi``, ...) and optimizer constants
    (``query_budget``, ``q``, ``seed``, ...)."""
    if name not in PRESETS:
        raise ValueError(f"unknown configuration {name!r}; expected one of {tuple(PRESETS)}")
    heur = {**PRESETS[name][bool(targeted)]}
    for key in list(params):
        if key in HeuristicConfig.__annotations__:
            heur[key] = params.pop(key)
    opt_name = optimizer if isinstance(optimizer, str) else optimizer.name
    label = f"{name} / {opt_name}"
    return HeuristicAttack(optimizer, HeuristicConfig(**heur), name=label, **params)
