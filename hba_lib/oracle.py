"""The black-box oracle: the only thing an attack touches.

An :class:`Oracle` wraps a video classifier and answers a batch of videos with the top-1 label
and its probability per video, nothing else (the paper's threat model). It counts every video it
evaluates, by phase, enforces a query budget exactly, clips inputs to [0, 1], runs under
``torch.inference_mode`` on the model's device and splits big batches into memory-safe chunks.

The model is held inside a closure, never as an attribute: attack code sees no module, parameter
or gradient through the oracle's interface. (Python cannot stop deliberate introspection of a
closure; the point is that no attack in this project can touch the model by accident.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

PHASES = ("init", "optimisation", "check")
"""Query phases: initialisation (candidates, initial searches, key frames), optimisation, checks."""

MAX_BATCH_VALUES = 2**25
"""Default chunk size: at most this many input values (128 MiB of float32) per forward call."""


class Answer(NamedTuple):
    """The oracle's answer for a batch: top-1 labels (int64 [B]) and their probabilities ([B])."""

    labels: torch.Tensor
    probs: torch.Tensor


class BudgetExhausted(RuntimeError):
    """Raised (before anything is evaluated) when a request would go past the query budget."""


class NonFiniteOutputError(FloatingPointError):
    """The model returned NaN or Inf logits; the message names the offending query.

    ``item`` is the offending video's index in the evaluated batch.
    """

    def __init__(self, message: str, item: int = -1) -> None:
        super().__init__(message)
        self.item = item


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _make_evaluator(
    model: nn.Module, device: torch.device, max_batch: int | None
) -> Callable[[torch.Tensor, int, str], Answer]:
    """A closure that evaluates a clipped batch and returns only (labels, probs)."""

    def evaluate(videos: torch.Tensor, first_query: int, phase: str) -> Answer:
        per_video = math.prod(videos.shape[1:])
        limit = max_batch or max(1, MAX_BATCH_VALUES // per_video)
        n_chunks = -(-videos.shape[0] // limit)
        chunk = -(-videos.shape[0] // n_chunks)  # even chunks: 40 at a limit of 32 -> 2 x 20
        labels, probs = [], []
        with torch.inference_mode():
            for start in range(0, videos.shape[0], chunk):
                part = videos[start : start + chunk].to(device, non_blocking=True)
                logits = model(part)
                if logits.ndim != 2 or logits.shape[0] != part.shape[0]:
                    raise ValueError(
                        f"model returned logits of shape {tuple(logits.shape)} for a batch of "
                        f"{part.shape[0]} videos; expected [B, K]"
                    )
                bad = ~torch.isfinite(logits).all(dim=1)
                if bool(bad.any()):
                    i = int(bad.nonzero()[0, 0]) + start
                    raise NonFiniteOutputError(
                        f"model returned NaN/Inf logits for query #{first_query + i + 1} "
                        f"(batch item {i}, phase {phase!r})",
                        item=i,
                    )
                p, y = torch.softmax(logits.float(), dim=1).max(dim=1)
                labels.append(y)
                probs.append(p)
        return Answer(torch.cat(labels).cpu(), torch.cat(probs).cpu())

    return evaluate


class Oracle:
    """Hard-label black box ``F(x) -> (top-1 label, top-1 probability)`` with exact query counts.

    ``budget``: at most this many videos are ever evaluated (``None``: unlimited). A request that
    does not fit raises :class:`BudgetExhausted` before anything is evaluated, so the count never
    goes over. ``reserve`` on a call keeps that many queries back (an attack keeps one for its
    final check). ``max_batch``: videos per forward call (``None``: from the video size).
    """

    __slots__ = ("_evaluate", "budget", "device", "_counts", "calls")

    def __init__(
        self,
        model: nn.Module,
        budget: int | None = None,
        *,
        max_batch: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Oracle wraps a torch.nn.Module, got {type(model).__name__}")
        dev = torch.device(device) if device is not None else _model_device(model)
        model.eval()
        self._evaluate = _make_evaluator(model, dev, max_batch)
        self.device = dev
        self._init_counters(budget)

    def _init_counters(self, budget: int | None) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"query budget must be >= 0, got {budget}")
        self.budget = budget
        self._counts = dict.fromkeys(PHASES, 0)
        self.calls = 0

    def fork(self, budget: int | None = None) -> Oracle:
        """A fresh oracle on the same model (new counters and budget), e.g. one per attacked video."""
        new = object.__new__(Oracle)
        new._evaluate = self._evaluate
        new.device = self.device
        new._init_counters(budget)
        return new

    # -- accounting -----------------------------------------------------------------------------
    @property
    def used(self) -> int:
        """Videos evaluated so far, all phases."""
        return sum(self._counts.values())

    @property
    def remaining(self) -> float:
        """Queries left in the budget (``inf`` without one)."""
        return math.inf if self.budget is None else self.budget - self.used

    @property
    def counts(self) -> dict[str, int]:
        """Queries by phase (a copy)."""
        return dict(self._counts)

    def _admit(self, n: int, phase: str, reserve: int) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown query phase {phase!r}; expected one of {PHASES}")
        if n > self.remaining - reserve:
            raise BudgetExhausted(
                f"query budget exhausted: {self.used} of {self.budget} used, a request for {n} "
                f"more ({phase}) does not fit" + (f" with {reserve} reserved" if reserve else "")
            )

    # -- queries --------------------------------------------------------------------------------
    def __call__(
        self, videos: torch.Tensor, phase: str = "optimisation", reserve: int = 0
    ) -> Answer:
        """Answer a batch ``[B, C, T, H, W]`` (or one video ``[C, T, H, W]``); counts B queries."""
        batch = _as_batch(videos)
        n = batch.shape[0]
        self._admit(n, phase, reserve)
        first = self.used
        self._counts[phase] += n
        self.calls += 1
        return self._evaluate(batch.clamp(0.0, 1.0), first, phase)


def _as_batch(videos: torch.Tensor) -> torch.Tensor:
    if not isinstance(videos, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of videos, got {type(videos).__name__}")
    if videos.ndim == 4:
        videos = videos.unsqueeze(0)
    if videos.ndim != 5 or videos.shape[1] not in (1, 3):
        raise ValueError(
            f"expected videos [B, C, T, H, W] or [C, T, H, W] with C in (1, 3), got {tuple(videos.shape)}"
        )
    if not videos.is_floating_point():
        raise TypeError(f"expected floating-point videos in [0, 1], got dtype {videos.dtype}")
    return videos.detach()


def query_jointly(
    requests: Sequence[tuple[Oracle, torch.Tensor, str, int]],
) -> list[Answer | BudgetExhausted]:
    """Answer several oracles' requests ``(oracle, videos, phase, reserve)`` with one forward pass.

    The oracles must be forks of one oracle (same model). Each request is admitted, counted and
    answered exactly as ``oracle(videos, phase, reserve)`` would; one that does not fit its
    oracle's budget gets a :class:`BudgetExhausted` instead of an answer, and nothing is evaluated
    for it.
    """
    out: list[Answer | BudgetExhausted | None] = [None] * len(requests)
    batches, admitted = [], []
    for i, (oracle, videos, phase, reserve) in enumerate(requests):
        if oracle._evaluate is not requests[0][0]._evaluate:
            raise ValueError("query_jointly needs oracles forked from one oracle (same model)")
        batch = _as_batch(videos)
        try:
            oracle._admit(batch.shape[0], phase, reserve)
        except BudgetExhausted as exc:
            out[i] = exc
            continue
        batches.append(batch)
        admitted.append(i)
    if admitted:
        sizes = [b.shape[0] for b in batches]
        try:
            answer = requests[0][0]._evaluate(torch.cat(batches).clamp_(0.0, 1.0), 0, "joint")
        except NonFiniteOutputError as exc:
            ends = torch.tensor(sizes).cumsum(0)
            j = int((ends <= exc.item).sum())
            oracle, _, phase, _ = requests[admitted[j]]
            within = exc.item - (int(ends[j - 1]) if j else 0)
            raise NonFiniteOutputError(
                f"model returned NaN/Inf logits for query #{oracle.used + within + 1} of "
                f"request {admitted[j]} (batch item {within}, phase {phase!r})",
                item=within,
            ) from exc
        offset = 0
        for i, size in zip(admitted, sizes):
            oracle, _, phase, _ = requests[i]
            oracle._counts[phase] += size
            oracle.calls += 1
            out[i] = Answer(
                answer.labels[offset : offset + size], answer.probs[offset : offset + size]
            )
            offset += size
    return out  # type: ignore[return-value]
