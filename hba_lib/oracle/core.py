"""The black-box oracle: the only thing an attack touches.

An :class:`Oracle` wraps a video classifier and answers a batch of videos with the top-1 label
and its probability per video, nothing else (the paper's threat model). It counts every video it
evaluates, by phase, enforces a query budget exactly, clips inputs to [0, 1], runs under
``torch.inference_mode`` on the model's device and splits big batches into memory-safe chunks.

The model is held inside a closure, never as an attribute: attack code sees no module, parameter
or gradient through the oracle's interface.

What the in-process oracle protects, and what it does not: it guards against *accidents* and
honest misuse by the code it serves. ``budget``, the counts and ``calls`` are read-only
properties (``oracle.budget = None`` raises ``AttributeError``); a fork's queries are also
counted on, and capped by, the oracle it was forked from, so no way of querying through an
oracle escapes its budget; inputs of the wrong dtype, layout or frame count are refused before
anything is counted. It is *not* a security boundary: code running in the same Python process
can always reach the model through deliberate introspection (closure cells, ``gc``,
``object.__setattr__`` on the private slots). For an adversarial attacker, serve the model
from another process or machine and count there: ``python -m hba_lib.serve`` does, and
:class:`hba_lib.oracle.remote.RemoteOracle` is this oracle over HTTP (``docs/serve.md``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn

PHASES = ("init", "optimisation", "check")
"""Query phases: initialisation (candidates, initial searches, key frames), optimisation, checks."""

MAX_BATCH_VALUES = 2**25
"""Default chunk size: at most this many input values (128 MiB of float32) per forward call."""

NUM_FRAMES = 16
"""Frames per clip of every model ``hba_lib.models`` builds (the caches' and synthetic set's T)."""


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """Set ``torch.backends.cudnn.benchmark`` inside the block; restore the previous value after.

    The oracle evaluates with it off: an attack's batches change size at every step, and with
    benchmarking on cuDNN re-tunes its kernels for every new shape (many times slower).
    """
    prev = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = prev


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """No TF32 inside the block (cuDNN's convolutions and CUDA matmuls); restore the previous
    settings after.

    PyTorch lets cuDNN run float32 convolutions in TF32 by default on Ampere and newer GPUs: the
    inputs are rounded to a 10-bit mantissa (about 1e-3 relative), so a change of a few 1e-6
    per pixel, the size of HopSkipJump's probes near the boundary, does not reach the model at
    all, and the answers near the boundary depend on rounding and on the batch's composition.
    A hard-label attack works exactly there, so the oracle evaluates in full float32. (On the
    H200, hba's HopSkipJump with TF32 on reached a median L2 of 7.1 at 10,000 queries on the
    default C3D where the CPU's float32 gives about 2.)
    """
    prev = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = prev


class Answer(NamedTuple):
    """The oracle's answer for a batch: top-1 labels (int64 [B]) and their probabilities ([B])."""

    labels: torch.Tensor
    probs: torch.Tensor


class BudgetExhausted(RuntimeError):
    """Raised (before anything is evaluated) when a request would go past the query budget."""


class OracleUnavailable(BudgetExhausted):
    """The oracle can answer no more queries for another reason than its budget: a served model
    that stopped answering (:class:`hba_lib.oracle.remote.ServerUnavailable`).

    A subclass of :class:`BudgetExhausted` on purpose: for an attack both mean "no more answers",
    so every attack and driver ends as it does at the budget, keeping its best result so far
    (the attacks name it: ``stop_reason == "oracle_unavailable"``).
    """


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
) -> Callable[..., Answer]:
    """A closure that evaluates a clipped batch and returns only (labels, probs).

    ``strict``: raise :class:`NonFiniteOutputError` at the first NaN/Inf row; otherwise go on and
    return ``(answer, bad)`` with ``bad`` a bool [B] marking the rows with NaN/Inf logits.
    """

    def evaluate(videos: torch.Tensor, first_query: int, phase: str, strict: bool = True):
        per_video = math.prod(videos.shape[1:])
        limit = max_batch or max(1, MAX_BATCH_VALUES // per_video)
        n_chunks = -(-videos.shape[0] // limit)
        chunk = -(-videos.shape[0] // n_chunks)  # even chunks: 40 at a limit of 32 -> 2 x 20
        labels, probs, bads = [], [], []
        with torch.inference_mode(), cudnn_benchmark(False), exact_float32():
            for start in range(0, videos.shape[0], chunk):
                part = videos[start : start + chunk].to(device, non_blocking=True)
                logits = model(part)
                if logits.ndim != 2 or logits.shape[0] != part.shape[0]:
                    raise ValueError(
                        f"model returned logits of shape {tuple(logits.shape)} for a batch of "
                        f"{part.shape[0]} videos; expected [B, K]"
                    )
                bad = ~torch.isfinite(logits).all(dim=1)
                if not strict:
                    bads.append(bad.cpu())
                elif bool(bad.any()):
                    i = int(bad.nonzero()[0, 0]) + start
                    raise NonFiniteOutputError(
                        f"model returned NaN/Inf logits for query #{first_query + i + 1} "
                        f"(batch item {i}, phase {phase!r})",
                        item=i,
                    )
                p, y = torch.softmax(logits.float(), dim=1).max(dim=1)
                labels.append(y)
                probs.append(p)
        answer = Answer(torch.cat(labels).cpu(), torch.cat(probs).cpu())
        return answer if strict else (answer, torch.cat(bads))

    return evaluate


def _expected_frames(model: nn.Module, num_frames: int | None | str) -> int | None:
    if num_frames != "model":
        if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
            raise ValueError(
                f"num_frames must be a positive int, None or 'model', got {num_frames!r}"
            )
        return num_frames  # type: ignore[return-value]
    declared = getattr(model, "num_frames", None)
    if isinstance(declared, int):
        return declared
    from hba_lib.models.normalize import VideoClassifier

    return NUM_FRAMES if isinstance(model, VideoClassifier) else None


class Oracle:
    """Hard-label black box ``F(x) -> (top-1 label, top-1 probability)`` with exact query counts.

    ``budget``: at most this many videos are ever evaluated (``None``: unlimited), by this oracle
    and all its forks together. A request that does not fit raises :class:`BudgetExhausted`
    before anything is evaluated, so the count never goes over. ``reserve`` on a call keeps that
    many queries back (an attack keeps one for its final check). ``max_batch``: videos per
    forward call (``None``: from the video size). ``num_frames``: the frame count T every
    queried clip must have: ``"model"`` (default) takes the model's ``num_frames`` attribute,
    else 16 for a model of ``hba_lib.models`` and no check for any other module; an int sets
    it; ``None`` turns the check off. ``budget``, ``used``, ``counts`` and ``calls`` are
    read-only (see the module docstring for what that does and does not protect).
    """

    __slots__ = ("_evaluate", "_budget", "_device", "_counts", "_calls", "_parent", "_frames")

    def __init__(
        self,
        model: nn.Module,
        budget: int | None = None,
        *,
        max_batch: int | None = None,
        device: str | torch.device | None = None,
        num_frames: int | None | str = "model",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Oracle wraps a torch.nn.Module, got {type(model).__name__}")
        frames = _expected_frames(model, num_frames)
        dev = torch.device(device) if device is not None else _model_device(model)
        model.eval()
        self._evaluate = _make_evaluator(model, dev, max_batch)
        self._device = dev
        self._frames = frames
        self._parent: Oracle | None = None
        self._init_counters(budget)

    def _init_counters(self, budget: int | None) -> None:
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget):
            raise TypeError(f"query budget must be an int or None, got {budget!r}")
        if budget is not None and budget < 0:
            raise ValueError(f"query budget must be >= 0, got {budget}")
        self._budget = None if budget is None else int(budget)
        self._counts = dict.fromkeys(PHASES, 0)
        self._calls = 0

    def fork(self, budget: int | None = None) -> Oracle:
        """A fresh oracle on the same model with its own counters and ``budget``, e.g. one per
        attacked video. Its queries are also counted on this oracle (and its parents), whose
        budgets cap them too."""
        new = object.__new__(Oracle)
        new._evaluate = self._evaluate
        new._device = self._device
        new._frames = self._frames
        new._parent = self
        new._init_counters(budget)
        return new

    # -- accounting -----------------------------------------------------------------------------
    @property
    def budget(self) -> int | None:
        """The most videos this oracle evaluates (``None``: unlimited; its parents' still hold)."""
        return self._budget

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self._device

    @property
    def num_frames(self) -> int | None:
        """The frame count every queried clip must have (``None``: not checked)."""
        return self._frames

    @property
    def calls(self) -> int:
        """Requests answered (a joint forward pass answers one request per fork)."""
        return self._calls

    @property
    def used(self) -> int:
        """Videos evaluated so far, all phases (its forks' queries included)."""
        return sum(self._counts.values())

    @property
    def remaining(self) -> float:
        """Queries left: the tightest of this oracle's and its parents' budgets (``inf``: none)."""
        own = math.inf if self._budget is None else self._budget - self.used
        return own if self._parent is None else min(own, self._parent.remaining)

    @property
    def counts(self) -> dict[str, int]:
        """Queries by phase (a copy)."""
        return dict(self._counts)

    def _admit(self, n: int, phase: str, reserve: int) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown query phase {phase!r}; expected one of {PHASES}")
        if n > self.remaining - reserve:
            o: Oracle | None = self
            while (
                o is not None
                and n <= (math.inf if o._budget is None else o._budget - o.used) - reserve
            ):
                o = o._parent
            o = o or self
            whose = "" if o is self else " (the budget of the oracle it was forked from)"
            raise BudgetExhausted(
                f"query budget exhausted{whose}: {o.used} of {o._budget} used, a request for {n} "
                f"more ({phase}) does not fit" + (f" with {reserve} reserved" if reserve else "")
            )

    def _charge(self, n: int, phase: str) -> None:
        o: Oracle | None = self
        while o is not None:
            o._counts[phase] += n
            o._calls += 1
            o = o._parent

    def validate(self, videos: torch.Tensor) -> torch.Tensor:
        """``videos`` as a batch ``[B, C, T, H, W]``, or a clear error; counts nothing."""
        return _as_batch(videos, self._frames)

    # -- queries --------------------------------------------------------------------------------
    def __call__(
        self, videos: torch.Tensor, phase: str = "optimisation", reserve: int = 0
    ) -> Answer:
        """Answer a batch ``[B, C, T, H, W]`` (or one video ``[C, T, H, W]``); counts B queries
        (also when the model then answers NaN: it has seen them)."""
        return self._query(videos, phase, reserve, strict=True)

    def answer_all(
        self, videos: torch.Tensor, phase: str = "optimisation", reserve: int = 0
    ) -> tuple[Answer, torch.Tensor]:
        """Like calling the oracle, but a NaN/Inf answer does not raise: every video is answered
        and ``bad`` (bool ``[B]``) marks those whose logits were not finite (their labels mean
        nothing). For code that answers on another's behalf and passes faults on instead of
        stopping at the first: the model server of ``hba_lib.serve``."""
        return self._query(videos, phase, reserve, strict=False)

    def _query(self, videos: torch.Tensor, phase: str, reserve: int, strict: bool):
        batch = _as_batch(videos, self._frames)
        n = batch.shape[0]
        self._admit(n, phase, reserve)
        first = self.used
        self._charge(n, phase)
        return self._evaluate(batch.clamp(0.0, 1.0), first, phase, strict=strict)


def _as_batch(videos: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
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
    if videos.shape[0] == 0 or 0 in videos.shape[2:]:
        raise ValueError(f"expected a non-empty batch of videos, got shape {tuple(videos.shape)}")
    if num_frames is not None and videos.shape[2] != num_frames:
        raise ValueError(
            f"expected clips of T={num_frames} frames (the oracle's num_frames), got shape "
            f"{tuple(videos.shape)}"
        )
    return videos.detach()


def query_jointly(
    requests: Sequence[tuple[Oracle, torch.Tensor, str, int]],
    isolate_faults: bool = False,
) -> list[Answer | BudgetExhausted | NonFiniteOutputError]:
    """Answer several oracles' requests ``(oracle, videos, phase, reserve)`` with one forward pass.

    The oracles must be forks of one oracle (same model). Each request is admitted (in order:
    a common parent's budget goes to the earlier requests first), counted and answered exactly as
    ``oracle(videos, phase, reserve)`` would; one that does not fit gets a
    :class:`BudgetExhausted` instead of an answer, and nothing is evaluated for it. A request
    whose videos the model answered with NaN/Inf: its :class:`NonFiniteOutputError` naming the
    query is raised, or with ``isolate_faults`` returned in its place while the other requests
    get their answers. Every admitted video stays counted either way: the model saw it. When
    the evaluation itself raises :class:`BudgetExhausted` (a served model's server refused it,
    or :class:`OracleUnavailable`: the server went away), every admitted request gets that
    exception in place of its answer, so each attack ends with its best result; its videos stay
    counted here (a server may have seen them before it went away).
    """
    out: list[Answer | BudgetExhausted | NonFiniteOutputError | None] = [None] * len(requests)
    batches, admitted, firsts = [], [], []
    for i, (oracle, videos, phase, reserve) in enumerate(requests):
        if oracle._evaluate is not requests[0][0]._evaluate:
            raise ValueError("query_jointly needs oracles forked from one oracle (same model)")
        batch = _as_batch(videos, oracle._frames)
        try:
            oracle._admit(batch.shape[0], phase, reserve)
        except BudgetExhausted as exc:
            out[i] = exc
            continue
        firsts.append(oracle.used)
        oracle._charge(batch.shape[0], phase)
        batches.append(batch)
        admitted.append(i)
    if admitted:
        sizes = [b.shape[0] for b in batches]
        try:
            answer, bad = requests[0][0]._evaluate(
                torch.cat(batches).clamp_(0.0, 1.0), 0, "joint", strict=False
            )
        except BudgetExhausted as exc:
            for i in admitted:
                out[i] = exc
            return out  # type: ignore[return-value]
        offset = 0
        for i, size, first in zip(admitted, sizes, firsts):
            phase = requests[i][2]
            rows = bad[offset : offset + size]
            if bool(rows.any()):
                within = int(rows.nonzero()[0, 0])
                out[i] = NonFiniteOutputError(
                    f"model returned NaN/Inf logits for query #{first + within + 1} of "
                    f"request {i} (batch item {within}, phase {phase!r})",
                    item=within,
                )
            else:
                out[i] = Answer(
                    answer.labels[offset : offset + size], answer.probs[offset : offset + size]
                )
            offset += size
    if not isolate_faults:
        for o in out:
            if isinstance(o, NonFiniteOutputError):
                raise o
    return out  # type: ignore[return-value]
