"""A folder of real video files as a data set: ``get_dataset("clips", root=...)``.

Every video file in ``root`` (``.avi``, ``.mp4``, ``.mkv``, ``.webm``, ``.mov``; sorted by name;
``recursive`` for sub-folders) is decoded once to ``num_frames`` uniformly sampled, centre-cropped
frames at ``size`` (``hba_lib.data.video_io.read_snippet``); a file that cannot be decoded is
left out with a warning (``excluded``). Labels:

- from ``labels``, a mapping from a file's name (``"yoga.mp4"``), its stem or its path relative to
  ``root`` to a class (a name in ``classes``, or an index) when the true class is known;
- else from ``model``'s own clean prediction (top-1): for a black-box attack what matters is
  what the model says, and the attack changes it. ``predictions`` and ``confidences`` (top-1
  probability) are kept whenever a model is given, and ``min_confidence`` keeps only the clips
  the model classifies with at least that probability (attack sets pick confident clips).

Choosing clips with the model is the experimenter's selection, as in the paper, not an attack
query: each attack still checks its clean clip through its own counting oracle.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from hba_lib.data.video import FrameDataset, to_model_layout
from hba_lib.data.video_io import NUM_FRAMES, SIZE, VideoDecodeError, read_snippet

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov")


def list_videos(root: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Video files under ``root`` (by extension), sorted by their path relative to it."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"clip folder not found: {root}")
    found = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in found if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    return sorted(files, key=lambda p: str(p.relative_to(root)))


CLIPS_HINT = (
    "any folder of real action videos will do (.avi, .mp4, .mkv, .webm, .mov; e.g. a few UCF-101 "
    "or Kinetics clips); the ones this project uses are public files from GitHub repositories, "
    "listed with their sources and checksums in ../shared/real_data/action_clips/SOURCES.txt"
)
"""How to get real clips, for the messages of notebooks and tools that need them."""


def missing_clips(root: str | os.PathLike) -> str | None:
    """``None`` when ``root`` holds video files, else a message saying what is missing and how
    to get it (:data:`CLIPS_HINT`)."""
    root = Path(root)
    if not root.is_dir():
        return f"a folder of real clips: {root} does not exist; {CLIPS_HINT}"
    if not list_videos(root):
        return (
            f"real clips: {root} holds no video file ({', '.join(VIDEO_EXTENSIONS)}); {CLIPS_HINT}"
        )
    return None


class VideoClips(FrameDataset):
    """Real clips from a folder: items ``(float [C, T, H, W] in [0, 1], label)``, with
    ``classes``, ``videos`` (uint8 ``[N, T, H, W, C]``), ``labels``, ``names`` (paths relative
    to ``root``) and, with a model, ``predictions`` and ``confidences`` (module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike,
        labels: Mapping[str, str | int] | None = None,
        classes: Sequence[str] | None = None,
        model: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        num_frames: int = NUM_FRAMES,
        size: int = SIZE,
        min_confidence: float | None = None,
        recursive: bool = False,
        batch_size: int = 4,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        files = list_videos(self.root, recursive)
        if not files:
            raise ValueError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {self.root}")
        if labels is None and model is None:
            raise ValueError("give labels (a mapping file -> class) or a model to label the clips")
        if min_confidence is not None and model is None:
            raise ValueError("min_confidence needs a model (its top-1 probability)")
        if classes is None:
            classes = getattr(model, "classes", None) or sorted(
                {v for v in (labels or {}).values() if isinstance(v, str)}
            )
        self.classes = list(classes)
        self.transform = transform
        self.excluded: dict[str, str] = {}
        frames, names = [], []
        for path in files:
            name = str(path.relative_to(self.root))
            try:
                snippet, _ = read_snippet(path, num_frames, size)
            except VideoDecodeError as exc:
                self.excluded[name] = str(exc)
                continue
            frames.append(snippet)
            names.append(name)
        if self.excluded:
            warnings.warn(
                f"{len(self.excluded)} of {len(files)} video files in {self.root} could not be "
                f"decoded and are left out: {sorted(self.excluded)}",
                stacklevel=2,
            )
        if not frames:
            raise ValueError(f"no decodable video file in {self.root}")
        videos = np.stack(frames)
        preds = confs = None
        if model is not None:
            preds, confs, k = self._predict(model, videos, batch_size)
            self.classes = self.classes or [str(i) for i in range(k)]
        elif not self.classes:  # labels given as indices only
            self.classes = [str(i) for i in range(max(int(v) for v in labels.values()) + 1)]
        known = [self._known(name, labels) for name in names]
        if any(k is None for k in known) and preds is None:
            missing = [n for n, k in zip(names, known) if k is None]
            raise ValueError(f"no label for {missing} in labels, and no model to label them")
        label_list = [
            k if k is not None else int(p) for k, p in zip(known, preds or [0] * len(known))
        ]
        keep = np.ones(len(names), dtype=bool)
        if min_confidence is not None:
            keep = np.asarray(confs) >= min_confidence
            if not keep.any():
                raise ValueError(
                    f"no clip in {self.root} is classified with probability >= {min_confidence} "
                    f"(best {max(confs):.3f})"
                )
        idx = np.flatnonzero(keep)
        self.videos: np.ndarray = videos[idx]
        self.names: list[str] = [names[i] for i in idx]
        self.labels: np.ndarray = np.asarray([label_list[i] for i in idx], dtype=np.int64)
        self.predictions = None if preds is None else np.asarray(preds, dtype=np.int64)[idx]
        self.confidences = None if confs is None else np.asarray(confs, dtype=np.float64)[idx]

    def surest(self, n: int, skip: int = 0) -> list[int]:
        """The indices of the ``n`` clips the model was most sure of (highest top-1 probability
        first; ties in folder order): the clips an attack set takes when the true classes are
        the model's own answers; fewer where the folder has fewer. ``skip`` passes over the
        ``skip`` surest first (clips to tune on, outside a comparison that reports the surest).
        Needs the clips loaded with a model."""
        if self.confidences is None:
            raise ValueError("surest() needs the clips loaded with a model (model=...)")
        if n < 1:
            raise ValueError(f"n = {n}: ask for at least one clip")
        if not 0 <= skip < len(self.confidences):
            raise ValueError(f"skip = {skip}: need 0 <= skip < {len(self.confidences)} clips")
        order = np.argsort(-self.confidences, kind="stable")
        return [int(i) for i in order[skip : skip + n]]

    def _known(self, name: str, labels: Mapping[str, str | int] | None) -> int | None:
        """The class index given for ``name`` (by relative path, file name or stem), or None."""
        if not labels:
            return None
        path = Path(name)
        for key in (name, path.name, path.stem):
            if key in labels:
                value = labels[key]
                if isinstance(value, str):
                    if value not in self.classes:
                        raise ValueError(f"label {value!r} of {name} is not one of the classes")
                    return self.classes.index(value)
                if not 0 <= int(value) < len(self.classes):
                    raise ValueError(f"label {value} of {name} is out of range for the classes")
                return int(value)
        return None

    @staticmethod
    def _predict(model, videos: np.ndarray, batch_size: int) -> tuple[list[int], list[float], int]:
        """The model's top-1 class and probability for each clip (no gradients), and K."""
        preds, confs, k = [], [], 0
        device = next(iter(model.parameters()), torch.empty(0)).device if hasattr(
            model, "parameters") else torch.device("cpu")  # fmt: skip
        with torch.no_grad():
            for start in range(0, len(videos), batch_size):
                batch = to_model_layout(videos[start : start + batch_size]).to(device)
                logits = model(batch).float()
                p, y = torch.softmax(logits, dim=1).max(dim=1)
                preds += y.cpu().tolist()
                confs += p.cpu().tolist()
                k = logits.shape[1]
        return preds, confs, k

    def __repr__(self) -> str:
        return (
            f"VideoClips(root={str(self.root)!r}, n={len(self)}, classes={self.num_classes}, "
            f"shape={tuple(self.videos.shape[1:])})"
        )
