"""LRCN (Donahue et al. 2015): a per-frame 2-D CNN feeding an LSTM, logits averaged over time.

The paper's LRCN uses Inception-v3 frame features; ``backbone="resnet18"`` and
``backbone="small"`` are lighter variants for the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class SmallFrameCNN(nn.Module):
    """Strided 3x3 conv blocks, a ``pool x pool`` map, a linear layer: ``[N, 3, H, W] -> [N, D]``.

    Unlike global pooling, the small pooled map keeps *where* things are in the frame, which
    the LSTM needs to see an object move.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64),
        strides: tuple[int, ...] = (2, 2, 2),
        pool: int = 4,
        out_dim: int = 128,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"channels {channels} and strides {strides} need the same length")
        layers: list[nn.Module] = []
        cin = 3
        for cout, stride in zip(channels, strides):
            layers += [
                nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.proj = nn.Sequential(nn.Linear(cin * pool * pool, out_dim), nn.ReLU(inplace=True))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.flatten(self.pool(self.features(x)), 1))


def frame_backbone(
    name: str, weights_path: str | Path | None = None, **small_kw: Any
) -> tuple[nn.Module, int]:
    """Return a frame feature extractor ``[N, 3, H, W] -> [N, D]`` and its ``D``.

    ``weights_path`` optionally loads a torchvision ImageNet state dict (classifier dropped).
    """
    import torchvision

    if name != "small" and small_kw:
        raise ValueError(f"options {sorted(small_kw)} apply to the 'small' backbone only")
    if name == "small":
        if weights_path is not None:
            raise ValueError("the 'small' frame CNN has no pretrained weights")
        net = SmallFrameCNN(**small_kw)
        return net, net.out_dim
    if name == "inception_v3":
        net = torchvision.models.inception_v3(
            weights=None, aux_logits=False, init_weights=True, transform_input=False
        )
    elif name == "resnet18":
        net = torchvision.models.resnet18(weights=None)
    else:
        raise ValueError(
            f"unknown LRCN backbone {name!r}; one of 'inception_v3', 'resnet18', 'small'"
        )
    dim = net.fc.in_features
    net.fc = nn.Identity()
    if weights_path is not None:
        load_backbone_weights(net, weights_path)
    return net, dim


def load_backbone_weights(net: nn.Module, path: str | Path) -> None:
    """Load a torchvision image-model state dict into ``net``, skipping its classifier."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KeyError(
            f"backbone weights {path} do not match: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


class LRCN(nn.Module):
    """Per-frame CNN -> LSTM -> per-step linear classifier, logits averaged over the T steps.

    ``feature_diff`` also feeds the LSTM the change of the frame features, ``f_t - f_(t-1)``
    (still computed from per-frame CNN outputs only); without it a small LRCN trained from
    scratch sits at chance for many epochs on classes that only motion separates.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "inception_v3",
        hidden: int = 256,
        dropout: float = 0.5,
        backbone_weights: str | Path | None = None,
        feature_diff: bool = False,
        **small_kw: Any,
    ) -> None:
        super().__init__()
        self.feature_diff = feature_diff
        small_kw = {k: tuple(v) if isinstance(v, list) else v for k, v in small_kw.items()}
        self.cnn, dim = frame_backbone(backbone, backbone_weights, **small_kw)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(2 * dim if feature_diff else dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        feats = self.cnn(frames).reshape(b, t, -1)
        if self.feature_diff:  # also give the LSTM f_t - f_(t-1) (zero at t = 0)
            diff = torch.cat([torch.zeros_like(feats[:, :1]), feats[:, 1:] - feats[:, :-1]], 1)
            feats = torch.cat([feats, diff], 2)
        out, _ = self.lstm(self.dropout(feats))
        return self.fc(self.dropout(out)).mean(dim=1)
