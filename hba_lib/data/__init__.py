"""One switch for every notebook: ``get_dataset("synthetic" | "ucf101" | "hmdb51", split)``, and
``get_dataset("clips", root=...)`` for a folder of real video files (``hba_lib.data.clips``)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

DATASETS = ("synthetic", "ucf101", "hmdb51", "clips")


def get_dataset(name: str, split: str = "test", **kwargs: Any) -> Dataset:
    """Return the named data set's ``split`` ("train" or "test"; the synthetic set also has
    "val", videos that neither a model nor a reported table uses) as a torch Dataset.

    Every data set yields ``(video float [C, T, H, W] in [0, 1], label)`` and exposes
    ``classes``, ``videos`` (uint8 ``[N, T, H, W, C]``) and ``labels``. ``"clips"``: every video
    file in ``root=`` (no split: ``split`` is not used), labelled by a ``labels=`` mapping or by
    a ``model=``'s own prediction (:class:`~hba_lib.data.clips.VideoClips`).
    """
    splits = ("train", "test", "val") if name == "synthetic" else ("train", "test")
    if split not in splits:
        raise ValueError(f"split of {name!r} must be one of {splits}, got {split!r}")
    if name == "synthetic":
        from hba_lib.data.synthetic import SyntheticActions

        return SyntheticActions(split=split, **kwargs)
    if name in ("ucf101", "hmdb51"):
        from hba_lib.data import real_datasets

        cls = real_datasets.UCF101 if name == "ucf101" else real_datasets.HMDB51
        return cls(split=split, **kwargs)
    if name == "clips":
        from hba_lib.data.clips import VideoClips

        return VideoClips(**kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
