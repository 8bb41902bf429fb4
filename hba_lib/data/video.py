"""Video layout helpers: stored uint8 [.., T, H, W, C] <-> model float [.., C, T, H, W] in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

NUM_FRAMES = 16


def to_model_layout(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., T, H, W, C]`` frames -> float32 ``[..., C, T, H, W]`` in [0, 1]."""
    x = torch.as_tensor(frames)
    if x.ndim < 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected [..., T, H, W, C] frames with C in (1, 3), got shape {tuple(x.shape)}"
        )
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    nd = x.ndim
    perm = list(range(nd - 4)) + [nd - 1, nd - 4, nd - 3, nd - 2]
    return x.permute(*perm).contiguous()


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """float ``[..., C, T, H, W]`` in [0, 1] -> uint8 ``[..., T, H, W, C]`` numpy frames."""
    v = torch.as_tensor(video).detach().float().cpu()
    if v.ndim < 4 or v.shape[-4] not in (1, 3):
        raise ValueError(
            f"expected [..., C, T, H, W] video with C in (1, 3), got shape {tuple(v.shape)}"
        )
    nd = v.ndim
    perm = list(range(nd - 4)) + [nd - 3, nd - 2, nd - 1, nd - 4]
    return (v.permute(*perm).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def check_video(video: torch.Tensor, *, batched: bool = False) -> None:
    """Raise ValueError unless ``video`` is a float [C, T, H, W] (or [B, C, T, H, W]) tensor."""
    want = 5 if batched else 4
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor video, got {type(video).__name__}")
    if video.ndim != want or video.shape[-4] not in (1, 3):
        layout = "[B, C, T, H, W]" if batched else "[C, T, H, W]"
        raise ValueError(
            f"expected a {layout} video with C in (1, 3), got shape {tuple(video.shape)}"
        )
    if not video.is_floating_point():
        raise TypeError(f"expected a floating-point video in [0, 1], got dtype {video.dtype}")


class FrameDataset(Dataset):
    """Stored uint8 clips as a torch Dataset: items ``(float [C, T, H, W] in [0, 1], label)``.

    The shared part of every data set here (synthetic, UCF-101 / HMDB-51 snippets, frame
    folders, a folder of clips): a subclass sets ``videos`` (uint8 ``[N, T, H, W, C]``, any
    indexable: an array, a memory map, a lazy decoder), ``labels``, ``classes`` and, if it
    likes, ``transform`` (applied to each item)."""

    videos: np.ndarray
    labels: np.ndarray
    classes: list[str] | tuple[str, ...]
    transform = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # a copy: a read-only memory map must not reach torch as a writable tensor
        x = to_model_layout(np.array(self.videos[i]))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return len(self.classes)
