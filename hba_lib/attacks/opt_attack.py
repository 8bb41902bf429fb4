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
3. **Output**: ``x_adv``, the closest adversarial video queried (``clip(x + g(theta*) theta*)``
   as the oracle evaluated it, bit for bit), and one final check query on exactly that tensor.

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

This module holds what is Opt-attack's own: its constants (:class:`OptAttackConfig`,
:data:`OPT_PRESETS`) and its iteration (:meth:`OptAttack.step`). What it shares with Sign-OPT
(the plumbing, the initialisation, the line search, the step schedule, masks and ``init=`` /
``initialiser=`` hooks, the output) is in ``hba_lib.attacks.base``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import asdict, dataclass

import torch

from hba_lib.attacks.base import (  # noqa: F401 - re-exported: names users import from here
    AttackConfig,
    AttackState,
    BoundaryAttack,
    QueryAttack,
    StepSchedule,
)
from hba_lib.oracle import Answer, Oracle
from hba_lib.oracle.goals import Goal
from hba_lib.oracle.queries import (  # noqa: F401 - the searches are part of this module's story
    Request,
    Search,
    bisect,
    local_search,
    normalize,
    points,
    random_directions,
    targeted_initial_search,
    untargeted_initial_search,
)


@dataclass
class OptAttackConfig(AttackConfig):
    """Opt-attack's constants: :class:`~hba_lib.attacks.base.AttackConfig`'s defaults, the
    paper's (``docs/algorithm.md``)."""


OPT_PRESETS: dict[str, dict] = {
    "paper": {},
    "authors": {"q": 15, "beta": 0.01, "grad_scale": 15.0, "eta_reset": 1.0},
    "relative": {"tol_rel": 1.0},
}
"""Named constant sets: ``paper`` (``docs/algorithm.md``'s defaults), ``authors`` (the authors'
untargeted code: q = 15, beta = 0.01, the gradient times d = 15, eta reset to 1.0 after a
collapse; tolerance 1e-2 and three beta decays as ``paper``), ``relative`` (``paper`` with the
signal-relative tolerance of the optimisation's searches)."""


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


class OptAttack(BoundaryAttack):
    """Opt-attack for videos; configure once (:class:`OptAttackConfig`), run on many videos."""

    name = "Opt-attack"

    def __init__(self, config: AttackConfig | None = None, **overrides) -> None:
        cfg = config or OptAttackConfig()
        self.config = OptAttackConfig(**{**asdict(cfg), **overrides})

    def step(
        self, st: AttackState, goal: Goal, generator: torch.Generator, sched: StepSchedule,
        cap: float, free: int,
    ) -> Generator[Request, Answer, bool]:  # fmt: skip
        """One Opt-attack iteration: the random gradient-free estimate of eq. (1) from ``q``
        probes ``theta + beta * u`` (their local searches in one batch per step), then the line
        search; the best probe wins if it beats the line search. False if every probe failed."""
        cfg = self.config
        theta, g2, beta = st.theta, st.g, sched.beta
        tol = cfg.search_tol(beta, g2, free, tuple(st.x.shape))
        u = self.probes(st, cfg.q, generator)
        probes = normalize(theta.unsqueeze(0) + beta * u, st.mask)
        searches = [local_search(g2, tol, cap, cfg.grow, cfg.shrink) for _ in range(cfg.q)]
        g1 = yield from self._search_many(st, goal, probes, searches, "optimisation")
        g1 = torch.tensor(g1, dtype=torch.float64)
        ok = torch.isfinite(g1)
        if not bool(ok.any()):  # every probe failed
            return False
        coef = torch.where(ok, (g1 - g2) / beta, torch.zeros_like(g1)).to(u.dtype)
        grad = (coef.to(u.device).view(-1, 1, 1, 1, 1) * u).sum(0) * (cfg.grad_scale / cfg.q)
        k = int(torch.argmin(torch.where(ok, g1, torch.full_like(g1, math.inf))))
        min_g1, min_probe = float(g1[k]), probes[k]
        min_theta, min_g2, sched.eta = yield from self.line_search(
            st, goal, theta, g2, grad, sched.eta, tol, cap
        )
        # keep the best probe if it beats the line search
        st.theta, st.g = (min_theta, min_g2) if min_g2 <= min_g1 else (min_probe, min_g1)
        return True
