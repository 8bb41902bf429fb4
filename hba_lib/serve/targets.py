"""The model a server serves, from its ``--model`` spec, and the frame size it takes."""

from __future__ import annotations

import json
from pathlib import Path

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
        default_checkpoint_info,
        load_model_spec,
    )

    model = load_model_spec(spec, device=device)
    if spec in DEFAULT_CHECKPOINTS:
        return model, (int(default_checkpoint_info(spec)["train_config"]["size"]),) * 2
    if spec in PRETRAINED_NAMES:
        return model, MOVINET_SIZE
    record = Path(spec).with_suffix(".json") if spec.endswith(".pt") else None
    if record is not None and record.is_file():
        found = json.loads(record.read_text()).get("train_config", {}).get("size")
        return model, ((int(found), int(found)) if found else None)
    return model, None
