"""The one model interface: float ``[B, C, T, H, W]`` in [0, 1] in, ``[B, K]`` logits out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Per-channel (RGB) means and stds, each on the scale the network was trained on.
KINETICS_MEAN_01 = (0.43216, 0.394666, 0.37645)  # torchvision video models, [0, 1] scale
KINETICS_STD_01 = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN_01 = (0.485, 0.456, 0.406)  # torchvision image models, [0, 1] scale
IMAGENET_STD_01 = (0.229, 0.224, 0.225)
# Hara et al. 3D-ResNets-PyTorch: 0-255 pixels minus a per-dataset mean, no std division.
HARA_MEAN_255 = {
    "ucf101": (101.2198, 97.5751, 89.5303),
    "hmdb51": (95.4070, 93.4680, 82.1443),
    "kinetics": (110.63666788, 103.16065604, 96.29023126),
    "activitynet": (114.7748, 107.7354, 99.4750),
}

RANGE_TOLERANCE = 1e-3


class VideoClassifier(nn.Module):
    """Wrap ``net`` so callers pass [0, 1] videos: computes ``net((x * scale - mean) / std)``.

    ``net`` takes normalised ``[B, C, T, H, W]`` videos and returns ``[B, K]`` logits.
    Inputs are checked: a 5-D float tensor with 3 channels, values in [0, 1] (when
    ``check_range``), so a 0-255 video or a ``[B, T, C, H, W]`` batch fails loudly.
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        scale: float = 1.0,
        num_frames: int | None = None,
        check_range: bool = True,
    ) -> None:
        super().__init__()
        self.net = net
        self.scale = float(scale)
        self.num_frames = num_frames
        self.check_range = check_range
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1))

    def set_normalization(
        self, mean: Sequence[float], std: Sequence[float] = (1.0, 1.0, 1.0), scale: float = 1.0
    ) -> None:
        """Replace the normalisation (e.g. a per-dataset mean for a loaded checkpoint)."""
        self.mean.copy_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.std.copy_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.scale = float(scale)

    def validate(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is a float ``[B, 3, T, H, W]`` batch in [0, 1]."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"model input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(
                f"model input must be a [B, C=3, T, H, W] batch, got shape {tuple(x.shape)}"
                " (one video: add a batch axis with video[None])"
            )
        if not x.is_floating_point():
            raise TypeError(f"model input must be float in [0, 1], got dtype {x.dtype}")
        if self.num_frames is not None and x.shape[2] != self.num_frames:
            raise ValueError(
                f"model expects T={self.num_frames} frames, got shape {tuple(x.shape)}"
            )
        if self.check_range and x.numel():
            lo, hi = float(x.min()), float(x.max())
            if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
                raise ValueError(
                    f"model input must lie in [0, 1], got values in [{lo:.3f}, {hi:.3f}]"
                    " (pass videos scaled to [0, 1]; the model normalises inside)"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.validate(x)
        x = (x * self.scale - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.net(x)
