"""Pictures: one function per figure a notebook shows, and :func:`show` to save and display it.

A notebook draws a figure in one line, ``viz.show(viz.class_balance(train, test), "01_...")``:
the function here builds it, :func:`show` saves it (:func:`savefig` picks the folder, see
``hba_lib.paths.output_dir``) and displays it inline. Importing this module leaves the
matplotlib backend and ``rcParams`` as they were; styles (seaborn's) apply inside each function
only, through :func:`style`.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import ticker

from hba_lib import paths
from hba_lib.data.video import to_uint8_frames

_announced: set[Path] = set()


# -- saving and showing ----------------------------------------------------------------------------
@contextlib.contextmanager
def style(font_scale: float = 1.0) -> Iterator[None]:
    """Seaborn's ``whitegrid`` style and ``notebook`` context for the figures made inside."""
    import seaborn as sns

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=font_scale):
        yield


def palette(n: int) -> list[tuple[float, float, float]]:
    """``n`` colour-blind-safe colours (seaborn's ``colorblind``, repeated if needed)."""
    import seaborn as sns

    return sns.color_palette("colorblind", n)


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


def _target(name: str, suffix: str, folder: Path | None) -> Path:
    out_dir = paths.ensure_dir(Path(folder) if folder is not None else paths.output_dir())
    if out_dir not in _announced and folder is None:
        _announced.add(out_dir)
        shown = (
            out_dir.relative_to(paths.REPO_ROOT)
            if out_dir.is_relative_to(paths.REPO_ROOT)
            else out_dir
        )
        print(f"[hba] this run's figures and tables go to {shown}/")
    return out_dir / (name if name.endswith(suffix) else f"{name}{suffix}")


def savefig(fig: plt.Figure, name: str, folder: Path | None = None, dpi: int = 120) -> Path:
    """Save ``fig`` as ``<name>.png`` in ``folder`` or this run's output folder; return the path.

    The output folder is ``figures/`` (committed) only for the default run that asks for it
    (``HBA_FIGURES_DIR=figures``: ``make demo`` / ``make figures``), else a run folder under
    ``runs/`` (``hba_lib.paths.output_dir``).
    """
    out = _target(name, ".png", folder)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out


def _in_notebook() -> bool:
    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(fig: plt.Figure, name: str | None = None, dpi: int = 100) -> None:
    """Save ``fig`` (when named, see :func:`savefig`), display it inline in a notebook, close it.

    The inline picture is a PNG rendered here, whatever matplotlib backend is active, so it
    appears in JupyterLab and in papermill's output notebooks alike.
    """
    if name:
        savefig(fig, name)
    if _in_notebook():
        from IPython.display import Image, display

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        display(Image(data=buf.getvalue(), format="png"))
    plt.close(fig)


NOT_DRAWN = "figure not drawn:"
"""The start of the line :func:`not_drawn` prints; the notebook rule (``conftest.py``) counts it
in place of the picture."""


def not_drawn(name: str, why: str) -> None:
    """Say that figure ``name`` is not drawn this run, and why (an optional input is missing).

    A notebook cell that would call :func:`show` but has nothing to show calls this instead,
    so that the reader learns why, and the notebook rule, which wants a picture for every
    ``viz.show(`` in a cell, counts the line in its place.
    """
    print(f"{NOT_DRAWN} {name}: {why}")


def save_gif(video: np.ndarray | torch.Tensor, name: str, fps: int = 8, scale: int = 2) -> Path:
    """Save one video as an animated GIF in this run's output folder (see :func:`savefig`)."""
    from PIL import Image

    frames = as_frames(video)
    imgs = [
        Image.fromarray(f.squeeze()).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
        for f in frames
    ]
    out = _target(name, ".gif", None)
    imgs[0].save(out, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    return out


def tile_videos(videos: Sequence[np.ndarray | torch.Tensor], cols: int = 4) -> np.ndarray:
    """Tile equal-sized videos into one video ``[T, rows*H, cols*W, C]`` (blank tiles at the end)."""
    clips = [as_frames(v) for v in videos]
    rows = -(-len(clips) // cols)
    blank = np.zeros_like(clips[0])
    clips += [blank] * (rows * cols - len(clips))
    return np.concatenate(
        [np.concatenate(clips[r * cols : (r + 1) * cols], axis=2) for r in range(rows)], axis=1
    )


# -- frames ----------------------------------------------------------------------------------------
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
    top = 0.25 + (0.3 if title else 0.0)  # inches above the frames: frame numbers, then the title
    height = frame_size * len(rows) + top + 0.05
    fig, axes = plt.subplots(
        len(rows), len(t_idx), figsize=(frame_size * len(t_idx), height), squeeze=False
    )
    for r, clip in enumerate(rows):
        for c, t in enumerate(t_idx):
            ax = axes[r, c]
            ax.imshow(clip[t].squeeze(), cmap="gray" if clip.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=8, pad=3)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=9, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.03, hspace=0.05, top=1 - top / height, bottom=0.05 / height)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.04 / height, va="top")
    return fig


def amplify(perturbation: torch.Tensor, gain: float | None = None) -> torch.Tensor:
    """Map a signed perturbation ``[C, T, H, W]`` to a visible picture in [0, 1] (0 -> grey)."""
    p = torch.as_tensor(perturbation).detach().float().cpu()
    if gain is None:
        peak = float(p.abs().max())
        gain = 0.5 / peak if peak > 0 else 1.0
    return (0.5 + gain * p).clamp(0, 1)


def first_of_each_class(
    labels: Sequence[int], num_classes: int, max_classes: int = 12
) -> list[int]:
    """Index of the first clip of each class (the first ``max_classes`` classes that have one)."""
    labels = np.asarray(labels)
    out = []
    for k in range(num_classes):
        hits = np.flatnonzero(labels == k)
        if len(hits):
            out.append(int(hits[0]))
        if len(out) >= max_classes:
            break
    return out


def class_strip(dataset: Any, max_classes: int = 12, frame_size: float = 0.7) -> plt.Figure:
    """One clip of each class (up to ``max_classes``), every frame: read each row left to right."""
    first = first_of_each_class(dataset.labels, len(dataset.classes), max_classes)
    names = [dataset.classes[int(dataset.labels[i])] for i in first]
    more = len(dataset.classes) - len(first)
    title = f"{len(first)} classes, one test clip each, {as_frames(dataset.videos[first[0]]).shape[0]} frames"
    return frame_strip(
        [dataset.videos[i] for i in first], row_labels=names, frame_size=frame_size,
        title=title + (f" ({more} more classes not shown)" if more > 0 else ""),
    )  # fmt: skip


def class_gifs(dataset: Any, tiled: str, each: str, max_classes: int = 12) -> list[Path]:
    """GIFs: one clip per class tiled (``<tiled>.gif``) and one per class (``<each><class>.gif``)."""
    first = first_of_each_class(dataset.labels, len(dataset.classes), max_classes)
    size = as_frames(dataset.videos[first[0]]).shape[1]
    out = [save_gif(tile_videos([dataset.videos[i] for i in first]), tiled, fps=6,
                    scale=max(1, 96 // size))]  # fmt: skip
    for i in first:
        name = str(dataset.classes[int(dataset.labels[i])]).replace("/", "_").replace(" ", "_")
        out.append(save_gif(dataset.videos[i], f"{each}{name}", fps=6, scale=max(1, 64 // size)))
    return out


# -- notebook 01 -----------------------------------------------------------------------------------
def synthetic_tracks(size: int = 32, per_class: int = 6, seed: int = 0) -> plt.Figure:
    """The object's centre over the 16 frames of a few synthetic clips of each class."""
    from hba_lib.data import synthetic

    rng = np.random.default_rng(seed)
    k = len(synthetic.CLASSES)
    with style(0.8):
        fig, axes = plt.subplots(2, -(-k // 2), figsize=(13, 5), sharex=True, sharey=True)
        for label, ax in enumerate(axes.flat):
            colours = palette(per_class)
            for j in range(per_class):
                _, track = synthetic.generate_clip(label, rng, size=size, return_track=True)
                ax.plot(track.cx, track.cy, lw=1.2, color=colours[j])
                ax.scatter(track.cx[:1], track.cy[:1], s=14, color=colours[j])
            ax.set_title(synthetic.CLASSES[label], fontsize=10)
            ax.set(xlim=(0, size), ylim=(size, 0), aspect="equal")
        fig.suptitle(
            "object centre over 16 frames (dot: frame 0); rotate, grow and shrink stay in place"
        )
        fig.tight_layout()
    return fig


def class_balance(splits: Mapping[str, Any]) -> plt.Figure:
    """Clips per class in each split (``{"train": ds, "test": ds}``), bars side by side."""
    first = next(iter(splits.values()))
    k = len(first.classes)
    with style(0.9):
        fig, ax = plt.subplots(figsize=(max(8, 0.35 * k * len(splits)), 3.4))
        width = 0.8 / len(splits)
        x = np.arange(k)
        colours = palette(len(splits))
        top = 0
        for j, (name, ds) in enumerate(splits.items()):
            counts = np.bincount(np.asarray(ds.labels), minlength=k)
            top = max(top, counts.max())
            ax.bar(x + (j - (len(splits) - 1) / 2) * width, counts, width, label=name,
                   color=colours[j])  # fmt: skip
        ax.set_xticks(x, first.classes, rotation=45, ha="right", fontsize=8 if k <= 24 else 5)
        ax.set(ylabel="clips", title="clips per class", ylim=(0, top * 1.05), xlim=(-0.6, k - 0.4))
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def one_frame_is_not_enough(dataset: Any, frame: int = 8, max_classes: int = 12) -> plt.Figure:
    """Per class: the mean of one frame over its clips (alike for every class) beside the mean of
    last minus first frame (where the motion is)."""
    labels = np.asarray(dataset.labels)
    classes = [k for k in range(len(dataset.classes)) if (labels == k).any()][:max_classes]
    cols = 4
    rows = -(-len(classes) // cols)
    height = 2.1 * rows + 0.5
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(12, height), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for n, k in enumerate(classes):
        sel = np.asarray(
            dataset.videos[np.flatnonzero(labels == k)[:200].tolist()]
        )  # [n, T, H, W, C]
        still = sel[:, frame].mean(axis=(0, -1)) / 255
        motion = (sel[:, -1].astype(np.float32) - sel[:, 0]).mean(axis=(0, -1)) / 255
        a, b = axes[n // cols, 2 * (n % cols)], axes[n // cols, 2 * (n % cols) + 1]
        a.imshow(still, cmap="gray", vmin=0.3, vmax=0.7)
        b.imshow(motion, cmap="coolwarm", vmin=-0.06, vmax=0.06)
        a.set_title(f"frame {frame}", fontsize=9)
        b.set_title("last - first", fontsize=9)
        a.text(1.03, 1.2, str(dataset.classes[k]), transform=a.transAxes, ha="center",
               fontsize=11, fontweight="bold")  # fmt: skip
    fig.suptitle(
        f"Mean over each class's clips: frame {frame} (grey) looks alike in every class; "
        "last minus first frame (red +, blue -) shows the motion",
        fontsize=11,
    )
    fig.subplots_adjust(
        wspace=0.08, hspace=0.4, top=1 - 0.75 / height, bottom=0.02, left=0.02, right=0.98
    )
    return fig


def uniform_sampling(
    snippet: np.ndarray, indices: Sequence[int], n_decoded: int, name: str
) -> plt.Figure:
    """The decoded frames of a clip (grey ticks), the 16 sampled (red), and the sampled frames."""
    fig = plt.figure(figsize=(12, 2.1))
    ax = fig.add_axes([0.03, 0.72, 0.94, 0.14])
    ax.vlines(np.arange(n_decoded), 0, 1, color="0.8", lw=0.6)
    ax.vlines(indices, 0, 1, color="C3", lw=2)
    ax.set_xlim(-1, n_decoded)
    ax.set_yticks([])
    ax.tick_params(labelsize=8)
    ax.set_title(
        f"{name}: {n_decoded} decoded frames (grey), the {len(indices)} sampled (red)", fontsize=10
    )
    n = len(indices)
    for i in range(n):
        a = fig.add_axes([0.03 + i * 0.94 / n, 0.0, 0.94 / n - 0.004, 0.5])
        a.imshow(snippet[i])
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"#{indices[i]}", fontsize=8)
    return fig


# -- notebook 02 -----------------------------------------------------------------------------------
def plot_history(
    histories: Mapping[str, list[dict[str, float]]], highlight: Sequence[str] = ()
) -> plt.Figure:
    """Training loss and accuracy (solid: test, dashed: train) of one or more runs; the runs named
    in ``highlight`` (e.g. this run) are drawn last, thick, over the others."""
    order = [n for n in histories if n not in highlight] + [n for n in histories if n in highlight]
    colours = dict(zip(histories, palette(len(histories))))
    with style(0.9):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
        for name in order:
            hist = histories[name]
            hi = name in highlight
            kw = {"lw": 2.6 if hi else 1.3, "zorder": 3 if hi else 2, "color": colours[name],
                  "alpha": 1.0 if hi else 0.75, "marker": "o", "ms": 5 if hi else 2.5}  # fmt: skip
            ep = [h["epoch"] for h in hist]
            ax1.plot(ep, [h["train_loss"] for h in hist], label=name, **kw)
            ax2.plot(ep, [h["test_acc"] for h in hist], label=f"{name}", **kw)
            ax2.plot(ep, [h["train_acc"] for h in hist], **{**kw, "ls": "--", "marker": None})
        ax1.set(xlabel="epoch", ylabel="cross-entropy", title="training loss")
        ax2.set(xlabel="epoch", ylabel="clip accuracy", ylim=(0, 1.02),
                title="accuracy (solid: test, dashed: train)")  # fmt: skip
        ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
        fig.tight_layout()
    return fig


def plot_table1(df: Any) -> plt.Figure:
    """Bar chart of Table 1: accuracy vs the shuffled-frame control, per model and data set."""
    with style(0.9):
        fig, ax = plt.subplots(figsize=(2.2 + 1.6 * max(1, len(df)), 3.8))
        labels = [f"{m}\n{d}" for m, d in zip(df["model"], df["dataset"])]
        xs = np.arange(len(df))
        c = palette(2)
        ax.bar(xs - 0.2, df["accuracy_%"], 0.4, label="clips in order", color=c[0])
        ax.bar(xs + 0.2, df["shuffled_frames_%"], 0.4, label="frames shuffled in time", color=c[1])
        for x, ch in zip(xs, df["chance_%"]):
            ax.hlines(ch, x - 0.45, x + 0.45, colors="k", linestyles=":")
        ax.set_xticks(xs, labels)
        ax.set(ylabel="test clip accuracy (%)", ylim=(0, 105), title="Table 1 (dotted: chance)")
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=9, frameon=False
        )
        fig.tight_layout()
    return fig


# -- notebook 03 -----------------------------------------------------------------------------------
def g_theta_search(
    grid: Sequence[float],
    probs: Sequence[float],
    adversarial: Sequence[bool],
    steps: Sequence[tuple[float, bool]],
    g: float,
    goal: str,
) -> plt.Figure:
    """The oracle's answers along one ray ``x + lam * theta`` and the points the search queried."""
    grid, probs, adv = np.asarray(grid), np.asarray(probs), np.asarray(adversarial, bool)
    with style(0.9):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.scatter(grid[~adv], probs[~adv], c="tab:blue", s=16, label="not adversarial", zorder=3)
        ax.scatter(grid[adv], probs[adv], c="tab:red", s=16, label="adversarial", zorder=3)
        for k, (lam, a) in enumerate(steps):
            ax.axvline(
                lam, color="tab:red" if a else "tab:blue", alpha=0.25 + 0.75 * k / len(steps), lw=1
            )
        ax.axvline(g, color="k", ls="--", label=f"g(theta) = {g:.3f}")
        ax.set(xlabel="lambda (L2 distance in [0, 1] units)", ylabel="top-1 probability", ylim=(0, 1.05),
               title=f"{goal}: the search queried {len(steps)} points (vertical lines, light to dark)")  # fmt: skip
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def _plain_log_axis(ax: plt.Axes) -> None:
    """Plain numbers (``15``, not ``1.5x10^1``) on a log y axis: evenly spread ticks when the
    axis spans less than a decade, else the decades with 2 and 5 between them."""
    lo, hi = ax.get_ylim()
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    if hi / max(lo, 1e-12) < 10:
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=6))
        ax.yaxis.set_minor_locator(ticker.NullLocator())
        ax.yaxis.set_major_formatter(plain)
    else:
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(
            ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else "")
        )


def distance_vs_queries(results: Sequence[Any], names: Sequence[str], title: str) -> plt.Figure:
    """Best L2 distance and MAP against queries for each attacked video (log scale, plain ticks)."""
    colours = palette(len(results))
    with style(0.9):
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.8))
        for c, name, r in zip(colours, names, results):
            qs = [row.queries for row in r.trace]
            axes[0].plot(
                qs, [row.distance for row in r.trace], marker=".", ms=4, color=c, label=name
            )
            axes[1].plot(qs, [row.map for row in r.trace], marker=".", ms=4, color=c)
        axes[0].set_ylabel("L2 distance g(theta)")
        axes[1].set_ylabel("MAP (0-255)")
        for ax in axes:
            ax.set_xlabel("queries")
            ax.set_yscale("log")
            _plain_log_axis(ax)
        axes[1].legend(*axes[0].get_legend_handles_labels(), fontsize=9, loc="upper left",
                       bbox_to_anchor=(1.01, 1.0), frameon=False)  # fmt: skip
        fig.suptitle(title)
        fig.tight_layout(w_pad=3)
    return fig


def success_vs_queries(
    results: Sequence[Any],
    max_queries: int,
    title: str,
    limits: Sequence[float | None] = (None, 10.0, 5.0),
) -> plt.Figure:
    """Share of videos fooled within each number of queries (any MAP, and MAP under limits)."""
    from hba_lib import metrics

    budgets = np.linspace(0, max_queries, 60).astype(int)
    with style(0.9):
        fig, ax = plt.subplots(figsize=(7, 3.4))
        for c, limit in zip(palette(len(limits)), limits):
            label = "any MAP" if limit is None else f"MAP <= {limit:g}"
            ax.plot(budgets, 100 * metrics.success_curve(results, budgets, max_map=limit), label=label,
                    color=c, lw=2)  # fmt: skip
        ax.set(xlabel="queries", ylabel="videos fooled (%)", ylim=(-3, 103), title=title)
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig


# -- notebook 04: key frames -----------------------------------------------------------------------
def frame_importance(probs: Sequence[float], order: Sequence[int], title: str) -> plt.Figure:
    """Algorithm 1's frame importance: the top-1 probability of the adversarial class with each
    frame removed (missing bars: removing that frame breaks the attack), and the deletion order."""
    probs = np.asarray(probs, dtype=float)
    t = np.arange(len(probs))
    ok = np.isfinite(probs)
    rank = {f: k + 1 for k, f in enumerate(order)}
    with style(0.9):
        fig, ax = plt.subplots(figsize=(9, 3.2))
        colours = palette(2)
        ax.bar(t[ok], probs[ok], color=colours[0], label="still adversarial without the frame")
        if (~ok).any():
            ax.bar(t[~ok], np.full((~ok).sum(), 0.02), color="tab:red",
                   label="removing it breaks the attack: never deleted")  # fmt: skip
        for f in order:
            ax.text(f, probs[f] + 0.003, f"{rank[f]}", ha="center", va="bottom", fontsize=8)
        low = float(np.min(probs[ok])) if ok.any() else 0.0
        ax.set(xticks=t, xlabel="frame t removed", ylabel="top-1 probability",
               ylim=(max(0.0, low - 0.1) if low > 0.5 else 0.0, 1.04), title=title)  # fmt: skip
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def key_frame_trials(found: Any, omega: float, title: str) -> plt.Figure:
    """Algorithm 1's greedy walk: the MAP Algorithm 1 bounds (on the kept frames) after each tentative deletion, accepted or not, and omega."""
    trials = found.trials
    with style(0.9):
        fig, ax = plt.subplots(figsize=(9, 3.2))
        xs = np.arange(1, len(trials) + 1)
        maps = np.array([tr.map for tr in trials], dtype=float)
        acc = np.array([tr.accepted for tr in trials], dtype=bool)
        cur, walk = found.initial_map, []
        for tr in trials:
            cur = tr.map if tr.accepted else cur
            walk.append(cur)
        ax.plot(np.r_[0, xs], np.r_[found.initial_map, walk], color="k", lw=1.5,
                label="MAP of the kept mask")  # fmt: skip
        fin = np.isfinite(maps)
        ax.scatter(xs[acc & fin], maps[acc & fin], c="tab:green", s=30, zorder=3, label="accepted")
        ax.scatter(xs[~acc & fin], maps[~acc & fin], c="tab:red", marker="x", s=30, zorder=3,
                   label="rejected")  # fmt: skip
        ax.axhline(omega, color="tab:blue", ls="--", lw=1, label=f"omega = {omega:g}")
        ax.set_xticks(xs, [str(tr.frame) for tr in trials])
        ax.set(
            xlabel="frame tried, in deletion order",
            ylabel="MAP on the kept frames (0-255)",
            title=title,
        )
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def key_frames_by_omega(kept: Mapping[float, Sequence[int]], num_frames: int,
                        maps: Mapping[float, float], title: str) -> plt.Figure:  # fmt: skip
    """Which frames survive Algorithm 1 as omega grows (one row per omega)."""
    omegas = list(kept)
    grid = np.zeros((len(omegas), num_frames))
    for r, om in enumerate(omegas):
        grid[r, list(kept[om])] = 1
    with style(0.9):
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(omegas) + 1.4))
        ax.imshow(grid, cmap="Greens", vmin=0, vmax=1.3, aspect="auto")
        ax.set_yticks(
            range(len(omegas)),
            [
                f"omega {om:g}: {len(kept[om])} frames, key-frame MAP {maps[om]:.2f}"
                for om in omegas
            ],
        )
        ax.set_xticks(range(num_frames))
        ax.set_xticks(np.arange(-0.5, num_frames), minor=True)
        ax.set_yticks(np.arange(-0.5, len(omegas)), minor=True)
        ax.grid(which="minor", color="w", lw=1.5)
        ax.grid(which="major", visible=False)
        ax.set(xlabel="frame (green: a key frame, perturbed)", title=title)
        fig.tight_layout()
    return fig


# -- notebook 05: salient regions ------------------------------------------------------------------
def saliency_panels(video: torch.Tensor, saliency: torch.Tensor, masks: Mapping[float, torch.Tensor],
                    frames: Sequence[int], title: str) -> plt.Figure:  # fmt: skip
    """Rows: frames; columns: the frame, its spectral-residual saliency, and its mask per phi."""
    clip = as_frames(video)
    cols = 2 + len(masks)
    with style(0.8):
        fig, axes = plt.subplots(len(frames), cols, figsize=(1.6 * cols, 1.6 * len(frames) + 0.5),
                                 squeeze=False)  # fmt: skip
        for r, t in enumerate(frames):
            axes[r, 0].imshow(clip[t].squeeze())
            axes[r, 1].imshow(saliency[t].cpu().numpy(), cmap="magma")
            for c, m in enumerate(masks.values(), start=2):
                axes[r, c].imshow(
                    clip[t].squeeze() * m[0, t].cpu().numpy()[..., None].astype(np.uint8)
                )
            axes[r, 0].set_ylabel(f"t={t}", rotation=0, ha="right", va="center")
        for c, name in enumerate(["frame", "saliency", *[f"phi = {p:g}" for p in masks]]):
            axes[0, c].set_title(name, fontsize=9)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


# -- notebook 06: the full attack ------------------------------------------------------------------
def perturbation_strips(x: torch.Tensor, results: Mapping[str, Any], frames: Sequence[int],
                        title: str) -> plt.Figure:  # fmt: skip
    """The paper's Figure 2: the clean frames, then one row per attack of its perturbation
    (amplified with one gain for all rows, grey = 0): only key frames and salient regions move."""
    deltas = {name: r.x_adv - x for name, r in results.items()}
    peak = max(float(d.abs().max()) for d in deltas.values()) or 1.0
    rows = [x] + [amplify(d, 0.5 / peak) for d in deltas.values()]
    labels = ["clean"] + [f"{n}\nMAP {r.map:.2f}, S {100 * r.sparsity:.0f} %"
                          for n, r in results.items()]  # fmt: skip
    with style(0.8):
        fig = frame_strip(rows, row_labels=labels, frames=frames, title=title, frame_size=0.9)
    return fig


def map_vs_queries(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   points: Mapping[str, tuple[float, float]] | None, title: str,
                   ylabel: str = "median MAP (0-255)") -> plt.Figure:  # fmt: skip
    """Median MAP (over videos; or another distance, named by ``ylabel``) reached within each
    number of queries, one line per attack; ``points``: attacks known only at their end, as
    markers."""
    names = list(curves) + list(points or {})
    colours = dict(zip(names, palette(len(names))))
    with style(0.9):
        fig, ax = plt.subplots(figsize=(8.5, 3.8))
        for name, (budgets, med) in curves.items():
            ok = np.isfinite(med)
            ax.plot(budgets[ok], med[ok], lw=2, color=colours[name], label=name)
        for name, (q, m) in (points or {}).items():
            ax.scatter([q], [m], s=60, marker="D", color=colours[name], label=name, zorder=3)
        ax.set_yscale("log")
        _plain_log_axis(ax)
        ax.set(xlabel="queries", ylabel=ylabel, title=title)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig


# -- notebook 07: the omega / phi grids (the paper's Tables 2-5) -----------------------------------
def grid_vs_paper(table: Any, vary: str, paper_label: str, title: str) -> plt.Figure:
    """MQ, MAP, MAP* and S against ``vary`` (``omega`` or ``phi``) for this run, and the paper's
    values at the same grid points as a separate dashed line (``paper_label``).

    ``table``: ``hba_lib.experiments.paper_tables.grid_table``'s rows (``vary`` as text, so ``inf`` sits at
    the right end; metrics and ``paper <metric>`` columns)."""
    import pandas as pd
    import seaborn as sns

    panels = [("MQ", "MQ (queries)"), ("MAP", "MAP (0-255)"), ("MAP*", "MAP* (0-255)"),
              ("S %", "sparsity S (%)")]  # fmt: skip
    order = list(table[vary])
    long = pd.concat([
        pd.DataFrame({vary: table[vary], "metric": m, "value": table[m], "source": "this run"})
        for m, _ in panels
    ] + [
        pd.DataFrame({vary: table[vary], "metric": m, "value": table[f"paper {m}"],
                      "source": paper_label})
        for m, _ in panels
    ], ignore_index=True)  # fmt: skip
    colours = dict(zip(["this run", paper_label], palette(2)))
    with style(0.85):
        fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.4))
        for ax, (m, label) in zip(axes, panels):
            part = long[long["metric"] == m].dropna(subset=["value"])
            sns.pointplot(data=part, x=vary, y="value", hue="source", order=order,
                          hue_order=list(colours), palette=colours, markers=["o", "s"],
                          linestyles=["-", "--"], errorbar=None, ax=ax)  # fmt: skip
            ax.set(xlabel=vary, ylabel=label, title=m)
            if m == "MQ":
                ax.set_yscale("log")
                _plain_log_axis(ax)
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right", fontsize=8, frameon=False, ncol=2)
        fig.suptitle(title, x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def map_against_l2(tables: dict[str, Any], title: str) -> plt.Figure:
    """Mean MAP (0-255) against mean L2 ([0, 1] units) of each grid point, one marker style per
    grid (``tables``: name -> ``grid_table`` rows with a ``label`` column naming the point).

    Sparser masks lower MAP (it averages over every pixel) but need a larger change on the
    pixels they keep, so L2 can rise while MAP falls: the trade-off this picture shows."""
    markers = ["o", "s", "^", "D"]
    with style(0.85):
        fig, ax = plt.subplots(figsize=(6.2, 4.2))
        for (name, t), colour, marker in zip(tables.items(), palette(len(tables)), markers):
            ax.plot(t["L2"], t["MAP"], marker=marker, ls="-", color=colour, label=name)
            for _, row in t.iterrows():
                ax.annotate(str(row["label"]), (row["L2"], row["MAP"]), textcoords="offset points",
                            xytext=(5, 4), fontsize=7, color=colour)  # fmt: skip
        ax.set(xlabel="mean L2 of the perturbation ([0, 1] units)", ylabel="mean MAP (0-255)",
               title=title)  # fmt: skip
        ax.legend(fontsize=8, frameon=False)
        fig.tight_layout()
    return fig


# -- notebook 08: Table 6 and success rates against queries ----------------------------------------
def success_rate_curves(curves: Mapping[str, tuple[np.ndarray, Mapping[float, np.ndarray]]],
                        title: str, dashed: Sequence[str] = ()) -> plt.Figure:  # fmt: skip
    """Share of videos with an adversarial video of MAP <= m within each number of queries: one
    panel per bound m, one line per attack. ``curves``: name -> (budgets, {m: shares in [0, 1]});
    names in ``dashed`` (e.g. the ART peers) are drawn dashed."""
    import pandas as pd
    import seaborn as sns

    limits = sorted({m for _, by in curves.values() for m in by})
    long = pd.concat([
        pd.DataFrame({"queries": b, "fooled %": 100 * np.asarray(by[m]), "attack": name,
                      "bound": f"MAP <= {m:g}"})
        for name, (b, by) in curves.items() for m in by
    ], ignore_index=True)  # fmt: skip
    names = list(curves)
    colours = dict(zip(names, palette(len(names))))
    with style(0.85):
        fig, axes = plt.subplots(1, len(limits), figsize=(4.2 * len(limits) + 2.2, 3.5),
                                 sharey=True, squeeze=False)  # fmt: skip
        for ax, m in zip(axes[0], limits):
            part = long[long["bound"] == f"MAP <= {m:g}"]
            sns.lineplot(data=part, x="queries", y="fooled %", hue="attack", style="attack",
                         hue_order=names, style_order=names, palette=colours,
                         dashes={n: (4, 2) if n in dashed else "" for n in names},
                         lw=1.8, ax=ax, legend=ax is axes[0, -1])  # fmt: skip
            ax.set(title=f"MAP <= {m:g}", ylim=(-3, 103), xlabel="queries",
                   ylabel="videos fooled (%)")  # fmt: skip
        leg = axes[0, -1].get_legend()
        if leg is not None:
            sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                            frameon=False, title=None)  # fmt: skip
        fig.suptitle(title, x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def table6_vs_paper(table: Any, title: str) -> plt.Figure:
    """Table 6 as bars: MAP and S per configuration (one panel group per goal), this run's
    model / data rows beside the paper's matching rows (hatched)."""
    import pandas as pd
    import seaborn as sns

    rows = []
    for _, r in table.iterrows():
        for src, prefix in (
            (f"this run: {r['model / data']}", ""),
            (f"paper: {r['paper row']}", "paper "),
        ):
            rows.append({"goal": r["goal"], "attack": r["attack"], "source": src,
                         "MAP": r[prefix + "MAP"], "S %": r[prefix + "S %"]})  # fmt: skip
    long = pd.DataFrame(rows).drop_duplicates()
    goals = list(dict.fromkeys(long["goal"]))
    sources = list(dict.fromkeys(long["source"]))
    colours = dict(zip(sources, palette(len(sources))))
    with style(0.8):
        fig, axes = plt.subplots(len(goals), 2, figsize=(12, 3.0 * len(goals) + 0.6),
                                 squeeze=False)  # fmt: skip
        for i, goal in enumerate(goals):
            part = long[long["goal"] == goal]
            for j, metric in enumerate(("MAP", "S %")):
                ax = axes[i, j]
                sns.barplot(data=part, x="attack", y=metric, hue="source", hue_order=sources,
                            palette=colours, ax=ax, legend=(i == 0 and j == 1))  # fmt: skip
                for bar_group, src in zip(ax.containers, sources):
                    if src.startswith("paper"):
                        for bar in bar_group:
                            bar.set_hatch("//")
                ax.set(xlabel="", title=f"{goal}: {metric}")
        if axes[0, 1].get_legend() is not None:
            sns.move_legend(axes[0, 1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                            frameon=False, title=None)  # fmt: skip
        fig.suptitle(title, x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# -- notebook 09: a real model on real clips -------------------------------------------------------
def clip_grid(videos: Sequence[np.ndarray | torch.Tensor], captions: Sequence[str],
              frame: int | None = None, cols: int = 6, title: str | None = None) -> plt.Figure:  # fmt: skip
    """One frame of each clip (the middle one by default) in a grid, each with its caption
    underneath (each line of a caption wrapped on its own, at most 4 lines)."""
    import textwrap

    clips = [as_frames(v) for v in videos]
    if len(captions) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(captions)} captions")
    rows = -(-len(clips) // cols)
    with style(0.8):
        fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 2.3 * rows + 0.3), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, clip, caption in zip(axes.flat, clips, captions):
            t = clip.shape[0] // 2 if frame is None else frame
            ax.imshow(clip[t].squeeze())
            lines = [w for part in caption.split("\n") for w in textwrap.wrap(part, 24)]
            ax.text(0.5, -0.04, "\n".join(lines[:4]), transform=ax.transAxes, ha="center",
                    va="top", fontsize=7.5)  # fmt: skip
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def adversarial_strip(x: torch.Tensor, x_adv: torch.Tensor, frames: Sequence[int], before: str,
                      after: str, title: str) -> plt.Figure:  # fmt: skip
    """The paper's Figure 2 for one video: the clean frames, the perturbation (amplified,
    grey = 0) and the adversarial frames, the rows labelled with the model's answer before
    (``before``) and after (``after``)."""
    import textwrap

    delta = (x_adv - x).detach().float().cpu()
    peak = float(delta.abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    wrap = lambda s: "\n".join(textwrap.wrap(s, 22))  # noqa: E731
    labels = [f"clean\n{wrap(before)}", f"perturbation\n(x{gain:.1f}; grey = 0)",
              f"adversarial\n{wrap(after)}"]  # fmt: skip
    with style(0.8):
        fig = frame_strip([x, amplify(delta, gain), x_adv], row_labels=labels, frames=frames,
                          title=title, frame_size=1.1)  # fmt: skip
    return fig


# -- notebook 10: beyond the paper (low-frequency probes, boundary steps, MAP against L2) -----------
def probe_directions(rows: Mapping[str, tuple[torch.Tensor, Mapping[str, torch.Tensor]]],
                     frame: int, title: str) -> plt.Figure:  # fmt: skip
    """One frame of random probe directions: one row per ``rows`` entry (label -> (a video
    ``[C, T, H, W]`` shown first, {probe name: probe ``[C, T, H, W]``})), one column per probe,
    each amplified with its own gain on that frame (grey = 0)."""
    labels = list(rows)
    cols = 1 + max(len(p) for _, p in rows.values())
    with style(0.8):
        fig, axes = plt.subplots(len(labels), cols, figsize=(1.9 * cols, 1.9 * len(labels) + 0.5),
                                 squeeze=False)  # fmt: skip
        for r, label in enumerate(labels):
            video, probes = rows[label]
            axes[r, 0].imshow(as_frames(video)[frame].squeeze())
            axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
            for c, (name, u) in enumerate(probes.items(), start=1):
                shown = amplify(torch.as_tensor(u)[:, frame : frame + 1])
                axes[r, c].imshow(as_frames(shown)[0].squeeze())
                if r == 0:
                    axes[r, c].set_title(name, fontsize=9)
        axes[0, 0].set_title(f"frame t={frame}", fontsize=9)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def _edge_column(name: str, edge: torch.Tensor, frame: int) -> tuple[str, np.ndarray, dict]:
    """A column of :func:`_frame_row`: an edge map ``[T, H, W]`` on that frame, on its own scale
    (dark = flat, bright = its strongest edge)."""
    e = torch.as_tensor(edge).detach().float().cpu()[frame].numpy()
    return name, e, {"cmap": "magma", "vmin": 0, "vmax": max(float(e.max()), 1e-12)}


def _frame_row(x: torch.Tensor, frame: int, columns: list[tuple[str, np.ndarray, dict]],
               title: str) -> plt.Figure:  # fmt: skip
    """One frame of ``x [C, T, H, W]``, then one panel per ``(name, image, imshow kwargs)``."""
    cols = 1 + len(columns)
    with style(0.8):
        fig, axes = plt.subplots(1, cols, figsize=(1.9 * cols, 2.4), squeeze=False)
        axes = axes[0]
        axes[0].imshow(as_frames(x)[frame].squeeze())
        axes[0].set_title(f"frame t={frame}", fontsize=9)
        for ax, (name, image, kwargs) in zip(axes[1:], columns):
            ax.imshow(image, **kwargs)
            ax.set_title(name, fontsize=9)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def edge_prior_panels(x: torch.Tensor, edge: torch.Tensor, probes: Mapping[str, torch.Tensor],
                      frame: int, title: str) -> plt.Figure:  # fmt: skip
    """One frame of a video ``x [C, T, H, W]``, its edge map ``edge [T, H, W]``
    (``hba_lib.oracle.priors.edge_map``; dark = flat, bright = strong edge) and one column per
    probe ``[C, T, H, W]`` of ``probes`` (name -> probe), each amplified on that frame (grey = 0)."""
    columns = [_edge_column("edge map e", edge, frame)] + [
        (name, as_frames(amplify(torch.as_tensor(u)[:, frame : frame + 1]))[0].squeeze(), {})
        for name, u in probes.items()
    ]
    return _frame_row(x, frame, columns, title)


def edge_maps_panels(x: torch.Tensor, maps: Mapping[str, torch.Tensor], frame: int,
                     title: str) -> plt.Figure:  # fmt: skip
    """One frame of a video ``x [C, T, H, W]`` and, beside it, one column per edge map
    ``[T, H, W]`` of ``maps`` (name -> map; ``hba_lib.oracle.priors``), each on its own scale
    (dark = flat, bright = its strongest edge)."""
    return _frame_row(x, frame, [_edge_column(n, m, frame) for n, m in maps.items()], title)


def boundary_step_sketch(n_probes: int = 30, delta: float = 0.45, seed: int = 0) -> plt.Figure:
    """One HopSkipJump iteration drawn on a 2-D toy: the adversarial region is a disc, ``x``
    the origin; from the boundary point ``x_b``, ``n_probes`` probes at radius ``delta`` give
    the sign estimate ``v`` of the normal, the geometric step goes to ``x_b + eps v`` (``eps =
    ||x_b - x||``, halved until adversarial), and a bisection on the segment from ``x`` brings
    it back to the boundary, closer to ``x``. A sketch of the geometry, computed here in 2-D;
    the attack itself is ``hba_lib.attacks.hsja``."""
    centre, radius = np.array([3.0, 0.0]), 2.0
    inside = lambda p: np.linalg.norm(np.atleast_2d(p) - centre, axis=1) < radius  # noqa: E731
    x = np.zeros(2)
    a = np.deg2rad(118.0)
    x_b = centre + radius * np.array([np.cos(a), np.sin(a)])
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_probes, 2))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    phi = np.where(inside(x_b + delta * u), 1.0, -1.0)
    v = ((phi - phi.mean())[:, None] * u).mean(0)
    v /= np.linalg.norm(v)
    eps = float(np.linalg.norm(x_b - x))
    tries = [x_b + eps * v]
    while not inside(tries[-1])[0] and len(tries) < 20:
        eps /= 2.0
        tries.append(x_b + eps * v)
    step = tries[-1]
    lo, hi = 0.0, 1.0  # bisection on x + s (step - x), s in [0, 1]
    while hi - lo > 1e-6:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if inside(x + mid * (step - x))[0] else (mid, hi)
    new = x + hi * (step - x)
    best = centre - radius * centre / np.linalg.norm(centre)
    colours = palette(4)
    with style(0.85):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        ax.add_patch(plt.Circle(centre, radius, color=colours[2], alpha=0.18, lw=0))
        ax.add_patch(plt.Circle(centre, radius, fill=False, color=colours[2], lw=1.5))
        ax.text(*(centre + [0.3, -0.2]), "adversarial", color=colours[2], fontsize=9)
        ax.scatter(
            *(x_b + delta * u)[phi > 0].T, s=14, color=colours[2], label="probe: adversarial"
        )
        ax.scatter(*(x_b + delta * u)[phi < 0].T, s=14, color="0.5", label="probe: not adversarial")
        ax.annotate("", xy=x_b + 0.9 * v, xytext=x_b,
                    arrowprops={"arrowstyle": "->", "color": colours[3], "lw": 2})  # fmt: skip
        ax.text(*(x_b + 0.9 * v + [0.08, 0.05]), "v", color=colours[3], fontsize=11)
        for p in tries[:-1]:
            ax.scatter(*p, marker="x", color="0.4", s=30)
        ax.plot(*np.stack([x_b, step]).T, ls=":", color=colours[3])
        ax.plot(*np.stack([x, step]).T, ls="--", color=colours[0], lw=1)
        for p, name, c in [(x, "x (clean)", "k"), (x_b, "x_b (boundary point)", colours[1]),
                           (step, "x_b + eps v", colours[3]), (new, "new boundary point", colours[0]),
                           (best, "closest point", "k")]:  # fmt: skip
            ax.scatter(*p, s=55, color=c, marker="*" if name == "closest point" else "o",
                       zorder=4, label=name)  # fmt: skip
        ax.plot(*np.stack([x, x_b]).T, color=colours[1], lw=1)
        ax.set_aspect("equal")
        ax.set(xlim=(-0.4, 5.3), ylim=(-2.3, 2.6),
               title=f"one iteration: ||x_b - x|| = {np.linalg.norm(x_b - x):.2f} -> "
                     f"{np.linalg.norm(new - x):.2f} (closest {np.linalg.norm(best - x):.2f})")  # fmt: skip
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig


def l2_against_map_bound(points: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         title: str) -> plt.Figure:  # fmt: skip
    """Measured L2 against ``sqrt(N) MAP / (255 sqrt(rho))`` (the L2 of the same MAP spread
    evenly over the same share ``rho`` of the values), one marker per video, one colour per
    attack (``points``: name -> (predicted, measured)); the diagonal is equality, and no point
    can lie below it (Cauchy-Schwarz)."""
    markers = ["o", "s", "^", "D", "v", "P"]
    with style(0.85):
        fig, ax = plt.subplots(figsize=(7.6, 4.4))
        allv = [v for pr, me in points.values() for v in (*pr, *me) if np.isfinite(v)]
        lo, hi = (min(allv), max(allv)) if allv else (0.1, 1.0)
        ax.plot([lo * 0.9, hi * 1.1], [lo * 0.9, hi * 1.1], ls="--", color="0.5",
                label="equal magnitudes on the support")  # fmt: skip
        for (name, (pred, meas)), colour, m in zip(points.items(), palette(len(points)),
                                                   markers * 3):  # fmt: skip
            ax.scatter(pred, meas, s=45, marker=m, color=colour, label=name, zorder=3)
        ax.set(xlabel="sqrt(N) MAP / (255 sqrt(rho))", ylabel="measured L2 ([0, 1] units)",
               title=title)  # fmt: skip
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
    return fig
