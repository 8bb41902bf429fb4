"""What all attacks share: query requests, results, query traces, and the drivers.

An attack is written as a *query process*: a Python generator that yields a
:class:`Request` (a batch of videos and a phase) and receives the oracle's
:class:`~hba_lib.oracle.Answer`. The attack never holds the oracle; a driver does:

- :func:`drive` runs one process against one oracle;
- :func:`drive_many` runs several processes (several videos) in lockstep, answering all their
  pending requests with one forward pass per step, each counted on its own video's oracle.

When an oracle refuses a request for lack of budget, the driver throws
:class:`~hba_lib.oracle.BudgetExhausted` into the process, which ends with its best result so far;
an oracle that stopped answering (:class:`~hba_lib.oracle.OracleUnavailable`, a subclass: a
served model went away) is thrown in the same way.
When the model answers one video's request with NaN/Inf, :func:`drive` raises the
:class:`~hba_lib.oracle.NonFiniteOutputError` to its caller; :func:`drive_many` throws it into
that video's process only, which ends with its best result so far and ``stop_reason ==
"nonfinite_output"`` (a process that does not catch it gets the exception as its result), and
the other videos go on.

Inputs are checked before any query is spent: :func:`validate_video` and
:func:`validate_candidates` are the checks every attack calls first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from hba_lib.oracle import (
    BudgetExhausted,
    NonFiniteOutputError,
    Oracle,
    OracleUnavailable,
    query_jointly,
)
from hba_lib.oracle.queries import QueryProcess, Request


def validate_video(x: Any, num_frames: int | None = None, name: str = "x") -> torch.Tensor:
    """Check one clean video: a float tensor ``[C, T, H, W]`` (C in 1, 3), finite, in [0, 1],
    ``T == num_frames`` when given; return it detached. Raises a clear error naming ``name``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [C, T, H, W], got {type(x).__name__}")
    if x.ndim != 4 or x.shape[0] not in (1, 3):
        hint = " (one video, not a batch: pass xs[i])" if x.ndim == 5 else ""
        raise ValueError(
            f"{name} must be one video [C, T, H, W] with C in (1, 3), got shape "
            f"{tuple(x.shape)}{hint}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be float in [0, 1], got dtype {x.dtype} (a uint8 0-255 video: "
            "hba_lib.data.video.to_model_layout converts it)"
        )
    if 0 in x.shape:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if num_frames is not None and x.shape[1] != num_frames:
        raise ValueError(
            f"{name} has T={x.shape[1]} frames, the model (oracle) expects {num_frames}: "
            f"shape {tuple(x.shape)}, expected [C, {num_frames}, H, W]"
        )
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} holds NaN or Inf values")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
            "(a 0-255 video: divide by 255)"
        )
    return x.detach()


def validate_candidates(candidates: Any, x: torch.Tensor, name: str = "candidates") -> torch.Tensor:
    """Check candidate videos for ``x``: ``[N, C, T, H, W]`` (a single ``[C, T, H, W]`` is one
    candidate), N >= 1, float in [0, 1], each shaped like ``x``; return them as a batch."""
    if not isinstance(candidates, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor [N, C, T, H, W], got {type(candidates).__name__}"
        )
    if candidates.ndim == 4:
        candidates = candidates.unsqueeze(0)  # one candidate video: one query, as the oracle
    if candidates.ndim != 5 or tuple(candidates.shape[1:]) != tuple(x.shape):
        raise ValueError(
            f"{name} must be [N, C, T, H, W] videos shaped like x {tuple(x.shape)}, got shape "
            f"{tuple(candidates.shape)}"
        )
    if candidates.shape[0] == 0:
        raise ValueError(f"{name} is empty: give at least one candidate video [N >= 1, C, T, H, W]")
    validate_video(candidates[0], None, f"{name}[0]")  # dtype
    lo, hi = float(candidates.min()), float(candidates.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    return candidates.detach()


class TraceRow(NamedTuple):
    """One point of an attack's query trace: queries so far, the distance ``g`` of the best
    direction (the peers: the L2 of their closest adversarial video), its MAP (0-255) and the
    L2 of the video itself, clipped to [0, 1] as the oracle saw it (``nan`` in rows stored
    before it was recorded)."""

    queries: int
    distance: float
    map: float
    l2: float = math.nan


def stopped_by(exc: BudgetExhausted) -> tuple[str, str | None]:
    """``(stop_reason, error)`` of an attack the oracle stopped answering: ``oracle_unavailable``
    with the error (a served model went away), or ``budget_exhausted`` and ``None``."""
    if isinstance(exc, OracleUnavailable):
        return "oracle_unavailable", f"{type(exc).__name__}: {exc}"
    return "budget_exhausted", None


def unchecked_success(
    exc: BudgetExhausted | NonFiniteOutputError, answered_adversarial: bool
) -> tuple[bool, dict[str, Any]]:
    """What an attack reports when its final check on ``x_adv`` got no answer: ``(success,
    info)``, the same rule for every attack (hba's and the ART peers').

    No answer means no success, except when the oracle went away (:class:`OracleUnavailable`)
    and ``x_adv`` is bit for bit a video it already answered adversarial
    (``answered_adversarial``): that answer stands, and ``info`` says
    ``success_from_earlier_answer``. At the budget, the check was the attack's to reserve.
    """
    info: dict[str, Any] = {"final_check_failed": f"{type(exc).__name__}: {exc}"}
    if isinstance(exc, OracleUnavailable) and answered_adversarial:
        info["success_from_earlier_answer"] = True
        return True, info
    return False, info


@dataclass
class AttackResult:
    """The outcome of one attack on one video.

    ``success`` comes from the final check query on ``x_adv`` (when the oracle went away before
    it, from the answer that made ``x_adv`` the closest adversarial video: ``info`` says
    ``success_from_earlier_answer``). ``stop_reason``: ``converged`` (the stopping rule),
    ``max_iter``, ``budget_exhausted``, ``oracle_unavailable`` (a served model stopped
    answering; ``info["error"]`` says why), ``no_initial_direction``, ``nonfinite_output`` (the
    model answered NaN/Inf; ``info["error"]`` names the query) or ``clean_misclassified`` (the
    clean video was not attacked: ``attacked`` is False).
    Whatever stopped it, ``x_adv`` is the closest adversarial video the attack had queried, bit
    for bit the tensor the oracle evaluated (the clean video when it saw none).
    """

    x_adv: torch.Tensor
    success: bool
    label: int | None
    stop_reason: str
    queries: int
    queries_by_phase: dict[str, int]
    distance: float
    map: float
    map_star: float
    sparsity: float
    iterations: int = 0
    trace: list[TraceRow] = field(default_factory=list)
    wall_time: float = 0.0
    started: float | None = None  # time.perf_counter() at the start (attacks run together overlap)
    attacked: bool = True
    goal: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    mask: torch.Tensor | None = None  # bool, where the attack may perturb (None: everywhere)
    linf: float = math.nan  # L-inf of x_adv - x, 0-255

    def summary(self) -> str:
        """One line: success, queries, distance, MAP."""
        return (
            f"{'success' if self.success else 'FAILED '} {self.stop_reason:<20} "
            f"queries={self.queries:>6} (init {self.queries_by_phase.get('init', 0)}) "
            f"L2={self.distance:.3f} Linf={self.linf:.1f} MAP={self.map:.2f} "
            f"MAP*={self.map_star:.2f}"
        )


def drive(process: QueryProcess, oracle: Oracle) -> Any:
    """Run one query process against ``oracle`` and return its value."""
    try:
        request = next(process)
        while True:
            try:
                answer = oracle(request.points, request.phase, reserve=request.reserve)
            except BudgetExhausted as exc:
                request = process.throw(exc)
                continue
            request = process.send(answer)
    except StopIteration as stop:
        return stop.value


def drive_many(
    processes: Sequence[QueryProcess],
    oracles: Sequence[Oracle],
    on_step: Callable[[int], None] | None = None,
    width: int | None = None,
) -> list[Any]:
    """Run several query processes in lockstep: one joint forward pass per step.

    ``oracles[i]`` answers and counts ``processes[i]``; they must be forks of one oracle.
    Each process sees exactly the answers it would get from :func:`drive`, except that a NaN/Inf
    answer for one process is thrown into that process only (see the module docstring): its
    result says why it ended, and the others go on. ``on_step(done)`` is
    called after every joint step with the number of finished processes (a progress bar).
    ``width``: at most this many processes in flight (``None``: all); as one ends, the next in
    order starts, so the steps stay full while processes remain.
    """
    if len(processes) != len(oracles):
        raise ValueError(f"{len(processes)} processes but {len(oracles)} oracles")
    if width is not None and width < 1:
        raise ValueError(f"width must be >= 1 or None, got {width}")
    results: list[Any] = [None] * len(processes)
    pending: dict[int, Request] = {}
    waiting = iter(range(len(processes)))

    def fill() -> None:
        while width is None or len(pending) < width:
            i = next(waiting, None)
            if i is None:
                return
            try:
                pending[i] = next(processes[i])
            except StopIteration as stop:
                results[i] = stop.value

    fill()
    while pending:
        idx = list(pending)
        answers = query_jointly(
            [(oracles[i], pending[i].points, pending[i].phase, pending[i].reserve) for i in idx],
            isolate_faults=True,
        )
        for i, answer in zip(idx, answers):
            try:
                if isinstance(answer, (BudgetExhausted, NonFiniteOutputError)):
                    pending[i] = processes[i].throw(answer)
                else:
                    pending[i] = processes[i].send(answer)
            except StopIteration as stop:
                results[i] = stop.value
                del pending[i]
            except NonFiniteOutputError as exc:  # the process did not handle it: its result
                results[i] = exc
                del pending[i]
        fill()
        if on_step is not None:
            on_step(len(processes) - len(pending))
    return results


@dataclass
class AttackSet:
    """Videos to attack: ``xs [n, C, T, H, W]``, true ``labels``, per-video ``candidates``
    (videos for the initial directions) and ``targets`` (None when untargeted)."""

    indices: list[int]
    xs: torch.Tensor
    labels: list[int]
    candidates: list[torch.Tensor]
    targets: list[int | None]


def attack_set(
    dataset: Any,
    model: torch.nn.Module,
    n: int,
    num_candidates: int = 10,
    targeted: bool = False,
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> AttackSet:
    """Pick ``n`` videos of ``dataset`` that ``model`` classifies correctly (one per class first),
    with ``num_candidates`` candidate videos each from the rest of the data set.

    ``indices``: attack these videos instead (in this order; ``n`` is then ignored), each
    checked to be classified correctly, e.g. the clips a model is most sure of.

    The selection is the experimenter's, as in the paper (only correctly classified videos are
    attacked); it is not an attack query. Each attack still checks its clean video and queries
    its candidates through its oracle, counted.
    """
    import numpy as np

    from hba_lib.data.video import to_model_layout

    labels = np.asarray(dataset.labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    device = next(iter(model.parameters()), torch.empty(0)).device
    chosen: list[int] = []
    seen: set[int] = set()
    if indices is not None:
        chosen = [int(i) for i in indices]
        bad = [i for i in chosen if not 0 <= i < len(labels)]
        if bad or len(set(chosen)) != len(chosen) or not chosen:
            raise ValueError(
                f"indices {list(indices)}: give distinct videos in [0, {len(labels)}) "
                f"(out of range: {bad})"
            )
        batch = to_model_layout(np.asarray(dataset.videos[chosen])).to(device)
        with torch.inference_mode():
            pred = model(batch).argmax(1).cpu().numpy()
        wrong = [i for i, p in zip(chosen, pred) if p != labels[i]]
        if wrong:
            raise ValueError(f"the model misclassifies videos {wrong} of indices: not attacked")
        n = len(chosen)
    for pass_ in range(2 if indices is None else 0):  # first one video per class, then any
        for start in range(0, len(order), 64):
            idx = [int(i) for i in order[start : start + 64] if int(i) not in chosen]
            if not idx or len(chosen) >= n:
                break
            batch = to_model_layout(np.asarray(dataset.videos[idx])).to(device)
            with torch.inference_mode():
                pred = model(batch).argmax(1).cpu().numpy()
            for i, p in zip(idx, pred):
                if p == labels[i] and len(chosen) < n and (pass_ == 1 or labels[i] not in seen):
                    chosen.append(i)
                    seen.add(int(labels[i]))
        if len(chosen) >= n:
            break
    rest = np.setdiff1d(np.arange(len(labels)), chosen)
    k = len(getattr(dataset, "classes", np.unique(labels)))
    xs, cands, targets = [], [], []
    for i in chosen:
        y = int(labels[i])
        target = int(rng.choice([c for c in range(k) if c != y])) if targeted else None
        pool = rest[labels[rest] != y] if target is None else rest[labels[rest] == target]
        pick = np.sort(rng.choice(pool, size=min(num_candidates, len(pool)), replace=False))
        xs.append(to_model_layout(np.asarray(dataset.videos[i])))
        cands.append(to_model_layout(np.asarray(dataset.videos[pick.tolist()])))
        targets.append(target)
    if not chosen:
        raise ValueError("the model classifies none of the data set's videos correctly")
    return AttackSet(chosen, torch.stack(xs), [int(labels[i]) for i in chosen], cands, targets)
