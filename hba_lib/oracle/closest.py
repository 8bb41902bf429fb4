"""The closest adversarial video seen: what an attack returns when its budget cuts it short.

Every attack here (Opt-attack and Sign-OPT through :class:`~hba_lib.attacks.base.AttackState`,
Algorithm 1's key-frame search, the ART peers through their estimator) keeps, besides its own
state, the closest (L2 to ``x``) video the oracle answered adversarial: the very tensor it
evaluated (the query clipped to [0, 1]), never one rebuilt from ``x + g theta``, which can
differ in the last bits, enough to cross an int8 model's boundary. :class:`Closest` is that
bookkeeping, once.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import torch

from hba_lib.oracle.core import Answer
from hba_lib.oracle.queries import Request, observe


class Closest:
    """The closest (L2 to ``x``) of the videos offered, each one the oracle evaluated and
    answered adversarial; ``video`` is ``None`` (``distance`` infinite) until there is one.

    ``mask`` (0/1, broadcastable to ``x``; ``None``: everywhere): a video that changes a pixel
    of ``x`` where the mask is 0 is not kept. :meth:`restrict` narrows it and forgets a kept
    video that leaves the new mask.

    ``runners_up`` keeps the last ``keep`` videos the kept one replaced, closest first: a
    fallback for an attack whose final check on ``video`` is answered otherwise (a clip within
    float rounding of the boundary can be answered differently alone than in a batch)."""

    def __init__(self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: int = 3) -> None:
        self.x = x
        self.video: torch.Tensor | None = None
        self.distance = math.inf
        self.keep = keep
        self.runners_up: list[tuple[float, torch.Tensor]] = []
        self.restrict(mask)

    def restrict(self, mask: torch.Tensor | None) -> None:
        """Keep only videos inside ``mask`` from now on (and forget kept ones outside)."""
        self._outside = None if mask is None else mask.expand_as(self.x) == 0
        self.runners_up = [(d, v) for d, v in self.runners_up if self.inside(v)]
        if self.video is not None and not self.inside(self.video):
            self.video, self.distance = None, math.inf

    def inside(self, video: torch.Tensor) -> bool:
        """Whether ``video`` changes no pixel of ``x`` outside the mask."""
        return self._outside is None or not bool(((video != self.x) & self._outside).any())

    def offer(self, videos: torch.Tensor) -> bool:
        """Keep the closest of ``videos [n, C, T, H, W]`` if it beats the one kept and stays
        inside the mask (the first of equals wins); whether it did."""
        if videos.shape[0] == 0:
            return False
        d = torch.linalg.vector_norm((videos - self.x).flatten(1), dim=1)
        if self._outside is not None:  # a video that changes pixels outside the mask
            # (an elementwise and, not indexing by the mask: the same answer, 3x faster)
            moved = ((videos != self.x) & self._outside).flatten(1).any(1)
            d = torch.where(moved, torch.full_like(d, math.inf), d)
        k = int(torch.argmin(d))
        if not float(d[k]) < self.distance:
            return False
        if self.video is not None and self.keep > 0:
            self.runners_up = [(self.distance, self.video), *self.runners_up][: self.keep]
        self.distance, self.video = float(d[k]), videos[k].clone()
        return True

    def watch(self, process: Generator[Request, Answer, Any], goal: Any):
        """Run the query process ``process``, offering every point it asks about that ``goal``
        accepts, as the oracle evaluated it; returns what ``process`` returns. An exception
        thrown in (the budget's, say) goes on to ``process``, as ``yield from`` would."""

        def offer(request: Request, answer: Answer) -> None:
            adv = goal.is_adversarial(answer.labels).nonzero().flatten()
            if adv.numel():
                pts = request.points
                self.offer(pts.index_select(0, adv.to(pts.device)).clamp(0.0, 1.0))

        return (yield from observe(process, offer))
