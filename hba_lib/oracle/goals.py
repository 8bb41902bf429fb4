"""Attack goals (criteria), separate from the oracle and the attack, as in foolbox.

A goal says which oracle answers count as adversarial for one clean video.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Untargeted:
    """Misclassification: adversarial when the top-1 label differs from the true ``label``."""

    label: int
    targeted = False

    def is_adversarial(self, labels: torch.Tensor) -> torch.Tensor:
        """Bool tensor: which of the answered ``labels`` satisfy the goal."""
        return torch.as_tensor(labels) != self.label

    def describe(self) -> str:
        return f"untargeted (true class {self.label})"


@dataclass(frozen=True)
class Targeted:
    """Targeted misclassification: adversarial when the top-1 label equals ``target``."""

    label: int
    target: int
    targeted = True

    def __post_init__(self) -> None:
        if self.target == self.label:
            raise ValueError(f"target class {self.target} equals the true class")

    def is_adversarial(self, labels: torch.Tensor) -> torch.Tensor:
        """Bool tensor: which of the answered ``labels`` satisfy the goal."""
        return torch.as_tensor(labels) == self.target

    def describe(self) -> str:
        return f"targeted (true class {self.label} -> target {self.target})"


Goal = Untargeted | Targeted


def make_goal(label: int, target: int | None = None) -> Goal:
    """``Untargeted(label)`` when ``target`` is None, else ``Targeted(label, target)``."""
    return Untargeted(int(label)) if target is None else Targeted(int(label), int(target))
