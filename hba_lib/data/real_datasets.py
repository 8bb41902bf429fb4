"""UCF-101 and HMDB-51 as torch Datasets over the snippet cache, plus a 3D-ResNets jpg loader.

Same interface as ``hba_lib.data.synthetic.SyntheticActions``: items ``(float [C, T, H, W] in [0, 1],
label)``, attributes ``classes``, ``videos`` (uint8 ``[N, T, H, W, C]``, memory-mapped) and
``labels`` (int64 ``[N]``). Data root layout (``root`` argument, ``--root`` of the scripts):

  UCF-101: ``root/downloads/`` (archives), ``root/UCF-101/<Class>/*.avi``,
           ``root/ucfTrainTestlist/*.txt``, ``root/snippets/<split>_fold<k>_t16_s112/``
  HMDB-51: ``root/downloads/``, ``root/hmdb51_org/<class>/*.avi``,
           ``root/testTrainMulti_7030_splits/*.txt``, ``root/snippets/...``

Default roots: ``$HBA_UCF101_ROOT`` / ``$HBA_HMDB51_ROOT``, else ``hba_lib.paths.CACHE / name``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hba_lib import paths
from hba_lib.data.archives import extract, extract_nested_rars
from hba_lib.data.download import HMDB51_FILES, UCF101_FILES, RemoteFile, download_all
from hba_lib.data.snippet_cache import CacheReport, build_snippet_cache, load_snippet_cache
from hba_lib.data.splits import Split, VideoItem, read_hmdb51_split, read_ucf101_split
from hba_lib.data.video import FrameDataset
from hba_lib.data.video_io import NUM_FRAMES, SIZE, list_frame_files, read_snippet

# Per-dataset means of the 3D-ResNets / authors' pipeline (0-255 pixels minus the mean, no std
# division), expressed for [0, 1] inputs: (x - MEAN) / STD == x * 255 - mean_255.
UCF101_MEAN_255 = (101.2198, 97.5751, 89.5303)
HMDB51_MEAN_255 = (95.4070, 93.4680, 82.1443)
UCF101_MEAN = tuple(m / 255.0 for m in UCF101_MEAN_255)
HMDB51_MEAN = tuple(m / 255.0 for m in HMDB51_MEAN_255)
UCF101_STD = (1 / 255.0,) * 3
HMDB51_STD = (1 / 255.0,) * 3
# torchvision's Kinetics-400 video models (r3d_18, mc3_18, r2plus1d_18) for [0, 1] inputs.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class Layout:
    """Where one data set's files live under its root."""

    name: str
    env: str
    videos: str
    splits: str
    files: tuple[RemoteFile, ...]


LAYOUTS = {
    "ucf101": Layout("ucf101", "HBA_UCF101_ROOT", "UCF-101", "ucfTrainTestlist", UCF101_FILES),
    "hmdb51": Layout(
        "hmdb51", "HBA_HMDB51_ROOT", "hmdb51_org", "testTrainMulti_7030_splits", HMDB51_FILES
    ),
}


def _layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown real data set {name!r}; choose one of {tuple(LAYOUTS)}")
    return LAYOUTS[name]


def default_root(name: str) -> Path:
    """The data root of ``name``: ``$HBA_<NAME>_ROOT`` or ``hba_lib.paths.CACHE / name``."""
    lay = _layout(name)
    return Path(os.environ.get(lay.env) or paths.CACHE / name)


def _root(name: str, root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else default_root(name)


def read_split(name: str, root: str | os.PathLike | None = None, fold: int = 1) -> Split:
    """The official split ``fold`` of ``name`` read from ``root``'s split folder."""
    lay, root = _layout(name), _root(name, root)
    split_dir = root / lay.splits
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"{split_dir} not found: run `python data_scripts/{name}.py download` and "
            f"`... extract` with --root {root} first"
        )
    reader = read_ucf101_split if name == "ucf101" else read_hmdb51_split
    return reader(split_dir, fold)


def cache_dir(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "test",
    fold: int = 1,
    size: int = SIZE,
    num_frames: int = NUM_FRAMES,
) -> Path:
    """The snippet-cache folder of one split / fold / geometry."""
    return _root(name, root) / "snippets" / f"{split}_fold{fold}_t{num_frames}_s{size}"


def download_data(name: str, root: str | os.PathLike | None = None, **kw) -> list[Path]:
    """Download ``name``'s official archives into ``root/downloads`` (resumable, verified)."""
    return download_all(_layout(name).files, _root(name, root) / "downloads", **kw)


def extract_data(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    keep_inner: bool = False,
) -> None:
    """Extract the downloaded archives into the layout above (safe, resumable)."""
    lay, root = _layout(name), _root(name, root)
    dl = root / "downloads"
    for f in lay.files:
        if not (dl / f.name).is_file():
            raise FileNotFoundError(f"{dl / f.name} not found: run the download step first")
    if name == "ucf101":
        extract(dl / "UCF101TrainTestSplits-RecognitionTask.zip", root, progress=progress)
        extract(dl / "UCF101.rar", root, progress=progress)
    else:
        extract(dl / "test_train_splits.rar", root, progress=progress)
        inner = root / "hmdb51_rars"
        extract(dl / "hmdb51_org.rar", inner, progress=progress)
        extract_nested_rars(inner, root / lay.videos, remove=not keep_inner, progress=progress)
    for sub in (lay.videos, lay.splits):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"after extraction {root / sub} is missing: unexpected archive")


def build_cache(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "test",
    fold: int = 1,
    size: int = SIZE,
    num_frames: int = NUM_FRAMES,
    workers: int | None = None,
    progress: bool = True,
    min_frames: int | None = None,
) -> CacheReport:
    """Decode every video of ``split`` / ``fold`` into its snippet cache (resumable); clips with
    fewer than ``min_frames`` intact frames (default ``num_frames``) are excluded."""
    lay, root = _layout(name), _root(name, root)
    sp = read_split(name, root, fold)
    return build_snippet_cache(
        sp.items(split),
        root / lay.videos,
        cache_dir(name, root, split, fold, size, num_frames),
        sp.classes,
        num_frames=num_frames,
        size=size,
        workers=workers,
        progress=progress,
        min_frames=min_frames,
    )


class SnippetDataset(FrameDataset):
    """A cached real data set: items ``(float [C, T, H, W] in [0, 1], label)``."""

    NAME = ""
    MEAN: tuple[float, float, float] = (0.0, 0.0, 0.0)
    STD: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __init__(
        self,
        split: str = "test",
        fold: int = 1,
        root: str | os.PathLike | None = None,
        size: int = SIZE,
        num_frames: int = NUM_FRAMES,
        build: bool = False,
        workers: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split, self.fold, self.root = split, int(fold), _root(self.NAME, root)
        self.transform = transform
        self.cache_dir = cache_dir(self.NAME, self.root, split, fold, size, num_frames)
        if build:
            build_cache(self.NAME, self.root, split, fold, size, num_frames, workers)
        try:
            videos, labels, meta = load_snippet_cache(self.cache_dir)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{type(self).__name__}({split!r}, fold={fold}): no snippet cache at "
                f"{self.cache_dir}; build it with `python data_scripts/{self.NAME}.py build-cache "
                f"--root {self.root} --split {split} --fold {fold}` (or pass build=True)"
            ) from None
        self.videos: np.ndarray = videos
        self.labels: np.ndarray = labels
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.names: list[str] = list(meta["relpaths"])
        self.looped = np.asarray(meta["looped"], dtype=bool)
        if meta["excluded"]:
            warnings.warn(
                f"{type(self).__name__} {split} fold {fold}: {len(meta['excluded'])} listed "
                f"videos could not be decoded and are excluded; see {self.cache_dir / 'report.txt'}",
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, fold={self.fold}, n={len(self)}, "
            f"classes={self.num_classes}, shape={tuple(self.videos.shape[1:])})"
        )


class UCF101(SnippetDataset):
    """UCF-101 (101 classes, official folds 1-3) over its snippet cache."""

    NAME = "ucf101"
    MEAN, STD = UCF101_MEAN, UCF101_STD


class HMDB51(SnippetDataset):
    """HMDB-51 (51 classes, official folds 1-3) over its snippet cache."""

    NAME = "hmdb51"
    MEAN, STD = HMDB51_MEAN, HMDB51_STD


def _strip_video_suffix(relpath: str) -> str:
    """``Class/v_x.avi`` -> ``Class/v_x`` (a frame folder is named after its video's stem)."""
    p = Path(relpath)
    return (
        str(p.with_suffix("")) if p.suffix.lower() in (".avi", ".mp4", ".mkv", ".webm") else relpath
    )


class _LazySnippets:
    """A lazy uint8 ``[N, T, H, W, C]``: indexing decodes the frame folder(s) on demand."""

    def __init__(self, folders: Sequence[Path], num_frames: int, size: int) -> None:
        self.folders, self.num_frames, self.size = list(folders), num_frames, size
        self.shape = (len(self.folders), num_frames, size, size, 3)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return np.stack([self[j] for j in range(*i.indices(len(self)))])
        return read_snippet(self.folders[int(i)], self.num_frames, self.size)[0]


class JpgFolderDataset(FrameDataset):
    """Frames already extracted in the 3D-ResNets-PyTorch layout: ``root/<label>/<video>/*.jpg``.

    ``image_%05d.jpg`` (with an ``n_frames`` file, which is not trusted: the images really
    present count) and ``%06d.jpg`` both work. ``classes`` defaults to the sorted label folders;
    ``items`` (e.g. a ``Split``'s ``VideoItem``s, ``.avi`` suffix dropped) restricts the videos.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        classes: Sequence[str] | None = None,
        items: Sequence[VideoItem] | None = None,
        num_frames: int = NUM_FRAMES,
        size: int = SIZE,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"jpg-folder root not found: {self.root}")
        if classes is None:
            classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        self.classes = list(classes)
        if items is None:
            index = {c: i for i, c in enumerate(self.classes)}
            items = [
                VideoItem(f"{c}/{v.name}", index[c])
                for c in self.classes
                if (self.root / c).is_dir()
                for v in sorted((self.root / c).iterdir())
                if v.is_dir()
            ]
        folders = [self.root / _strip_video_suffix(it.relpath) for it in items]
        missing = [f for f in folders if not f.is_dir() or not list_frame_files(f)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(folders)} frame folders missing or empty under "
                f"{self.root}, e.g. {missing[0]}"
            )
        if not folders:
            raise ValueError(f"no video folders found under {self.root}")
        self.names = [it.relpath for it in items]
        self.labels = np.asarray([it.label for it in items], dtype=np.int64)
        self.videos = _LazySnippets(folders, num_frames, size)
        self.transform = transform


def _fake_clip(label: int, n_frames: int, seed: int, hw: tuple[int, int]) -> np.ndarray:
    """A small clip whose colour is its class and whose square moves: uint8 [T, H, W, 3]."""
    rng = np.random.default_rng(seed)
    h, w = hw
    hue = np.array([(label * 67) % 256, (label * 151 + 40) % 256, (label * 29 + 90) % 256])
    clip = np.full((n_frames, h, w, 3), 40, dtype=np.uint8)
    clip += rng.integers(0, 20, size=clip.shape, dtype=np.uint8)
    side = max(4, min(h, w) // 3)
    for t in range(n_frames):
        x = int((w - side) * t / max(1, n_frames - 1))
        clip[t, (h - side) // 2 : (h + side) // 2, x : x + side] = hue
    return clip


def make_fake_layout(
    name: str,
    root: str | os.PathLike,
    classes: Sequence[str] | None = None,
    n_per_class: int = 4,
    frames: Sequence[int] = (24, 40, 16, 33),
    hw: tuple[int, int] = (48, 64),
    seed: int = 0,
) -> Split:
    """Write a tiny fabricated data set in ``name``'s official layout under ``root``.

    Real quirks included: UCF split files with CRLF line ends and ``HandstandPushups/`` holding
    ``v_HandStandPushups_*`` files; HMDB lines with a trailing space and unused (id 0) videos.
    Clip lengths cycle through ``frames`` (16: the shortest clip a cache keeps by default).
    Returns fold 1's split.
    For tests and demos without the real data.
    """
    from hba_lib.data.video_io import write_video

    lay, root = _layout(name), Path(root)
    if name == "ucf101":
        classes = list(
            classes or ["ApplyEyeMakeup", "Archery", "HandstandPushups", "YoYo", "Drumming"]
        )
        split_dir = root / lay.splits
        split_dir.mkdir(parents=True, exist_ok=True)
        (split_dir / "classInd.txt").write_bytes(
            "".join(f"{i + 1} {c}\r\n" for i, c in enumerate(classes)).encode()
        )
        rows: list[tuple[str, int, int]] = []  # relpath, label, group
        for label, c in enumerate(classes):
            stem = "HandStandPushups" if c == "HandstandPushups" else c
            for g in range(1, n_per_class + 1):
                rel = f"{c}/v_{stem}_g{g:02d}_c01.avi"
                n = frames[(label + g) % len(frames)]
                write_video(
                    root / lay.videos / rel, _fake_clip(label, n, seed + 100 * label + g, hw)
                )
                rows.append((rel, label, g))
        for fold in (1, 2, 3):
            test = [r for r in rows if (r[2] - 1) % 4 == fold - 1]
            train = [r for r in rows if r not in test]
            (split_dir / f"trainlist{fold:02d}.txt").write_bytes(
                "".join(f"{r} {lab + 1}\r\n" for r, lab, _ in train).encode()
            )
            (split_dir / f"testlist{fold:02d}.txt").write_bytes(
                "".join(f"{r}\r\n" for r, _, _ in test).encode()
            )
        return read_ucf101_split(split_dir, 1)
    classes = list(classes or ["brush_hair", "cartwheel", "climb", "climb_stairs", "wave"])
    split_dir = root / lay.splits
    split_dir.mkdir(parents=True, exist_ok=True)
    for label, c in enumerate(sorted(classes)):
        names = [f"clip_{c}_{g}.avi" for g in range(n_per_class + 1)]  # the last one is unused
        for g, nm in enumerate(names[:-1]):
            n = frames[(label + g) % len(frames)]
            write_video(
                root / lay.videos / c / nm, _fake_clip(label, n, seed + 100 * label + g, hw)
            )
        for fold in (1, 2, 3):
            ids = ["2" if (g - fold) % 4 == 0 else "1" for g in range(n_per_class)] + ["0"]
            (split_dir / f"{c}_test_split{fold}.txt").write_text(
                "".join(f"{nm} {i} \n" for nm, i in zip(names, ids))
            )
    return read_hmdb51_split(split_dir, 1)
