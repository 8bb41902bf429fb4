"""Sign-OPT (Cheng et al., ICLR 2020) for videos: Opt-attack's ``g(theta)``, one query a probe.

Opt-attack spends a whole local search (10-20 queries) on each probe ``theta + beta * u`` to
learn ``g(theta + beta * u) - g(theta)``. Sign-OPT asks only for the **sign** of that
difference, with one query at the current distance along the probe:

    x + g(theta) * normalize(theta + beta * u) adversarial  <=>  g would fall along u  (sign -1)

and estimates the gradient as the average of ``sign_k * u_k`` over ``q`` (the paper's K = 200)
random directions, answered in **one batched oracle call** per iteration. The update, the
backtracking line search on ``eta`` (the paper's ``alpha``) and the ``beta`` decay are
Opt-attack's (``hba_lib.attacks.base``: :meth:`BoundaryAttack.line_search`, :class:`StepSchedule`), so the two optimizers differ in the gradient
estimate alone, and both run on any mask (key frames x salient regions) unchanged.

Two choices beyond the paper, both options:

- ``tol_rel`` (default 1): the line search bisects ``g`` to ``tol_rel * beta * g / sqrt(d)``,
  the scale by which a probe moves the boundary point along its normal, so the base point of
  the sign queries sits on the boundary to within what the probes can resolve.
- ``center`` (default on): subtract the mean of the signs before averaging (HopSkipJump's
  baseline, Chen et al. 2020). The base point is the adversarial end of a bisection, so
  uncentred signs lean to "adversarial"; centring removes that bias. With every sign equal it
  is skipped (the estimate would vanish).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hba_lib.attacks.base import AttackConfig, AttackState, BoundaryAttack, StepSchedule
from hba_lib.oracle.goals import Goal
from hba_lib.oracle.queries import normalize, points


@dataclass
class SignOPTConfig(AttackConfig):
    """Opt-attack's constants with Sign-OPT's defaults: ``q`` = K = 200 sign probes, ``beta``
    = 0.001 (probe step), ``eta`` = 0.2 (alpha), ``eta_reset`` = 1.0 (the reference code sets
    alpha back to 1.0 when it collapses below 1e-4, not to its initial 0.2), five ``beta``
    decays (Sign-OPT stops below 1e-8), the signal-relative tolerance, and ``center``
    (HopSkipJump's baseline)."""

    q: int = 200
    beta: float = 0.001
    eta: float = 0.2
    eta_reset: float | None = 1.0
    max_beta_decays: int = 5
    tol_rel: float | None = 1.0
    center: bool = True


class SignOPT(BoundaryAttack):
    """Sign-OPT for videos; same interface as Opt-attack (``run``, ``run_many``,
    ``process`` with ``mask`` and ``initialiser``)."""

    name = "Sign-OPT"

    def __init__(self, config: SignOPTConfig | None = None, **overrides) -> None:
        cfg = config or SignOPTConfig()
        if not isinstance(cfg, SignOPTConfig):  # another attack's config: keep its values
            cfg = SignOPTConfig(**vars(cfg))
        self.config = SignOPTConfig(**{**vars(cfg), **overrides})

    def sign_gradient(
        self, st: AttackState, goal: Goal, theta: torch.Tensor, g: float, beta: float,
        generator: torch.Generator,
    ):  # fmt: skip
        """One batched call of ``q`` sign queries; returns the averaged ``sign * u``."""
        cfg = self.config
        u = self.probes(st, cfg.q, generator)
        probes = normalize(theta.unsqueeze(0) + beta * u, st.mask)
        ans = yield from self._ask(st, points(st.x, probes, [g] * cfg.q, clip=False),
                                   "optimisation")  # fmt: skip
        adv = goal.is_adversarial(ans.labels).to(u.device)
        signs = 1.0 - 2.0 * adv.to(u.dtype)  # adversarial: g falls along u -> -1
        if cfg.center and 0 < int(adv.sum()) < cfg.q:
            signs = signs - signs.mean()
        return (signs.view(-1, 1, 1, 1, 1) * u).mean(0) * cfg.grad_scale

    def step(
        self, st: AttackState, goal: Goal, generator: torch.Generator, sched: StepSchedule,
        cap: float, free: int,
    ):  # fmt: skip
        """One Sign-OPT iteration: ``q`` sign queries in one call, then the line search."""
        grad = yield from self.sign_gradient(st, goal, st.theta, st.g, sched.beta, generator)
        tol = self.config.search_tol(sched.beta, st.g, free, tuple(st.x.shape))
        st.theta, st.g, sched.eta = yield from self.line_search(
            st, goal, st.theta, st.g, grad, sched.eta, tol, cap
        )
        return True
