"""Pictures: frame strips, class grids, animations, and saving figures to ``figures/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hba_lib import paths  # noqa: E402
from hba_lib.video import to_uint8_frames  # noqa: E402


def as_frames(video: np.ndarray | torch.Tensor) -> np.ndarray:
    """Any single video (uint8 ``[T, H, W, C]`` or float ``[C, T, H, W]``) -> uint8 ``[T, H, W, C]``."""
    if isinstance(video, torch.Tensor) and video.is_floating_point():
        return to_uint8_frames(video)
    arr = np.asarray(video)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"expected [T, H, W, C] frames or a [C, T, H, W] tensor, got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    return arr


def savefig(fig: plt.Figure, name: str, folder: Path | None = None, dpi: int = 120) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` (or into ``folder``) and return the path."""
    out = paths.ensure_dir(folder or paths.FIGURES) / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out


def frame_strip(
    videos: Sequence[np.ndarray | torch.Tensor],
    row_labels: Sequence[str] | None = None,
    frames: Sequence[int] | None = None,
    title: str | None = None,
    frame_size: float = 1.0,
) -> plt.Figure:
    """One row per video, one column per frame: the paper's Figure-2 layout."""
    rows = [as_frames(v) for v in videos]
    t_idx = list(frames) if frames is not None else list(range(rows[0].shape[0]))
    fig, axes = plt.subplots(
        len(rows), len(t_idx), figsize=(frame_size * len(t_idx), frame_size * len(rows) + 0.3),
        squeeze=False,
    )
    for r, clip in enumerate(rows):
        for c, t in enumerate(t_idx):
            ax = axes[r, c]
            ax.imshow(clip[t].squeeze(), cmap="gray" if clip.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=7)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.03, hspace=0.05)
    return fig


def amplify(perturbation: torch.Tensor, gain: float | None = None) -> torch.Tensor:
    """Map a signed perturbation ``[C, T, H, W]`` to a visible picture in [0, 1] (0 -> grey)."""
    p = torch.as_tensor(perturbation).detach().float().cpu()
    if gain is None:
        peak = float(p.abs().max())
        gain = 0.5 / peak if peak > 0 else 1.0
    return (0.5 + gain * p).clamp(0, 1)


def save_gif(video: np.ndarray | torch.Tensor, name: str, fps: int = 8, scale: int = 2) -> Path:
    """Save one video as an animated GIF in ``figures/`` (Pillow, which matplotlib needs anyway)."""
    from PIL import Image

    frames = as_frames(video)
    imgs = [
        Image.fromarray(f.squeeze()).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
        for f in frames
    ]
    out = paths.ensure_dir(paths.FIGURES) / f"{name}.gif"
    imgs[0].save(out, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    return out
