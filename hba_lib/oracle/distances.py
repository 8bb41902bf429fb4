"""How far a perturbation goes: MAP, MAP*, L2, L-inf and the sparsity S of its mask.

The measures every attack reports for each video it returns, and the ones the heuristics bound
(Algorithm 1's MAP bound omega). They sit below the attacks (``hba_lib.attacks``) and the
aggregates over many results (``hba_lib.metrics``, which re-exports them), so an attack can
measure without importing the layer that summarises it.

- MAP: mean ``|x_adv - x|`` over all values of the video, on the 0-255 scale.
- MAP*: the same mean over the masked (perturbed) region only (MAP* = MAP without a mask).
- L2: the Euclidean norm of the perturbation in [0, 1] units (what the peers minimise).
- L-inf: the largest ``|x_adv - x|``, on the 0-255 scale.
- S: ``1 - (1/T) * sum_t phi_t``, ``phi_t`` the fraction of frame t's pixels inside the mask.
"""

from __future__ import annotations

import torch


def mean_absolute_perturbation(
    x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """MAP (or MAP* with ``mask``): mean ``|x_adv - x|`` on the 0-255 scale, videos in [0, 1]."""
    diff = (torch.as_tensor(x_adv).float() - torch.as_tensor(x).float()).abs()
    if mask is None:
        return float(diff.mean()) * 255.0
    m = torch.as_tensor(mask, dtype=torch.float32, device=diff.device).expand_as(diff)
    total = float(m.sum())
    if total == 0:
        return 0.0
    return float((diff * m).sum()) / total * 255.0


def map_star(x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor | None) -> float:
    """MAP* : mean absolute perturbation over the masked region only (0-255)."""
    return mean_absolute_perturbation(x, x_adv, mask)


def frame_fractions(mask: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """phi_t per frame: the fraction of frame t's pixels inside a [C, T, H, W] or [T, H, W] mask."""
    m = torch.as_tensor(mask, dtype=torch.float32)
    if m.ndim == 4:  # [C, T, H, W]: a pixel is in the mask if any channel is
        m = m.amax(dim=0)
    if m.ndim != 3:
        raise ValueError(f"expected a mask [C, T, H, W] or [T, H, W], got shape {tuple(m.shape)}")
    phi = (m > 0).float().mean(dim=(1, 2))
    if num_frames is not None and phi.shape[0] != num_frames:
        phi = phi.expand(num_frames)  # a mask broadcast over time
    return phi


def sparsity(mask: torch.Tensor | None, num_frames: int | None = None) -> float:
    """S = 1 - mean_t phi_t (0 without a mask: every pixel may be perturbed)."""
    if mask is None:
        return 0.0
    return float(1.0 - frame_fractions(mask, num_frames).mean())


def l2_distance(x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """L2 norm of the perturbation in [0, 1] units."""
    return float(torch.linalg.vector_norm((torch.as_tensor(x_adv) - torch.as_tensor(x)).float()))


def linf_distance(x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """L-inf norm of the perturbation on the 0-255 scale (the largest change of one value)."""
    diff = (torch.as_tensor(x_adv).float() - torch.as_tensor(x).float()).abs()
    return float(diff.max()) * 255.0 if diff.numel() else 0.0
