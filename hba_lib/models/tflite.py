"""A TFLite video classifier behind the models' interface, on the LiteRT runtime.

``TFLiteVideoClassifier(path)`` takes float ``[B, 3, T, H, W]`` videos in [0, 1] of any size and
returns ``[B, K]`` logits, as every model of ``hba_lib.models`` does; the frames are resized
inside the model to the size the file expects (bilinear, antialiased; give square frames, e.g.
``read_snippet``'s centre crops, as nothing is cropped here). Two kinds of files, told apart by
their signature (``serving_default`` or the only one):

- **stream** models (MoViNet-Stream): one frame ``[1, 1, h, w, 3]`` at a time plus state
  tensors, each input state with an output of the same name (the next state); the states start
  at zeros of their dtype and shape, are carried from frame to frame, and the logits after the
  last frame are the clip's;
- **clip** models: the whole clip ``[1, T, h, w, 3]`` (or ``[1, 3, T, h, w]``) in one call.

It is **query-only**: the runtime has no gradients, which is the black-box setting of the
paper. ``forward`` runs under ``torch.no_grad`` and refuses an input that asks for gradients,
saying so.

**Speed.** A clip costs one interpreter call per frame for a stream model (16 for MoViNet-A0,
about 0.08-0.11 s a clip on one core). A batch is answered by a pool of threads, each with its
own interpreter (an interpreter is not thread-safe; its state is its own). Whether threads can
help depends on the runtime releasing the GIL while it runs: LiteRT's ``Invoke`` does (its
wrapper wraps the call in ``Py_BEGIN_ALLOW_THREADS``), and measured here a pure-Python loop kept
55 % of its speed while another thread ran MoViNet-A0 clip after clip (it would nearly stop if
the GIL were held). On this project's 2-core machine, already busy with two other processes, a
batch of 4 clips took 0.44 s with one thread and 0.42 s with two (4 clips: 9.1 and 9.5 clips/s):
no core was free, so the pool cannot show its gain there; on free cores each worker adds one
core's worth. ``workers`` (default: the CPU count, at most 8) sets the pool size; each
interpreter uses ``interpreter_threads`` (default 1) threads of its own.

A missing runtime raises :class:`RuntimeMissingError`, a missing file :class:`ModelFileMissingError`
(a ``FileNotFoundError``), each naming what is missing and how to get it, before anything deep
is called.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

RUNTIME_HINT = (
    "install the LiteRT runtime: `pip install ai-edge-litert` (or `pip install -e '.[real]'`; "
    "`make setup` installs the extra `real`)"
)


class RuntimeMissingError(ImportError):
    """No TFLite runtime (``ai-edge-litert``, or ``tflite-runtime``) is installed."""


class ModelFileMissingError(FileNotFoundError):
    """A model (or label map) file that is not where it was looked for; the message says how
    to get it."""


class QueryOnlyError(RuntimeError):
    """Gradients were asked of a query-only (black-box) model."""


def interpreter_class() -> Callable[..., Any]:
    """The runtime's ``Interpreter`` class: LiteRT's, else ``tflite_runtime``'s, else a
    :class:`RuntimeMissingError` saying how to install one."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            raise RuntimeMissingError(
                f"no TFLite runtime: the module ai_edge_litert is not installed; {RUNTIME_HINT}"
            ) from None
    return Interpreter


def runtime_available() -> bool:
    """Whether a TFLite runtime can be imported."""
    try:
        interpreter_class()
    except RuntimeMissingError:
        return False
    return True


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names, one a line (line i is logit i), from a label map file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileMissingError(f"label map not found: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Signature:
    """What a TFLite file's signature says: the frame (or clip) input, the logits output, the
    state names (stream models), the model's frame size and, for clip models, frame count."""

    key: str | None
    image: str
    logits: str
    states: tuple[str, ...]
    size: tuple[int, int]
    frames: int | None
    channels_last: bool
    num_classes: int

    @property
    def kind(self) -> str:
        """``stream`` (states carried frame to frame) or ``clip`` (one call a clip)."""
        return "stream" if self.states else "clip"


def read_signature(
    runner: Any, key: str | None, image: str | None = None, logits: str | None = None
) -> Signature:
    """Find the frame/clip input, the logits and the states of a signature runner's details.

    States are the inputs with an output of the same name; the image input is ``image`` if
    given, else the input named ``image``, else the only other input; the logits likewise.
    """
    ins, outs = runner.get_input_details(), runner.get_output_details()
    states = tuple(sorted(n for n in ins if n in outs and n != image))
    if image is None:
        rest = [n for n in ins if n not in states]
        image = "image" if "image" in rest else (rest[0] if len(rest) == 1 else None)
        if image is None:
            raise ValueError(f"cannot tell the image input among {sorted(ins)}: pass image=")
    if logits is None:
        rest = [n for n in outs if n not in states]
        logits = "logits" if "logits" in rest else (rest[0] if len(rest) == 1 else None)
        if logits is None:
            raise ValueError(f"cannot tell the logits among outputs {sorted(outs)}: pass logits=")
    if image not in ins or logits not in outs:
        raise ValueError(
            f"no input {image!r} / output {logits!r} in {sorted(ins)} / {sorted(outs)}"
        )
    shape = [int(v) for v in ins[image]["shape"]]
    if len(shape) != 5 or 3 not in (shape[1], shape[-1]):
        raise ValueError(
            f"input {image!r} has shape {shape}; expected a clip [1, T, H, W, 3] or [1, 3, T, H, W]"
        )
    channels_last = shape[-1] == 3
    t, h, w = shape[1:4] if channels_last else shape[2:5]
    if states and t != 1:
        raise ValueError(f"a stream model takes one frame at a time; {image!r} has T={t}")
    k = [int(v) for v in outs[logits]["shape"]]
    return Signature(
        key, image, logits, states, (h, w), None if states else t, channels_last, k[-1]
    )


class TFLiteVideoClassifier(nn.Module):
    """A TFLite video classifier: ``[B, 3, T, H, W]`` in [0, 1] -> ``[B, K]`` logits (module
    docstring). ``labels``: a label map file (line i names logit i) or a list of names.

    ``num_frames``: the clip length the oracle checks (``None``: any; a clip model's own T
    always holds). ``workers``: interpreters (threads) answering a batch. ``image``,
    ``logits``, ``signature``: names in the file, when they cannot be told automatically.
    ``interpreter``: the runtime's ``Interpreter`` class (a test double; default: LiteRT's).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        labels: str | os.PathLike | Sequence[str] | None = None,
        *,
        num_frames: int | None = 16,
        workers: int | None = None,
        interpreter_threads: int = 1,
        image: str | None = None,
        logits: str | None = None,
        signature: str | None = None,
        interpreter: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileMissingError(f"TFLite model file not found: {self.path}")
        self._interpreter_cls = interpreter or interpreter_class()
        self.interpreter_threads = int(interpreter_threads)
        self.workers = int(workers or min(os.cpu_count() or 1, 8))
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.interpreters = 0  # created so far (one per thread that answered a clip)
        runner = self._runner(signature)
        self.signature = read_signature(runner, self._local.key, image, logits)
        self.zero_states = {
            n: np.zeros(d["shape"], d["dtype"])
            for n, d in runner.get_input_details().items()
            if n in self.signature.states
        }
        if labels is None:
            self.classes = [str(i) for i in range(self.signature.num_classes)]
        else:
            self.classes = read_labels(labels) if isinstance(labels, (str, os.PathLike)) else (
                list(labels))  # fmt: skip
            if len(self.classes) != self.signature.num_classes:
                raise ValueError(
                    f"{len(self.classes)} class names for {self.signature.num_classes} logits "
                    f"({self.path.name})"
                )
        self.num_frames = self.signature.frames or num_frames

    # -- interpreters, one per thread ------------------------------------------------------------
    def _runner(self, key: str | None = None) -> Any:
        """This thread's signature runner (its own interpreter, made on first use)."""
        runner = getattr(self._local, "runner", None)
        if runner is not None:
            return runner
        key = key if key is not None else getattr(self, "signature", None)
        key = key.key if isinstance(key, Signature) else key
        try:
            interp = self._interpreter_cls(
                model_path=str(self.path), num_threads=self.interpreter_threads
            )
        except ValueError as exc:
            raise ValueError(
                f"{self.path}: not a TFLite model the runtime can load ({exc})"
            ) from None
        keys = list(interp.get_signature_list())
        if not keys:
            raise ValueError(f"{self.path}: the model has no signature; this wrapper needs one")
        if key is None:
            key = "serving_default" if "serving_default" in keys else keys[0]
        if key not in keys:
            raise ValueError(f"{self.path}: no signature {key!r}; it has {keys}")
        runner = interp.get_signature_runner(key)
        self._local.interpreter, self._local.runner, self._local.key = interp, runner, key
        with self._lock:
            self.interpreters += 1
        return runner

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tflite")
            return self._pool

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in ("_local", "_lock", "_pool"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local, self._lock, self._pool = threading.local(), threading.Lock(), None

    # -- the interface ---------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """The frame size ``(h, w)`` the file takes."""
        return self.signature.size

    def prepare(self, x: torch.Tensor) -> np.ndarray:
        """``[B, 3, T, H, W]`` in [0, 1] -> float32 ``[B, T, h, w, 3]`` at the model's size."""
        b, c, t, h, w = x.shape
        x = x.detach().float().cpu()
        if (h, w) != self.size:
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            frames = nn.functional.interpolate(
                frames, size=self.size, mode="bilinear", align_corners=False,
                antialias=h > self.size[0] or w > self.size[1],
            )  # fmt: skip
            x = frames.reshape(b, t, c, *self.size).permute(0, 2, 1, 3, 4)
        return np.ascontiguousarray(x.clamp(0.0, 1.0).permute(0, 2, 3, 4, 1).numpy())

    def clip_logits(self, frames: np.ndarray) -> np.ndarray:
        """Logits ``[K]`` of one prepared clip ``[T, h, w, 3]``, on this thread's interpreter."""
        runner, sig = self._runner(), self.signature
        if sig.kind == "clip":
            clip = frames[None] if sig.channels_last else frames.transpose(3, 0, 1, 2)[None]
            return np.array(runner(**{sig.image: clip})[sig.logits][0], dtype=np.float32)
        states = self.zero_states
        out: dict[str, np.ndarray] = {}
        for frame in frames:
            one = (
                frame[None, None] if sig.channels_last else frame.transpose(2, 0, 1)[None, :, None]
            )
            out = runner(**{sig.image: one}, **states)
            states = {n: out[n] for n in sig.states}
        return np.array(out[sig.logits][0], dtype=np.float32)

    def validate(self, x: torch.Tensor) -> None:
        """A clear error unless ``x`` is a float ``[B, 3, T, H, W]`` batch that asks no gradient."""
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected videos [B, 3, T, H, W] in [0, 1], got {shape}")
        if not x.is_floating_point():
            raise TypeError(f"expected float videos in [0, 1], got dtype {x.dtype}")
        if x.requires_grad and torch.is_grad_enabled():
            raise QueryOnlyError(
                f"{self.path.name} is query-only (a TFLite black box: no gradients); "
                "call it under torch.no_grad() or on a detached tensor"
            )
        if self.signature.frames is not None and x.shape[2] != self.signature.frames:
            raise ValueError(
                f"{self.path.name} takes clips of T={self.signature.frames} frames, got "
                f"{tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` in [0, 1] -> ``[B, K]`` float32 logits (clips answered in
        parallel by the pool)."""
        self.validate(x)
        with torch.no_grad():
            clips = self.prepare(x)
            if len(clips) == 1 or self.workers == 1:
                logits = [self.clip_logits(c) for c in clips]
            else:
                logits = list(self._executor().map(self.clip_logits, clips))
        return torch.from_numpy(np.stack(logits)).to(x.device)

    def extra_repr(self) -> str:
        s = self.signature
        return (
            f"{self.path.name}, {s.kind}, {s.size[0]}x{s.size[1]}, {s.num_classes} classes, "
            f"{len(s.states)} states, workers={self.workers}"
        )
