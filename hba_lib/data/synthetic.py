"""The embedded synthetic action data set: motion-defined classes, no download.

Each clip is ``T = 16`` frames of one textured foreground object of random shape, colour,
size, start position and speed, moving over a cluttered textured background with pixel
noise and camera jitter. A class is defined by **how the object moves over time**
(translate in four directions, rotate either way, grow, shrink, oscillate horizontally or
vertically, orbit either way); every class draws its positions, angles and sizes so that the
*per-frame* distribution of what is seen is the same for all classes. One frame therefore
cannot tell the class: only motion can, and key frames matter.

Clips are deterministic by ``(seed, split, index)``; labels are balanced (``index % K``). Three
splits: ``train`` (what the models learn from), ``test`` (what the tables report) and ``val``
(neither: where an attack's constants are chosen on videos as far from the boundary as the
test videos; the training videos sit farther from it).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from hba_lib import paths
from hba_lib.data.video import NUM_FRAMES, FrameDataset

CLASSES: tuple[str, ...] = (
    "move_right",
    "move_left",
    "move_up",
    "move_down",
    "rotate_cw",
    "rotate_ccw",
    "grow",
    "shrink",
    "oscillate_horizontal",
    "oscillate_vertical",
    "orbit_cw",
    "orbit_ccw",
)
DEFAULT_N_PER_CLASS = {"train": 100, "test": 30, "val": 30}
# "val": videos no model trains on and no reported table attacks, drawn like the test split's,
# for choosing an attack's constants on clips that behave like the reported ones
_SPLIT_ID = {"train": 0, "test": 1, "val": 2}
_SPRITE = 64  # sprites are drawn at this resolution and warped into the frame


@dataclass(frozen=True)
class ObjectTrack:
    """Where the object is in every frame: centre (x, y) in pixels, angle (deg), scale (px)."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    radius: np.ndarray


def _background(rng: np.random.Generator, size: int, pad: int) -> np.ndarray:
    """A cluttered, textured background of ``size + 2 * pad`` pixels, float32 HxWx3 in [0, 1]."""
    full = size + 2 * pad
    coarse = rng.random((rng.integers(3, 7), rng.integers(3, 7), 3), dtype=np.float32)
    bg = cv2.resize(coarse, (full, full), interpolation=cv2.INTER_CUBIC)
    fine = rng.random((full // 2 + 1, full // 2 + 1, 3), dtype=np.float32)
    bg = 0.25 + 0.3 * bg + 0.15 * cv2.resize(fine, (full, full), interpolation=cv2.INTER_NEAREST)
    for _ in range(int(rng.integers(4, 9))):  # clutter: rectangles, lines and discs
        colour = tuple(float(c) for c in 0.25 + 0.4 * rng.random(3))
        p1 = tuple(int(v) for v in rng.integers(0, full, 2))
        p2 = tuple(int(v) for v in rng.integers(0, full, 2))
        kind = rng.integers(3)
        thick = max(1, full // 40)
        if kind == 0:
            cv2.rectangle(bg, p1, p2, colour, thickness=thick)
        elif kind == 1:
            cv2.line(bg, p1, p2, colour, thickness=thick)
        else:
            cv2.circle(bg, p1, int(rng.integers(2, max(3, full // 6))), colour, thickness=thick)
    return np.clip(bg, 0.0, 1.0)


def _sprite(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A textured object of random polygonal shape: (rgb float32 SxSx3, alpha float32 SxS)."""
    s = _SPRITE
    n = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.65, 1.0, n) * (s / 2 - 2)
    radii[0] = s / 2 - 2  # one long spike: rotation is always visible
    pts = np.stack([s / 2 + radii * np.cos(angles), s / 2 + radii * np.sin(angles)], 1)
    alpha = np.zeros((s, s), np.float32)
    cv2.fillPoly(alpha, [np.round(pts).astype(np.int32)], 1.0)
    base = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    base[rng.integers(3)] = rng.choice([0.05, 0.95])  # saturated: stands out from the muted clutter
    other = 1.0 - base
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    freq = rng.uniform(0.25, 0.6)
    theta = rng.uniform(0, np.pi)
    stripes = (np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta))) > 0).astype(np.float32)
    rgb = base[None, None] * stripes[..., None] + other[None, None] * (1 - stripes[..., None])
    return rgb.astype(np.float32), alpha


def _track(label: int, rng: np.random.Generator, size: int, num_frames: int) -> ObjectTrack:
    """Per-frame object state for class ``label``; per-frame marginals are class-independent."""
    t = np.arange(num_frames, dtype=np.float64)
    u = t / (num_frames - 1)  # 0 .. 1 over the clip
    r0 = rng.uniform(0.15, 0.21) * size
    angle0 = rng.uniform(0, 360)
    name = CLASSES[label]
    lo, hi = 0.25 * size, 0.75 * size  # centres live in the middle half of the frame
    cx = np.full(num_frames, rng.uniform(lo, hi))
    cy = np.full(num_frames, rng.uniform(lo, hi))
    angle = np.full(num_frames, angle0)
    ratio = rng.uniform(1.6, 2.2)  # grow / shrink span; other classes draw one size from it
    radius = np.full(num_frames, 0.75 * r0 * ratio ** rng.uniform(0, 1))
    if name.startswith("move_"):
        dist = rng.uniform(0.25, 0.45) * size * (num_frames - 1) / 15
        dist = min(dist, hi - lo)
        start = rng.uniform(lo, hi - dist)
        path = start + dist * u
        if name == "move_right":
            cx = path
        elif name == "move_left":
            cx = path[::-1].copy()
        elif name == "move_down":
            cy = path
        else:
            cy = path[::-1].copy()
    elif name.startswith("rotate_"):
        speed = rng.uniform(10, 18) * (1 if name == "rotate_cw" else -1)
        angle = angle0 + speed * t
    elif name in ("grow", "shrink"):
        scale = ratio ** (u if name == "grow" else 1 - u)
        radius = 0.75 * r0 * scale
    elif name.startswith("oscillate_"):
        amp = rng.uniform(0.08, 0.14) * size
        period = rng.uniform(5, 8)
        wave = amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        if name == "oscillate_horizontal":
            cx = cx + wave
        else:
            cy = cy + wave
    elif name.startswith("orbit_"):
        amp = rng.uniform(0.08, 0.14) * size
        speed = np.deg2rad(rng.uniform(20, 35)) * (1 if name == "orbit_cw" else -1)
        phase = rng.uniform(0, 2 * np.pi) + speed * t
        cx = cx + amp * np.cos(phase)
        cy = cy + amp * np.sin(phase)
    else:  # pragma: no cover - CLASSES and this function change together
        raise ValueError(f"unknown class {name!r}")
    return ObjectTrack(cx=cx, cy=cy, angle=angle, radius=radius)


def generate_clip(
    label: int,
    rng: np.random.Generator,
    size: int = 32,
    num_frames: int = NUM_FRAMES,
    noise: float = 0.03,
    return_track: bool = False,
) -> np.ndarray | tuple[np.ndarray, ObjectTrack]:
    """Render one clip of class ``label``: uint8 ``[T, H, W, 3]`` (and its track if asked)."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be in [0, {len(CLASSES)}), got {label}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if num_frames < 4:
        raise ValueError(f"num_frames must be >= 4 for motion to define a class, got {num_frames}")
    jitter = max(1, size // 32)
    bg = _background(rng, size, jitter)
    rgb, alpha = _sprite(rng)
    track = _track(label, rng, size, num_frames)
    shifts = rng.integers(-jitter, jitter + 1, size=(num_frames, 2))
    frames = np.empty((num_frames, size, size, 3), np.float32)
    for t in range(num_frames):
        scale = track.radius[t] / (_SPRITE / 2)
        m = cv2.getRotationMatrix2D((_SPRITE / 2, _SPRITE / 2), float(track.angle[t]), scale)
        m[:, 2] += (track.cx[t] - _SPRITE / 2, track.cy[t] - _SPRITE / 2)
        obj = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR)[..., None]
        dx, dy = shifts[t]
        view = bg[jitter + dy : jitter + dy + size, jitter + dx : jitter + dx + size]
        frames[t] = view * (1 - a) + obj * a
    frames += rng.normal(0.0, noise, frames.shape).astype(np.float32)
    clip = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return (clip, track) if return_track else clip


def generate(
    split: str = "train",
    size: int = 32,
    n_per_class: int | None = None,
    seed: int = 0,
    num_frames: int = NUM_FRAMES,
    noise: float = 0.03,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a whole split: (uint8 videos ``[N, T, H, W, 3]``, int64 labels ``[N]``).

    ``progress``: a progress bar (``None``: only when the split takes more than a few seconds,
    e.g. 112 x 112 clips).
    """
    from tqdm.auto import tqdm

    if split not in _SPLIT_ID:
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
    n = DEFAULT_N_PER_CLASS[split] if n_per_class is None else int(n_per_class)
    if n < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n}")
    k = len(CLASSES)
    labels = np.arange(n * k, dtype=np.int64) % k
    videos = np.empty((n * k, num_frames, size, size, 3), np.uint8)
    if progress is None:
        progress = n * k * num_frames * size * size > 40_000_000  # about 3 s on one core
    bar = tqdm(labels, desc=f"synthetic {split} {size}px", unit="clip", disable=not progress)
    for i, label in enumerate(bar):
        rng = np.random.default_rng([seed, _SPLIT_ID[split], i])
        videos[i] = generate_clip(int(label), rng, size, num_frames, noise)
    return videos, labels


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that fixes a synthetic split (its cache key)."""

    split: str = "train"
    size: int = 32
    n_per_class: int | None = None
    seed: int = 0
    num_frames: int = NUM_FRAMES
    noise: float = 0.03
    version: int = 2  # bump when the generator changes

    def key(self) -> str:
        blob = repr(sorted(asdict(self).items())).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def load_split(config: SyntheticConfig, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Generate a split, or load it from ``paths.CACHE / 'synthetic'`` when cached."""
    file = paths.CACHE / "synthetic" / f"{config.split}_{config.size}px_{config.key()}.npz"
    if cache and file.exists():
        try:
            with np.load(file) as z:
                return z["videos"], z["labels"]
        except (OSError, ValueError, KeyError):
            file.unlink(missing_ok=True)  # a broken cache file is rebuilt, never trusted
    args = {k: v for k, v in asdict(config).items() if k != "version"}
    videos, labels = generate(**args)
    if cache:
        paths.ensure_dir(file.parent)
        with paths.written_then_renamed(file) as tmp:  # two builders at once both succeed
            np.savez(tmp, videos=videos, labels=labels)
    return videos, labels


class SyntheticActions(FrameDataset):
    """Synthetic action clips as a torch Dataset: items ``(float [C, T, H, W] in [0, 1], label)``."""

    classes: tuple[str, ...] = CLASSES

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        n_per_class: int | None = None,
        seed: int = 0,
        num_frames: int = NUM_FRAMES,
        noise: float = 0.03,
        cache: bool = True,
    ) -> None:
        self.config = SyntheticConfig(split, size, n_per_class, seed, num_frames, noise)
        self.videos, self.labels = load_split(self.config, cache=cache)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SyntheticActions(split={c.split!r}, n={len(self)}, classes={self.num_classes}, "
            f"shape={tuple(self.videos.shape[1:])}, seed={c.seed})"
        )
