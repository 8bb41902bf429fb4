"""The model a server serves, from its ``--model`` spec, and the frame size it takes."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch
from torch import nn

MOVINET_SIZE = (172, 172)
"""MoViNet-A0's own frame size (it resizes any other inside, at a cost)."""


def load_target(spec: str, device: str = "cpu") -> tuple[nn.Module, tuple[int, int] | None]:
    """``(model, (H, W) or None)`` for ``spec``: ``c3d`` / ``lrcn`` (the committed checkpoints,
    at the size they were trained on), ``movinet_a0`` (172 x 172), a ``.pt`` checkpoint (its
    size read from a ``.json`` record beside it, if any) or ``module:function`` (a factory
    returning a Module; no size known)."""
    from hba_lib.models import (
        DEFAULT_CHECKPOINTS,
        PRETRAINED_NAMES,
        build_model,
        default_checkpoint_info,
        load_default_model,
        load_model_checkpoint,
    )

    if spec in DEFAULT_CHECKPOINTS:
        size = int(default_checkpoint_info(spec)["train_config"]["size"])
        return load_default_model(spec, device), (size, size)
    if spec in PRETRAINED_NAMES:
        return build_model(spec), MOVINET_SIZE
    if spec.endswith(".pt"):
        record = Path(spec).with_suffix(".json")
        size = None
        if record.is_file():
            found = json.loads(record.read_text()).get("train_config", {}).get("size")
            size = (int(found), int(found)) if found else None
        return load_model_checkpoint(spec, device), size
    if ":" in spec:
        module, _, func = spec.partition(":")
        model = getattr(importlib.import_module(module), func)()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model factory {spec} returned {type(model).__name__}, not a Module")
        return model.to(torch.device(device)).eval(), None
    raise ValueError(
        f"unknown model {spec!r}: {sorted(DEFAULT_CHECKPOINTS)}, {list(PRETRAINED_NAMES)}, a .pt "
        "checkpoint or module:function"
    )
