"""What all attacks share: query requests, results, query traces, and the drivers.

An attack is written as a *query process*: a Python generator that yields a
:class:`Request` (a batch of videos and a phase) and receives the oracle's
:class:`~hba_lib.oracle.Answer`. The attack never holds the oracle; a driver does:

- :func:`drive` runs one process against one oracle;
- :func:`drive_many` runs several processes (several videos) in lockstep, answering all their
  pending requests with one forward pass per step, each counted on its own video's oracle.

When an oracle refuses a request for lack of budget, the driver throws
:class:`~hba_lib.oracle.BudgetExhausted` into the process, which ends with its best result so far.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from hba_lib.oracle import Answer, BudgetExhausted, Oracle, query_jointly


class Request(NamedTuple):
    """A batch of videos ``[n, C, T, H, W]`` to query, its phase, and queries to keep in reserve."""

    points: torch.Tensor
    phase: str
    reserve: int = 0


QueryProcess = Generator[Request, Answer, Any]


class TraceRow(NamedTuple):
    """One point of an attack's query trace: queries so far, best L2 distance, its MAP (0-255)."""

    queries: int
    distance: float
    map: float


@dataclass
class AttackResult:
    """The outcome of one attack on one video.

    ``success`` comes from the final check query on ``x_adv``. ``stop_reason``: ``converged``
    (the stopping rule), ``max_iter``, ``budget_exhausted``, ``no_initial_direction`` or
    ``clean_misclassified`` (the clean video was not attacked: ``attacked`` is False).
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

    def summary(self) -> str:
        """One line: success, queries, distance, MAP."""
        return (
            f"{'success' if self.success else 'FAILED '} {self.stop_reason:<20} "
            f"queries={self.queries:>6} (init {self.queries_by_phase.get('init', 0)}) "
            f"L2={self.distance:.3f} MAP={self.map:.2f} MAP*={self.map_star:.2f}"
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
) -> list[Any]:
    """Run several query processes in lockstep: one joint forward pass per step.

    ``oracles[i]`` answers and counts ``processes[i]``; they must be forks of one oracle.
    Each process sees exactly the answers it would get from :func:`drive`. ``on_step(done)`` is
    called after every joint step with the number of finished processes (a progress bar).
    """
    if len(processes) != len(oracles):
        raise ValueError(f"{len(processes)} processes but {len(oracles)} oracles")
    results: list[Any] = [None] * len(processes)
    pending: dict[int, Request] = {}
    for i, proc in enumerate(processes):
        try:
            pending[i] = next(proc)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        idx = list(pending)
        answers = query_jointly(
            [(oracles[i], pending[i].points, pending[i].phase, pending[i].reserve) for i in idx]
        )
        for i, answer in zip(idx, answers):
            try:
                if isinstance(answer, BudgetExhausted):
                    pending[i] = processes[i].throw(answer)
                else:
                    pending[i] = processes[i].send(answer)
            except StopIteration as stop:
                results[i] = stop.value
                del pending[i]
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
) -> AttackSet:
    """Pick ``n`` videos of ``dataset`` that ``model`` classifies correctly (one per class first),
    with ``num_candidates`` candidate videos each from the rest of the data set.

    The selection is the experimenter's, as in the paper (only correctly classified videos are
    attacked); it is not an attack query. Each attack still checks its clean video and queries
    its candidates through its oracle, counted.
    """
    import numpy as np

    from hba_lib.video import to_model_layout

    labels = np.asarray(dataset.labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    device = next(iter(model.parameters()), torch.empty(0)).device
    chosen: list[int] = []
    seen: set[int] = set()
    for pass_ in range(2):  # first one video per class, then any
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
