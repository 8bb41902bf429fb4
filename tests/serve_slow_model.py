"""A deliberately slow model for the model server's tests (``--model serve_slow_model:slow``, with
``tests/`` on the server's ``PYTHONPATH``): it sleeps 10 ms a clip, so a batch of 40 clips keeps
the server's model busy 400 ms whatever the machine's speed, then answers 12 classes from each
channel's mean (deterministic, the same for the same clip)."""

from __future__ import annotations

import time

import torch
from torch import nn

MS_PER_CLIP = 10.0


class SlowModel(nn.Module):
    """Logits ``[B, 12]`` from the clips' channel means, after ``ms_per_clip`` ms a clip."""

    def __init__(self, ms_per_clip: float = MS_PER_CLIP) -> None:
        super().__init__()
        self.ms_per_clip = ms_per_clip
        self.head = nn.Linear(3, 12)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            self.head.weight.copy_(torch.randn(12, 3, generator=gen))
            self.head.bias.copy_(torch.randn(12, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.ms_per_clip * x.shape[0] / 1e3)
        return self.head(x.mean(dim=(2, 3, 4)))


def slow() -> nn.Module:
    """The factory ``--model serve_slow_model:slow`` names."""
    return SlowModel().eval()
