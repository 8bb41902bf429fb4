"""Peers from ART (optional extra ``peers``): Sign-OPT (untargeted) and HopSkipJump.

Both see the model only through a :class:`HardLabelEstimator`: an ART ``BlackBoxClassifier``
whose scores are the one-hot of the oracle's top-1 label, so every clip ART evaluates is one
counted query of the same :class:`~hba_lib.oracle.Oracle` our attacks use, under the same budget.
Pitfalls handled here (``peers.md``):

- ART has no query budget of its own that holds (Sign-OPT overshoots by about ``k``): the oracle
  enforces it; when ART is cut off, ``stop_reason`` is ``budget_exhausted``.
- What ART returns may be a video it rebuilt and never queried (in its own float arithmetic), so
  on every path the result is the closest adversarial video queried (tracked by the estimator,
  bit for bit as the oracle evaluated it; for HopSkipJump its start counts), checked by one
  final query; ``info["art_output_distance"]`` is the L2 of what ART returned.
- Both may return the clean video when their start found nothing adversarial, saying so only
  through the array: ``info`` notes the case.
- Sign-OPT's local search gives up beyond a distance of 20 in input units: a 16x32x32 video's
  distances fit, a 16x112x112 one's random-noise starts may not (its line search then never
  moves); compare ``distance`` with 20, and ``info["closest_adversarial_seen"]`` with it.
- HopSkipJump is given the same starting video as Opt-attack (its initialisation, counted on the
  same oracle), so the optimiser is the only difference.

This module imports ART on use; core code never does.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hba_lib.attacks.common import (
    AttackResult,
    TraceRow,
    stopped_by,
    unchecked_success,
    validate_candidates,
    validate_video,
)
from hba_lib.attacks.opt_attack import OptAttack, OptAttackConfig
from hba_lib.oracle import (
    BudgetExhausted,
    NonFiniteOutputError,
    Oracle,
    distances,
)
from hba_lib.oracle.closest import Closest
from hba_lib.oracle.goals import make_goal


def art_available() -> bool:
    """Whether ART (PyPI ``adversarial-robustness-toolbox``) is installed."""
    try:
        import art  # noqa: F401
    except ImportError:
        return False
    return True


class _Stop(Exception):
    """Raised inside ART when the oracle refuses a query (budget, or a served model gone): the
    oracle's exception is its ``__cause__``."""


def _stopped(exc: _Stop, info: dict[str, Any]) -> str:
    """The stop reason of a peer ART stopped for ``exc``, as hba's attacks name it."""
    cause = exc.__cause__
    assert isinstance(cause, BudgetExhausted)
    reason, error = stopped_by(cause)
    if error:
        info["error"] = error
    return reason


class HardLabelEstimator:
    """Builds an ART classifier that answers one-hot top-1 labels through ``oracle``.

    It also remembers the closest (L2 to ``x``) video it saw answered adversarial for ``goal``
    (``closest``: the float32 tensor the oracle evaluated), the result returned. Every ART query
    is phase ``optimisation`` and keeps one query in reserve for the final check.
    """

    def __init__(self, oracle: Oracle, x: torch.Tensor, goal, nb_classes: int) -> None:
        from art.estimators.classification import BlackBoxClassifier

        self.oracle, self.goal, self.nb_classes = oracle, goal, nb_classes
        self.x = x.detach().cpu().float()
        self.closest = Closest(self.x)
        self.exhausted = False
        self.trace: list[TraceRow] = []  # (oracle.used, distance, MAP) at each new closest
        self.classifier = BlackBoxClassifier(
            self._predict, tuple(x.shape), nb_classes, clip_values=(0.0, 1.0)
        )

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        videos = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).clamp(0, 1)
        try:
            ans = self.oracle(videos, "optimisation", reserve=1)
        except BudgetExhausted as exc:
            self.exhausted = True
            raise _Stop(str(exc)) from exc
        self.keep(videos[self.goal.is_adversarial(ans.labels)])
        return np.eye(self.nb_classes, dtype=np.float32)[ans.labels.numpy()]

    def keep(self, videos: torch.Tensor) -> None:
        """Keep the closest of ``videos [n, ...]`` (each evaluated and answered adversarial),
        and trace each new closest."""
        if self.closest.offer(videos):
            d = self.closest.distance
            mean_abs = distances.mean_absolute_perturbation(self.x, self.closest.video)
            self.trace.append(TraceRow(self.oracle.used, d, mean_abs, d))


def _finish(
    name: str, oracle: Oracle, x: torch.Tensor, goal, x_adv: torch.Tensor | None,
    stop_reason: str, t0: float, info: dict[str, Any], start_queries: int = 0,
    mask: torch.Tensor | None = None, trace: list[TraceRow] | None = None,
) -> AttackResult:  # fmt: skip
    """Final check on ``x_adv`` (counted; a video the oracle answered adversarial, or ``None``:
    the clean video) and the paper's metrics; no answer to it is read by
    :func:`~hba_lib.attacks.common.unchecked_success`, as for hba's attacks.

    ``trace``: the closest adversarial video seen as queries went (``oracle.used`` at each),
    made relative to ``start_queries``, so peers get MAP-against-queries curves as ours do.
    """
    label, success = None, False
    if x_adv is None:
        x_adv = x
    x_adv = x_adv.detach().cpu().float()
    if torch.equal(x_adv, x):
        info["returned_clean_video"] = True
    else:
        try:
            ans = oracle(x_adv, "check")
            label, success = int(ans.labels[0]), bool(goal.is_adversarial(ans.labels)[0])
        except (BudgetExhausted, NonFiniteOutputError) as exc:
            success, failed = unchecked_success(exc, answered_adversarial=True)
            info.update(failed)
    counts = oracle.counts
    rows = [r._replace(queries=r.queries - start_queries) for r in (trace or [])]
    return AttackResult(
        x_adv=x_adv, success=success, label=label, stop_reason=stop_reason,
        queries=oracle.used - start_queries, queries_by_phase=counts,
        distance=distances.l2_distance(x, x_adv), map=distances.mean_absolute_perturbation(x, x_adv),
        map_star=distances.mean_absolute_perturbation(x, x_adv, mask),
        sparsity=distances.sparsity(None if mask is None else mask.expand_as(x)),
        wall_time=time.perf_counter() - t0, started=t0, goal=goal.describe(),
        info={"attack": name, **info}, trace=rows, linf=distances.linf_distance(x, x_adv),
    )  # fmt: skip


def sign_opt_untargeted(
    oracle: Oracle,
    x: torch.Tensor,
    label: int,
    nb_classes: int,
    seed: int = 0,
    **art_kwargs: Any,
) -> AttackResult:
    """ART ``SignOPTAttack(targeted=False)`` on one video through ``oracle`` (counted, budgeted).

    ``art_kwargs`` go to ART (defaults: ART's, ``query_limit`` = the oracle's budget).
    ART draws its random starts from numpy's global generator: seeded here with ``seed`` for the
    call, and put back as it was after (:func:`_numpy_seeded`).
    """
    from art.attacks.evasion import SignOPTAttack

    t0 = time.perf_counter()
    x = validate_video(x, oracle.num_frames).cpu().float()
    goal = make_goal(label)
    start = oracle.used
    try:
        ans = oracle(x, "check", reserve=1)
    except BudgetExhausted as exc:
        return _finish("Sign-OPT", oracle, x, goal, None, stopped_by(exc)[0], t0, {}, start)
    if int(ans.labels[0]) != label:
        res = _finish("Sign-OPT", oracle, x, goal, None, "clean_misclassified", t0, {}, start)
        res.attacked = False
        return res
    est = HardLabelEstimator(oracle, x, goal, nb_classes)
    left = oracle.remaining  # its own and its parents' budgets
    kw = {"query_limit": int(left) if math.isfinite(left) else 20000, **art_kwargs}
    attack = SignOPTAttack(est.classifier, targeted=False, verbose=False, **kw)
    stop, info = "art_finished", {}
    try:
        with _numpy_seeded(seed):
            out = attack.generate(x.numpy()[None], np.array([label]))
        info["art_output_distance"] = _art_output(x, out, info)
    except _Stop as exc:
        stop = _stopped(exc, info)
    info.update({"closest_adversarial_seen": est.closest.distance, "art_kwargs": kw})
    if est.closest.video is not None and est.closest.distance > 20:
        info["beyond_local_search_cap_20"] = True  # its line search could not have moved
    return _finish(
        "Sign-OPT", oracle, x, goal, est.closest.video, stop, t0, info, start, trace=est.trace
    )


@contextlib.contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """numpy's global generator seeded with ``seed`` inside the block (ART draws from it, and
    takes no generator), and its state before the block put back after it, even on an error:
    a peer's run leaves the caller's numpy draws as they were."""
    state = np.random.get_state()  # noqa: NPY002 - ART draws from numpy's global generator
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _art_output(x: torch.Tensor, out: np.ndarray, info: dict[str, Any]) -> float:
    """The L2 of the video ART returned (noting when it is the clean video)."""
    art_x = torch.from_numpy(np.asarray(out[0], dtype=np.float32)).clamp(0, 1)
    if torch.equal(art_x, x):
        info["art_returned_clean_video"] = True
    return distances.l2_distance(x, art_x)


def hop_skip_jump(
    oracle: Oracle,
    x: torch.Tensor,
    label: int,
    nb_classes: int,
    candidates: torch.Tensor,
    opt_config: OptAttackConfig | None = None,
    mask: torch.Tensor | None = None,
    seed: int = 0,
    **art_kwargs: Any,
) -> AttackResult:
    """ART ``HopSkipJump`` (untargeted, L2) from Opt-attack's starting video.

    The start is Opt-attack's initialisation (``max_iter=0``: clean check, candidate queries,
    fine-grained search, check), counted on ``oracle``; HopSkipJump then goes on from it on the
    same oracle, optionally restricted by ``mask``. ``art_kwargs`` go to ART.
    """
    from art.attacks.evasion import HopSkipJump

    t0 = time.perf_counter()
    x = validate_video(x, oracle.num_frames).cpu().float()
    validate_candidates(candidates, x)
    goal = make_goal(label)
    start = oracle.used
    cfg = opt_config or OptAttackConfig()
    init = OptAttack(cfg, max_iter=0).run(oracle, x, label, candidates=candidates, mask=mask)
    if not init.attacked or not init.success:  # keep what the start found (its closest seen)
        kept = None if torch.equal(init.x_adv, x) else init.x_adv
        why = {"error": init.info["error"]} if "error" in init.info else {}
        res = _finish("HopSkipJump", oracle, x, goal, kept, init.stop_reason, t0, why, start)
        res.attacked = init.attacked
        return res
    est = HardLabelEstimator(oracle, x, goal, nb_classes)
    est.keep(init.x_adv.unsqueeze(0))  # the start, answered adversarial by its check
    kw = {"max_iter": 50, "max_eval": 1000, "init_eval": 100, "norm": 2, **art_kwargs}
    attack = HopSkipJump(est.classifier, targeted=False, verbose=False, **kw)
    stop, info = "art_finished", {}
    extra = {} if mask is None else {"mask": mask.expand_as(x).numpy()[None].astype(np.float32)}
    try:
        with _numpy_seeded(seed):
            out = attack.generate(
                x.numpy()[None], np.array([label]), x_adv_init=init.x_adv.numpy()[None], **extra
            )
        info["art_output_distance"] = _art_output(x, out, info)
    except _Stop as exc:
        stop = _stopped(exc, info)
    info.update({"start_distance": init.distance, "start_queries": init.queries, "art_kwargs": kw})
    first = [r._replace(queries=start + r.queries) for r in init.trace]
    return _finish("HopSkipJump", oracle, x, goal, est.closest.video, stop, t0, info, start, mask,
                   trace=first + est.trace[1:])  # fmt: skip
