"""CPU-sized C3D: a few 3D convolution blocks with few channels, fast enough for 10^4 queries."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, stride: tuple[int, int, int] = (1, 1, 1)) -> nn.Sequential:
    """3x3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class C3DSmall(nn.Module):
    """Small 3D CNN: strided 3x3x3 conv blocks, global average pooling, a linear head.

    Striding (not max-pooling) keeps it fast on a CPU. At 16x32x32 with the defaults the
    feature maps go 16x16x16 -> 8x8x8 -> 8x8x8 -> 4x4x4; time is pooled only at the end, so
    motion is read by the stacked 3x3x3 kernels' temporal extent.
    """

    def __init__(
        self,
        num_classes: int,
        channels: Sequence[int] = (16, 24, 32, 48),
        strides: Sequence[int | Sequence[int]] = ((1, 2, 2), 2, 1, 2),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"channels {channels} and strides {strides} need the same length >= 1")
        layers: list[nn.Module] = []
        cin = 3
        for cout, s in zip(channels, strides):
            stride = (s, s, s) if isinstance(s, int) else tuple(s)
            layers.append(_conv_bn(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))
