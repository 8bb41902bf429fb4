"""3D-ResNeXt of Hara et al. (CVPR 2018): the paper's "C3D" (depth 101, cardinality 32, shortcut B).

Parameter names match 3D-ResNets-PyTorch (``conv1``, ``layer1.0.conv2``, ``fc``...), so the
authors' ``resnext-101-kinetics-ucf101_split1.pth`` loads with strict key matching through
:func:`load_3d_resnets_checkpoint`. The network takes 0-255 pixels minus a per-dataset mean;
:func:`hba_lib.models.build_model` wraps it so callers pass [0, 1] videos.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hba_lib.models.normalize import HARA_MEAN_255, VideoClassifier

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class ResNeXtBottleneck(nn.Module):
    """Grouped-convolution bottleneck (expansion 2), as in 3D-ResNets-PyTorch."""

    expansion = 2

    def __init__(
        self,
        inplanes: int,
        planes: int,
        cardinality: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        mid = cardinality * (planes // 32)
        self.conv1 = nn.Conv3d(inplanes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(
            mid, mid, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNeXt3D(nn.Module):
    """Hara et al.'s 3D-ResNeXt (shortcut B), adaptive average pooling before ``fc``."""

    def __init__(
        self,
        layers: tuple[int, int, int, int] = DEPTHS[101],
        num_classes: int = 400,
        cardinality: int = 32,
        width: int = 64,
    ) -> None:
        super().__init__()
        if width % 2 or (2 * width // 32) < 1:
            raise ValueError(f"width must be even and >= 16, got {width}")
        self.inplanes = width
        self.conv1 = nn.Conv3d(3, width, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        planes = [2 * width, 4 * width, 8 * width, 16 * width]  # 128, 256, 512, 1024 at width 64
        self.layer1 = self._make_layer(planes[0], layers[0], cardinality, stride=1)
        self.layer2 = self._make_layer(planes[1], layers[1], cardinality, stride=2)
        self.layer3 = self._make_layer(planes[2], layers[2], cardinality, stride=2)
        self.layer4 = self._make_layer(planes[3], layers[3], cardinality, stride=2)
        # The original uses AvgPool3d((1, 4, 4)) at 16x112x112: the same numbers there.
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(planes[3] * ResNeXtBottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _make_layer(self, planes: int, blocks: int, cardinality: int, stride: int) -> nn.Sequential:
        out = planes * ResNeXtBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out),
            )
        layers = [ResNeXtBottleneck(self.inplanes, planes, cardinality, stride, downsample)]
        self.inplanes = out
        layers += [ResNeXtBottleneck(out, planes, cardinality) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnext3d(
    depth: int = 101,
    num_classes: int = 400,
    cardinality: int = 32,
    width: int = 64,
    layers: tuple[int, int, int, int] | None = None,
) -> ResNeXt3D:
    """Build an unwrapped 3D-ResNeXt of ``depth`` 50/101/152 (or explicit ``layers``)."""
    if layers is None:
        if depth not in DEPTHS:
            raise ValueError(f"3D-ResNeXt depth must be one of {sorted(DEPTHS)}, got {depth}")
        layers = DEPTHS[depth]
    return ResNeXt3D(tuple(layers), num_classes, cardinality, width)


def _read_state(path_or_state: str | Path | Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """Return the ``state_dict`` of a 3D-ResNets-PyTorch checkpoint (a path or a loaded dict)."""
    if isinstance(path_or_state, (str, Path)):
        path = Path(path_or_state)
        if not path.is_file():
            raise FileNotFoundError(f"3D-ResNets checkpoint not found: {path}")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    else:
        ckpt = path_or_state
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"a 3D-ResNets checkpoint is a dict, got {type(ckpt).__name__}")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping) or not state:
        raise ValueError("3D-ResNets checkpoint has no (or an empty) 'state_dict'")
    return state


def load_3d_resnets_checkpoint(
    model: nn.Module, path_or_state: str | Path | Mapping[str, Any], dataset: str = "ucf101"
) -> nn.Module:
    """Load a 3D-ResNets-PyTorch checkpoint into ``model`` with strict key matching.

    ``model`` is a :class:`ResNeXt3D` or the :class:`VideoClassifier` that wraps one. Keys
    lose their DataParallel ``module.`` prefix; every other key and shape must match exactly
    (BatchNorm's ``num_batches_tracked``, absent from pre-0.4 PyTorch checkpoints, is the only
    key allowed to be missing). A wrapped model gets the ``dataset``'s 0-255 mean, no std.
    """
    net = model.net if isinstance(model, VideoClassifier) else model
    state = {
        (k[len("module.") :] if k.startswith("module.") else k): v
        for k, v in _read_state(path_or_state).items()
    }
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise KeyError(
            f"3D-ResNets checkpoint does not match the model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''} ({len(missing)}), unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)})"
        )
    bad = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad:
        raise ValueError("3D-ResNets checkpoint shapes do not match: " + "; ".join(bad[:5]))
    merged = {k: state.get(k, own[k]) for k in own}
    net.load_state_dict(merged, strict=True)
    if isinstance(model, VideoClassifier):
        if dataset not in HARA_MEAN_255:
            raise ValueError(
                f"unknown dataset {dataset!r} for the mean; one of {list(HARA_MEAN_255)}"
            )
        model.set_normalization(HARA_MEAN_255[dataset], (1.0, 1.0, 1.0), scale=255.0)
    return model
