"""Target models behind one interface: float ``[B, C, T, H, W]`` in [0, 1] -> ``[B, K]`` logits.

``build_model(name, num_classes)`` builds any of :data:`MODEL_NAMES`, each wrapped in a
:class:`VideoClassifier` that normalises inside ``forward``; ``load_default_model("c3d")``
returns the committed small C3D trained on the synthetic data set, ready to attack.
``build_model("movinet_a0")`` (:data:`PRETRAINED_NAMES`) loads a real, released video classifier
as a query-only black box: MoViNet-A0-Stream (Kinetics-600, int8 TFLite) on the LiteRT runtime
(the optional extra ``real``; ``hba_lib.models.tflite``, ``hba_lib.models.movinet``).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hba_lib.models.lrcn import LRCN, SmallFrameCNN
from hba_lib.models.normalize import (
    HARA_MEAN_255,
    IMAGENET_MEAN_01,
    IMAGENET_STD_01,
    KINETICS_MEAN_01,
    KINETICS_STD_01,
    VideoClassifier,
)
from hba_lib.models.resnext3d import ResNeXt3D, load_3d_resnets_checkpoint, resnext3d
from hba_lib.models.small import C3DSmall

__all__ = [
    "MODEL_NAMES",
    "PRETRAINED_NAMES",
    "DEFAULT_CHECKPOINTS",
    "VideoClassifier",
    "ResNeXt3D",
    "C3DSmall",
    "LRCN",
    "build_model",
    "load_3d_resnets_checkpoint",
    "load_default_model",
    "load_model_checkpoint",
    "load_model_spec",
    "save_model_checkpoint",
    "count_parameters",
    "top_k",
]

MODEL_NAMES = (
    "c3d",
    "resnext3d",
    "c3d_small",
    "lrcn",
    "lrcn_small",
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
)
TORCHVISION_VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18")
PRETRAINED_NAMES = ("movinet_a0",)
"""Released models loaded from their files, query-only (no training, fixed classes)."""
# load_default_model's names -> committed checkpoint stems in hba_lib/checkpoints/.
DEFAULT_CHECKPOINTS = {"c3d": "c3d_small_synthetic", "lrcn": "lrcn_small_synthetic"}


def _torchvision_video(name: str, num_classes: int, weights_path: str | Path | None) -> nn.Module:
    """torchvision's r3d_18 / mc3_18 / r2plus1d_18, optionally from a local Kinetics state dict."""
    import torchvision.models.video as tvv

    net = getattr(tvv, name)(weights=None, num_classes=num_classes)
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"{name} weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["fc.weight"].shape[0] != num_classes:  # Kinetics-400 head: keep the new one
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            state.update({f"fc.{k}": v for k, v in net.fc.state_dict().items()})
        net.load_state_dict(state, strict=True)
    return net


def build_model(name: str, num_classes: int | None = None, **kw: Any) -> nn.Module:
    """Build model ``name`` (one of :data:`MODEL_NAMES`) with ``num_classes`` outputs, or load
    one of :data:`PRETRAINED_NAMES` (``num_classes``: ``None`` or its own count).

    Keyword options: ``c3d``/``resnext3d``: ``depth`` (50/101/152; ``c3d`` is 101),
    ``cardinality``, ``width``, ``dataset`` (whose 0-255 mean it subtracts);
    ``c3d_small``: ``channels``, ``dropout``; ``lrcn``/``lrcn_small``: ``backbone``,
    ``hidden``, ``dropout``, ``backbone_weights`` and, for the small frame CNN,
    ``channels``, ``strides``, ``pool``, ``out_dim``; torchvision models:
    ``weights_path`` (a local Kinetics state dict); ``movinet_a0``: ``path`` (the ``.tflite``
    file or folder), ``workers``, see :func:`hba_lib.models.movinet.movinet_a0`. Every model
    takes [0, 1] videos.
    """
    if name in PRETRAINED_NAMES:
        from hba_lib.models.movinet import NUM_CLASSES, movinet_a0

        if num_classes not in (None, NUM_CLASSES):
            raise ValueError(f"{name} has {NUM_CLASSES} classes (Kinetics-600), not {num_classes}")
        return movinet_a0(**kw)
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES + PRETRAINED_NAMES}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    kw = dict(kw)
    spec_kw = dict(kw)
    if name in ("c3d", "resnext3d"):
        dataset = kw.pop("dataset", "ucf101")
        if dataset not in HARA_MEAN_255:
            raise ValueError(
                f"unknown dataset {dataset!r} for the mean; one of {list(HARA_MEAN_255)}"
            )
        if name == "c3d" and kw.get("depth", 101) != 101:
            raise ValueError("'c3d' is the depth-101 3D-ResNeXt; use 'resnext3d' for other depths")
        net = resnext3d(num_classes=num_classes, **kw)
        model = VideoClassifier(net, HARA_MEAN_255[dataset], (1.0, 1.0, 1.0), scale=255.0)
    elif name == "c3d_small":
        net = C3DSmall(num_classes, **kw)
        spec_kw = {**_defaults(C3DSmall), **kw}  # pin the architecture in saved specs
        model = VideoClassifier(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    elif name in ("lrcn", "lrcn_small"):
        if name == "lrcn_small":
            kw.setdefault("backbone", "small")
            kw.setdefault("hidden", 128)
            kw.setdefault("dropout", 0.0)
            kw.setdefault("feature_diff", True)
            spec_kw = {**_defaults(LRCN), **_defaults(SmallFrameCNN), **kw}
        backbone = kw.get("backbone", "inception_v3")
        spec_kw.pop("backbone_weights", None)  # the saved state dict carries the weights
        net = LRCN(num_classes, **kw)
        if backbone == "small":
            model = VideoClassifier(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        else:
            model = VideoClassifier(net, IMAGENET_MEAN_01, IMAGENET_STD_01)
    else:
        net = _torchvision_video(name, num_classes, kw.pop("weights_path", None))
        if kw:
            raise TypeError(f"unexpected options for {name}: {sorted(kw)}")
        model = VideoClassifier(net, KINETICS_MEAN_01, KINETICS_STD_01)
        spec_kw.pop("weights_path", None)
    model.spec = {"name": name, "num_classes": num_classes, "kwargs": _plain(spec_kw)}
    return model


def _defaults(cls: type) -> dict[str, Any]:
    """Keyword defaults of ``cls.__init__`` (a saved spec then survives changed defaults)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _plain(obj: Any) -> Any:
    """Turn tuples/paths into lists/strings so a spec survives JSON and ``weights_only``."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def top_k(
    model: nn.Module, videos: torch.Tensor, k: int = 5, batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most probable classes of each video ``[N, C, T, H, W]`` (in [0, 1]) and their
    softmax probabilities: ``(probs [N, k], classes [N, k])``, best first, without gradients.
    A look by the experimenter, not an attack query (attacks ask through an ``Oracle``)."""
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5:
        shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
        raise ValueError(f"expected videos [N, C, T, H, W], got {shape}")
    device = next(iter(model.parameters()), torch.empty(0)).device
    probs, classes = [], []
    with torch.no_grad():
        for start in range(0, len(videos), batch_size):
            logits = model(videos[start : start + batch_size].to(device)).float()
            p, c = torch.softmax(logits, dim=1).topk(min(k, logits.shape[1]), dim=1)
            probs.append(p.cpu())
            classes.append(c.cpu())
    return torch.cat(probs), torch.cat(classes)


def save_model_checkpoint(model: VideoClassifier, path: str | Path, **extra: Any) -> Path:
    """Save weights + build spec (+ plain ``extra`` metadata) loadable with ``weights_only=True``."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("model has no .spec; build it with hba_lib.models.build_model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"spec": spec, "model": state, **_plain(extra)}, path)
    return path


def load_model_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> VideoClassifier:
    """Rebuild and load a model saved by :func:`save_model_checkpoint` (or a training run).

    A relative ``path`` not found from the working directory is read from the repository root
    (notebooks run in ``notebooks/``; ``params/*.yaml`` name paths from the root)."""
    from hba_lib import paths

    path = paths.resolve(path)
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not an hba model checkpoint (needs 'spec' and 'model')")
    spec = ckpt["spec"]
    model = build_model(spec["name"], spec["num_classes"], **spec.get("kwargs", {}))
    model.load_state_dict(ckpt["model"], strict=True)
    model.classes = list(ckpt.get("classes", []))
    return model.to(device).eval()


def default_checkpoint_path(name: str = "c3d") -> Path:
    """Path of the committed default checkpoint for ``name`` ("c3d" or "lrcn")."""
    from hba_lib.paths import CHECKPOINTS

    stem = DEFAULT_CHECKPOINTS.get(name.removesuffix("_small"))
    if stem is None:
        raise ValueError(
            f"no default checkpoint for {name!r}; choose one of {list(DEFAULT_CHECKPOINTS)}"
        )
    return CHECKPOINTS / f"{stem}.pt"


def default_checkpoint_info(name: str = "c3d") -> dict[str, Any]:
    """The JSON record beside a default checkpoint (command, seed, data, accuracies)."""
    path = default_checkpoint_path(name).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"default checkpoint record not found: {path}")
    return json.loads(path.read_text())


def load_default_model(name: str = "c3d", device: str | torch.device = "cpu") -> VideoClassifier:
    """The committed small ``name`` ("c3d" or "lrcn") trained on synthetic data, in eval mode."""
    return load_model_checkpoint(default_checkpoint_path(name), device)


def load_model_spec(
    spec: str, kwargs: dict[str, Any] | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The model a command line or a sweep names, in eval mode: a default name (``c3d`` /
    ``lrcn``: the committed checkpoints), a released model (``movinet_a0``), a ``.pt``
    checkpoint saved by :func:`save_model_checkpoint`, or ``pkg.module:function``, a factory
    returning a Module (called with ``kwargs``, which only a factory takes)."""
    import importlib

    if spec in DEFAULT_CHECKPOINTS and not kwargs:
        return load_default_model(spec, device)
    if spec in PRETRAINED_NAMES and not kwargs:
        return build_model(spec)
    if spec.endswith(".pt"):
        return load_model_checkpoint(spec, device)
    if ":" in spec:
        module, _, func = spec.partition(":")
        model = getattr(importlib.import_module(module), func)(**(kwargs or {}))
        if not isinstance(model, nn.Module):
            raise TypeError(f"model factory {spec} returned {type(model).__name__}, not a Module")
        return model.to(torch.device(device)).eval()
    raise ValueError(
        f"unknown model {spec!r}: a default name {sorted(DEFAULT_CHECKPOINTS)}, a released model "
        f"{list(PRETRAINED_NAMES)}, a .pt checkpoint or a 'module:function' factory"
    )
