"""HopSkipJump's boundary steps (Chen, Jordan, Wainwright, IEEE S&P 2020) on hba's masks; with
probes in a low-frequency subspace it is QEBA's method (Li et al., CVPR 2020) on the masks.

Opt-attack and Sign-OPT search over unit directions ``theta`` and move by a line search on
``g(theta)``. HopSkipJump moves a *point on the boundary* instead, with three steps an
iteration ``t`` (``t = 1, 2, ...``), all on the same ``g(theta)`` bookkeeping as the others
(``x_b = x + g * theta`` is the boundary point, on its adversarial side):

1. **Sign estimate at the boundary point.** ``n_t = min(q * sqrt(t), max_q)`` unit probes
   ``u_k`` (masked, optionally in a low-frequency subspace), one batched oracle call at
   ``x_b + delta * u_k``; with ``phi_k = +1`` when adversarial and ``-1`` when not,

       v = mean_k (phi_k - mean(phi)) * u_k          (the baseline removes the sign bias)

   estimates the boundary's normal, pointing into the adversarial side.
2. **Geometric step size.** ``eps = ||x_b - x|| / sqrt(t)``, halved until ``x_b + eps * v`` is
   adversarial (one query a try).
3. **Bisection back to the boundary** on the segment from ``x`` to that point: the new
   ``(theta, g)``. The step went *away* from ``x`` along the normal; where the boundary curves,
   the bisection then lands closer to ``x``.

HopSkipJump's own constants (``gamma`` = 1): the bisection stops at a relative width
``gamma / d**1.5`` and the probes' radius is ``delta = sqrt(d) * (gamma / d**1.5) * ||x_b - x||``
(``0.1`` at the first iteration), ``d`` the dimension the probes span: the free values of the
mask divided by the subspace's reduction. ``min_width`` floors the bisection's relative width:
below float32's resolution more halvings query the same video again.

**Narrowing the support** (``support="top:K"`` / ``"top:K:F"``, off by default; beyond
HopSkipJump and QEBA, issue 22): once the attack has spent a share ``F`` (0.3 unless given) of
its query budget, it keeps only the ``K`` largest-magnitude values of its perturbation (the
closest adversarial video so far, minus ``x``) among the mask's free values, narrows its mask
to them, asks once whether the sparsified direction is adversarial at twice the perturbation's
norm (no: the mask stays as it was), bisects back to the boundary and goes on in the narrowed
mask (``t``, and with it the step size and the probe count, carries on: restarting at ``t = 1``
cost 10 % in L2 on training videos). The normal of these models' boundaries is sparse
(``docs/algorithm.md``); the perturbation found so far says where, and probes in the narrowed
mask estimate it in a space ``1 / K`` as large. The returned video then changes only the
narrowed mask: MAP falls with ``K``, and L2 with the better estimates.

**Three changes screened on ``val`` videos** (off by default; issue 22, ``docs/peers.md``):
``step="step:K[:F]"`` multiplies the geometric step by ``K`` until a share ``F`` of the budget
is spent (a larger early step); ``fade="fade:A:B"`` fades the probe prior to flat probes while
the shares ``A`` to ``B`` are spent (with a fixed prior the estimate points along ``S^2 g``,
not ``g``); ``narrow_by="nb:K[:T]"`` has the narrowing rank whole pixels by the perturbation's
energy over ``K x K`` pixels (and ``T`` frames) instead of each value's ``|p|`` (where
``top:0.3:0.7`` narrows, that keeps 0.61 of the normal's energy, ``|p|`` 0.48; white-box, C3D
``val``). By name: ``hsja+lcedge:3+top:0.3:0.7+step:2:0.5+fade:0.3:1+nb:7``, the row that
meets the goal on C3D's test videos (0.32 x / 0.74 x ART HopSkipJump's median MAP / L2) and
not on LRCN's; each option is ``benchmarks/optimizer_variants.py``'s patch of the same name to
the last bit (``tests/test_hsja.py``).

Everything else is shared with the other optimizers (``hba_lib.attacks.base``): the
initialisation from candidate videos (the same start as Opt-attack's), masks, ``init=`` and
``initialiser=`` (Algorithm 2 plugs in there), exact counting under ``query_budget``, lockstep
batching across videos in ``run_many``, and the output: the closest adversarial video queried,
checked once more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from hba_lib.attacks.base import AttackConfig, AttackState, BoundaryAttack
from hba_lib.oracle import BudgetExhausted
from hba_lib.oracle.goals import Goal
from hba_lib.oracle.priors import energy_weights, parse_prior
from hba_lib.oracle.queries import bisect, normalize, points, random_directions
from hba_lib.oracle.specs import named_option, split_spec


class Support(NamedTuple):
    """Narrow the support to the ``keep`` share of the mask's free values with the largest
    perturbation, once a share ``at`` of the query budget is spent (module docstring)."""

    keep: float
    at: float

    @property
    def spec(self) -> str:
        tail = "" if self.at == DEFAULT_AT else f":{self.at:g}"
        return f"top:{self.keep:g}{tail}"


DEFAULT_AT = 0.3


@named_option(Support, "support", "'top:0.05'")
def parse_support(spec: str | Support | None) -> Support | None:
    """A :class:`Support` from its name (``"top:K"``, ``"top:K:F"``, ``0 < K < 1``,
    ``0 <= F < 1``), or ``None`` for ``None`` / ``""`` / ``"none"``; a clear error otherwise."""
    _, values = split_spec(spec, "support", ("top",), (1, 2),
                           "'top:K' or 'top:K:F' (K the share of values kept, F the share of "
                           "the budget spent first)", not_numbers="K and F must be numbers")  # fmt: skip
    keep, at = values if len(values) == 2 else (values[0], DEFAULT_AT)
    if not (0.0 < keep < 1.0 and 0.0 <= at < 1.0):
        raise ValueError(f"support {spec!r}: need 0 < K < 1 and 0 <= F < 1")
    return Support(keep, at)


class StepBoost(NamedTuple):
    """The geometric step times ``scale`` until a share ``until`` of the budget is spent."""

    scale: float
    until: float

    @property
    def spec(self) -> str:
        return f"step:{self.scale:g}" + ("" if self.until == 1.0 else f":{self.until:g}")


class Fade(NamedTuple):
    """The probe prior fades to flat probes while the shares ``start`` to ``end`` of the budget
    are spent: variance ``(1 - l) s^2 + l``, ``l`` rising linearly from 0 to 1."""

    start: float
    end: float

    @property
    def spec(self) -> str:
        return f"fade:{self.start:g}:{self.end:g}"

    def std(self, std: torch.Tensor, spent: float) -> torch.Tensor:
        """The faded standard deviations when a share ``spent`` of the budget is spent."""
        lam = min(1.0, max(0.0, (spent - self.start) / (self.end - self.start)))
        return ((1 - lam) * std**2 + lam).sqrt()


class NarrowBy(NamedTuple):
    """The narrowing ranks pixels by the perturbation's energy over ``blur x blur`` pixels and
    ``frames`` frames (:func:`~hba_lib.oracle.priors.energy_weights`), whole pixels kept."""

    blur: int
    frames: int

    @property
    def spec(self) -> str:
        return f"nb:{self.blur}" + ("" if self.frames == 1 else f":{self.frames}")


@named_option(StepBoost, "step", "'step:2:0.5'")
def parse_step(spec: str | StepBoost | None) -> StepBoost | None:
    """A :class:`StepBoost` from ``"step:K"`` / ``"step:K:F"`` (``K > 0``, ``0 < F <= 1``), or
    ``None`` for ``None`` / ``""`` / ``"none"``; a clear error otherwise."""
    _, values = split_spec(spec, "step", ("step",), (1, 2), "'step:K' or 'step:K:F'")
    scale, until = values if len(values) == 2 else (values[0], 1.0)
    if not (scale > 0 and 0 < until <= 1):
        raise ValueError(f"step {spec!r}: need K > 0 and 0 < F <= 1")
    return StepBoost(scale, until)


@named_option(Fade, "fade", "'fade:0.3:1'")
def parse_fade(spec: str | Fade | None) -> Fade | None:
    """A :class:`Fade` from ``"fade:A:B"`` (``0 <= A < B <= 1``), or ``None``; a clear error
    otherwise."""
    _, values = split_spec(spec, "fade", ("fade",), (2,), "'fade:A:B'")
    if not 0 <= values[0] < values[1] <= 1:
        raise ValueError(f"fade {spec!r}: need 0 <= A < B <= 1")
    return Fade(*values)


@named_option(NarrowBy, "narrow_by", "'nb:7'")
def parse_narrow_by(spec: str | NarrowBy | None) -> NarrowBy | None:
    """A :class:`NarrowBy` from ``"nb:K"`` / ``"nb:K:T"`` (odd whole numbers), or ``None``; a
    clear error otherwise."""
    _, values = split_spec(spec, "narrow_by", ("nb",), (1, 2), "'nb:K' or 'nb:K:T'")
    if not all(v >= 1 and v == int(v) and v % 2 == 1 for v in values):
        raise ValueError(f"narrow_by {spec!r}: the blur sizes must be odd whole numbers")
    return NarrowBy(int(values[0]), int(values[1]) if len(values) == 2 else 1)


@dataclass
class HopSkipJumpConfig(AttackConfig):
    """HopSkipJump's constants (L2): ``q`` = 100 probes at the first iteration (``init_eval``),
    growing as ``q * sqrt(t)`` up to ``max_q`` = 1,000 (``max_eval``, as the ART peer runs);
    ``gamma`` = 1 (bisection width and probe radius); ``first_delta`` = 0.1 (the probes'
    L2 radius at the first iteration); ``min_width`` = 1e-6 (floor of the bisection's relative
    width); ``max_halvings`` = 25 (geometric step tries); ``max_stalls`` = 3 (iterations in a
    row that find no adversarial step: converged); ``support`` (``None``, or ``"top:K[:F]"``:
    narrow the support once, module docstring; needs ``query_budget``). ``subspace`` and
    ``prior`` as every optimizer's. Three changes screened on ``val`` videos (issue 22, off by
    default; module docstring): ``step`` (``"step:K[:F]"``, the geometric step times ``K``
    until a share ``F`` of the budget is spent), ``fade`` (``"fade:A:B"``, the prior fades to
    flat probes over the shares ``A`` to ``B``; needs ``prior`` and ``query_budget``) and
    ``narrow_by`` (``"nb:K[:T]"``, the narrowing ranks whole pixels by the perturbation's
    energy over ``K x K`` pixels and ``T`` frames; needs ``support``)."""

    q: int = 100
    max_q: int = 1000
    gamma: float = 1.0
    first_delta: float = 0.1
    min_width: float = 1e-6
    max_halvings: int = 25
    max_stalls: int = 3
    support: str | None = None
    step: str | None = None
    fade: str | None = None
    narrow_by: str | None = None


class HopSkipJump(BoundaryAttack):
    """HopSkipJump's geometric steps on ``g(theta)`` (module docstring); same interface as
    Opt-attack and Sign-OPT (``run``, ``run_many``, ``process`` with ``mask``, ``init`` and
    ``initialiser``)."""

    name = "HopSkipJump"

    def __init__(self, config: AttackConfig | None = None, **overrides) -> None:
        cfg = config or HopSkipJumpConfig()
        if not isinstance(cfg, HopSkipJumpConfig):  # another attack's config: keep its values
            cfg = HopSkipJumpConfig(**asdict(cfg))
        self.config = HopSkipJumpConfig(**{**asdict(cfg), **overrides})
        if self.config.q < 1 or self.config.max_q < self.config.q:
            raise ValueError(f"need 1 <= q <= max_q, got q={self.config.q}, "
                             f"max_q={self.config.max_q}")  # fmt: skip
        if not self.config.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.config.gamma}")
        cfg = self.config
        self.boost, self.fading = parse_step(cfg.step), parse_fade(cfg.fade)
        self.narrowing_by = parse_narrow_by(cfg.narrow_by)
        if self.fading is not None and (cfg.prior in (None, "", "none")
                                        or cfg.query_budget is None):  # fmt: skip
            raise ValueError(f"fade={cfg.fade!r} fades a prior over the query budget: give "
                             "prior and query_budget")  # fmt: skip
        if self.narrowing_by is not None and parse_support(cfg.support) is None:
            raise ValueError(f"narrow_by={cfg.narrow_by!r} ranks the narrowing's pixels: give "
                             "support")  # fmt: skip
        if parse_support(self.config.support) is not None and self.config.query_budget is None:
            raise ValueError(f"support={self.config.support!r} narrows the support after a "
                             "share of the query budget: give query_budget")  # fmt: skip

    # -- the three steps ------------------------------------------------------------------------
    def width(self, dim: float) -> float:
        """The bisection's relative width: HopSkipJump's ``gamma / d**1.5``, floored."""
        return max(self.config.gamma / dim**1.5, self.config.min_width)

    def to_boundary(self, st: AttackState, goal: Goal, theta: torch.Tensor, hi: float, dim: float):
        """Bisect ``[0, hi]`` along ``theta`` (``x + hi * theta`` adversarial) to the relative
        width; returns ``g``."""
        search = bisect(0.0, hi, self.width(dim) * hi)
        return (yield from self._search_one(st, goal, theta, search, "optimisation"))

    def normal(self, st: AttackState, goal: Goal, x_b: torch.Tensor, n: int, delta: float,
               generator: torch.Generator):  # fmt: skip
        """The sign estimate of the boundary's normal at ``x_b`` from ``n`` probes (one call),
        unit norm, in the mask; ``None`` when it vanishes."""
        u = self.probes(st, n, generator)
        pts = (x_b.unsqueeze(0) + delta * u).clamp_(0.0, 1.0)
        ans = yield from self._ask(st, pts, "optimisation")
        u = (pts - x_b.unsqueeze(0)) / delta  # what was queried, clipping included
        phi = goal.is_adversarial(ans.labels).to(u.device, u.dtype) * 2.0 - 1.0
        mean = float(phi.mean())
        w = phi - mean if abs(mean) < 1.0 else phi  # all one sign: HopSkipJump's +-mean(u)
        v = (w.view(-1, 1, 1, 1, 1) * u).mean(0)
        if not bool(torch.isfinite(v).all()) or float(torch.linalg.vector_norm(v)) == 0.0:
            return None
        return normalize(v, st.mask)

    def geometric_step(self, st: AttackState, goal: Goal, x_b: torch.Tensor, v: torch.Tensor,
                       eps: float):  # fmt: skip
        """Halve ``eps`` until ``x_b + eps * v`` is adversarial; that point (as queried), or
        ``None`` after ``max_halvings`` tries."""
        for _ in range(self.config.max_halvings):
            pt = (x_b + eps * v).clamp_(0.0, 1.0).unsqueeze(0)
            ans = yield from self._ask(st, pt, "optimisation")
            if bool(goal.is_adversarial(ans.labels)[0]):
                return pt[0]
            eps /= 2.0
        return None

    def probes_for(self, st: AttackState, t: int, dim: float) -> int:
        """Probes at iteration ``t``: ``q * sqrt(t)`` up to ``max_q``, and no more than the
        budget leaves after the step and the bisection that follow (raises when not even
        ``q`` fit)."""
        cfg = self.config
        n = min(int(cfg.q * math.sqrt(t)), cfg.max_q)
        if cfg.query_budget is None:
            return n
        after = math.ceil(math.log2(1.0 / self.width(dim))) + 4  # bisection and a few halvings
        left = cfg.query_budget - st.queries - 1 - after  # one kept for the final check
        if left < min(n, cfg.q):
            raise BudgetExhausted(
                f"attack's query budget exhausted: {st.queries} of {cfg.query_budget} used, "
                f"too few left for an iteration ({min(n, cfg.q)} probes and {after} more)"
            )
        return min(n, left)

    def move(self, st: AttackState, goal: Goal, x_b: torch.Tensor, v: torch.Tensor, t: int,
             dim: float):  # fmt: skip
        """HopSkipJump's move from the boundary point ``x_b`` along the normal ``v``: the
        geometric step, then the bisection back to the boundary; the new ``(theta, g)``, or
        ``None`` when no step was adversarial."""
        eps = st.g / math.sqrt(t)
        boost, budget = self.boost, self.config.query_budget
        if boost is not None and (budget is None or st.queries < boost.until * budget):
            eps = eps * boost.scale
        pt = yield from self.geometric_step(st, goal, x_b, v, eps)
        if pt is None:
            return None
        p = pt - st.x
        if st.mask is not None:
            p = p * st.mask
        hi = float(torch.linalg.vector_norm(p))
        if hi == 0.0:
            return None
        theta = p / hi
        return theta, (yield from self.to_boundary(st, goal, theta, hi, dim))

    def narrow_score(self, p: torch.Tensor) -> torch.Tensor:
        """How :meth:`narrow` ranks the values of the perturbation ``p``: ``|p|``, or with
        ``narrow_by`` the energy of its pixels' neighbourhoods (one score a pixel)."""
        if self.narrowing_by is None:
            return p.abs()
        return energy_weights(p, self.narrowing_by.blur, self.narrowing_by.frames)

    def probes(self, st: AttackState, n: int, generator: torch.Generator) -> torch.Tensor:
        """Every optimizer's probes (:meth:`BoundaryAttack.probes`); with ``fade``, the prior's
        weights fade to flat as the budget is spent."""
        if self.fading is None:
            return super().probes(st, n, generator)
        cfg = self.config
        if st.probe_std is None:
            st.probe_std = parse_prior(cfg.prior).std(st.x)
        std = self.fading.std(st.probe_std, st.queries / cfg.query_budget)
        return random_directions(n, tuple(st.x.shape), generator, st.mask,
                                 subspace=cfg.probe_space(), std=std)  # fmt: skip

    def narrow(self, st: AttackState, goal: Goal, keep: float):
        """Narrow ``st.mask`` to the ``keep`` share of its free values where the perturbation
        (the closest adversarial video so far, minus ``x``) is largest, if the sparsified
        direction is adversarial at twice the perturbation's norm (one query); then
        ``(theta, g)`` is that direction and distance. Returns whether it narrowed."""
        p = st.best if st.best is not None else points(st.x, st.theta.unsqueeze(0), [st.g])[0]
        p = p - st.x
        free = torch.ones_like(st.x, dtype=torch.bool) if st.mask is None else (
            st.mask.expand_as(st.x) > 0)  # fmt: skip
        a = self.narrow_score(p) * free
        n_free = int(free.sum())
        k = max(1, int(keep * n_free))
        if k >= n_free:
            return False
        threshold = float(a.flatten().topk(k).values[-1])
        if threshold <= 0.0:
            return False
        mask = (a >= threshold).to(st.x.dtype)
        sparse = p * mask
        norm = float(torch.linalg.vector_norm(sparse))
        theta = sparse / norm
        hi = 2.0 * float(torch.linalg.vector_norm(p))
        ans = yield from self._ask(st, points(st.x, theta.unsqueeze(0), [hi], False),
                                   "optimisation")  # fmt: skip
        st.info["support_narrowed_at"] = st.queries
        if not bool(goal.is_adversarial(ans.labels)[0]):
            st.info["support_narrowed"] = False
            return False
        st.info["support_narrowed"] = True
        st.mask = mask  # drops the closest video so far: it changes pixels outside
        st.theta, st.g = theta, hi
        return True

    def optimise(self, st: AttackState, goal: Goal, generator: torch.Generator):
        """The iterations from ``st.theta`` (after one bisection to the boundary): the normal
        at the boundary point, then :meth:`move`; stop after ``max_iter`` iterations,
        ``max_stalls`` iterations in a row that could not move, or at the budget. With
        ``support``, once its share of the budget is spent: :meth:`narrow`, the bisection to
        the boundary in the narrowed mask, and the iterations go on (``t`` is not reset)."""
        cfg = self.config
        support = parse_support(cfg.support)
        start = None if support is None else support.at * cfg.query_budget
        dim = cfg.probe_dim(self._free(st), tuple(st.x.shape))
        st.stop_reason = "max_iter"
        st.g = yield from self.to_boundary(st, goal, st.theta, st.g, dim)
        st.record()
        stalls = 0
        for t in range(1, cfg.max_iter + 1):
            if start is not None and st.queries >= start:
                start = None
                if (yield from self.narrow(st, goal, support.keep)):
                    dim = cfg.probe_dim(self._free(st), tuple(st.x.shape))
                    st.g = yield from self.to_boundary(st, goal, st.theta, st.g, dim)
                    st.record()
            n = self.probes_for(st, t, dim)
            x_b = (st.x + st.g * st.theta).clamp_(0.0, 1.0)
            delta = cfg.first_delta if t == 1 else math.sqrt(dim) * self.width(dim) * st.g
            v = yield from self.normal(st, goal, x_b, n, delta, generator)
            new = None if v is None else (yield from self.move(st, goal, x_b, v, t, dim))
            st.iterations = t
            if new is not None:
                st.theta, st.g = new
                stalls = 0
                st.record()
            else:
                stalls += 1
                if stalls >= cfg.max_stalls:
                    st.stop_reason = "converged"
                    break


class SemicircleBoundary(HopSkipJump):
    """HopSkipJump's normal estimate with CGBA's move (Reza et al., ICCV 2023): instead of a
    step along the normal and a bisection back towards ``x``, a bisection over the angle of
    the semicircle with diameter ``[x, x_b]`` in the plane of ``x_b - x`` and the normal.

    With ``u = (x_b - x) / d`` (``d = ||x_b - x||``) and ``w`` the unit part of the normal
    orthogonal to ``u``, the semicircle's points are ``x + d cos(a) (cos(a) u + sin(a) w)``,
    ``a`` from 0 (``x_b``) to pi/2 (``x``), at distance ``d cos(a)`` from ``x``. Were the
    boundary the hyperplane through ``x_b`` with the estimated normal, its closest point to
    ``x`` would lie on this semicircle (Thales), at ``cos(a) = u . normal``; on a curved
    boundary the bisection finds where the semicircle crosses it. One bisection an iteration,
    no step size to choose."""

    name = "CGBA"

    def move(self, st: AttackState, goal: Goal, x_b: torch.Tensor, v: torch.Tensor, t: int,
             dim: float):  # fmt: skip
        """Bisect the semicircle's angle between ``x_b`` (adversarial) and ``x`` to the
        relative width; the crossing's ``(theta, g)``, or ``None`` when it does not move."""
        d = st.g
        u = st.theta
        w = v - (v * u).sum() * u
        if st.mask is not None:
            w = w * st.mask
        wn = float(torch.linalg.vector_norm(w))
        if wn == 0.0 or not math.isfinite(wn):
            return None
        w = w / wn
        lo, hi = 0.0, math.pi / 2  # lo: adversarial (x_b), hi: not (x)
        found = None
        while hi - lo > self.width(dim):
            a = (lo + hi) / 2.0
            p = (st.x + (d * math.cos(a)) * (math.cos(a) * u + math.sin(a) * w)).clamp_(0.0, 1.0)
            ans = yield from self._ask(st, p.unsqueeze(0), "optimisation")
            if bool(goal.is_adversarial(ans.labels)[0]):
                lo, found = a, p
            else:
                hi = a
        if found is None:
            return None
        q = found - st.x
        if st.mask is not None:
            q = q * st.mask
        g = float(torch.linalg.vector_norm(q))
        return (q / g, g) if 0.0 < g < d else None
