"""Official UCF-101 and HMDB-51 train/test splits (all three folds), parsed with their quirks.

UCF-101 (``ucfTrainTestlist/``): ``classInd.txt`` ("1 ApplyEyeMakeup"), ``trainlist0N.txt``
("Class/v_Class_gXX_cYY.avi label", 1-based), ``testlist0N.txt`` (no label: it comes from the
folder). CRLF line ends. The folder ``HandstandPushups/`` holds ``v_HandStandPushups_*`` files,
so a label always comes from the folder, never from the file name.
HMDB-51 (``testTrainMulti_7030_splits/``): ``<class>_test_split{1,2,3}.txt`` with lines
"name.avi id " (trailing space; 1 = train, 2 = test, 0 = unused). Classes in sorted order.
Video paths are relative to the extracted video root: ``Class/name.avi``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

UCF101_NUM_CLASSES = 101
HMDB51_NUM_CLASSES = 51
FOLDS = (1, 2, 3)


@dataclass(frozen=True)
class VideoItem:
    """One video of a split: its path relative to the video root and its 0-based label."""

    relpath: str
    label: int


@dataclass
class Split:
    """One fold of a data set: class names and the train and test videos."""

    dataset: str
    fold: int
    classes: list[str]
    train: list[VideoItem]
    test: list[VideoItem]

    def items(self, split: str) -> list[VideoItem]:
        """The videos of ``split`` ("train" or "test")."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return self.train if split == "train" else self.test


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file, stripped (CRLF, trailing spaces), with 1-based numbers."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    text = path.read_bytes().decode("utf-8-sig")
    return [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def _check_fold(fold: int) -> int:
    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {FOLDS}, got {fold!r}")
    return int(fold)


def _check_disjoint(path: Path, train: list[VideoItem], test: list[VideoItem]) -> None:
    both = {v.relpath for v in train} & {v.relpath for v in test}
    if both:
        raise ValueError(f"{path}: {len(both)} videos in both train and test, e.g. {min(both)}")


def read_ucf101_classes(split_dir: str | os.PathLike) -> list[str]:
    """Class names from ``classInd.txt``, index i holding class i + 1 of the file."""
    path = Path(split_dir) / "classInd.txt"
    classes: dict[int, str] = {}
    for no, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{no}: expected '<index> <ClassName>', got {line!r}")
        idx = int(parts[0])
        if idx in classes:
            raise ValueError(f"{path}:{no}: class index {idx} appears twice")
        classes[idx] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise ValueError(f"{path}: class indices are not 1..{len(classes)}")
    return [classes[i] for i in range(1, len(classes) + 1)]


def _ucf_relpath(path: Path, no: int, name: str, class_index: dict[str, int]) -> tuple[str, int]:
    rel = name.replace("\\", "/")
    parts = rel.split("/")
    if len(parts) != 2 or not parts[1].lower().endswith(".avi"):
        raise ValueError(f"{path}:{no}: expected 'Class/video.avi', got {name!r}")
    if parts[0] not in class_index:
        raise ValueError(f"{path}:{no}: folder {parts[0]!r} is not a class of classInd.txt")
    return rel, class_index[parts[0]]


def read_ucf101_split(split_dir: str | os.PathLike, fold: int = 1) -> Split:
    """UCF-101 fold ``fold``: labels from the folder name, checked against the train labels."""
    fold = _check_fold(fold)
    split_dir = Path(split_dir)
    classes = read_ucf101_classes(split_dir)
    class_index = {c: i for i, c in enumerate(classes)}
    out: dict[str, list[VideoItem]] = {}
    for split in ("train", "test"):
        path = split_dir / f"{split}list{fold:02d}.txt"
        items: list[VideoItem] = []
        seen: set[str] = set()
        for no, line in _lines(path):
            parts = line.split()
            if split == "train" and len(parts) != 2 or split == "test" and len(parts) not in (1, 2):
                raise ValueError(f"{path}:{no}: malformed line {line!r}")
            rel, label = _ucf_relpath(path, no, parts[0], class_index)
            if len(parts) == 2:
                if not parts[1].isdigit() or int(parts[1]) - 1 != label:
                    raise ValueError(
                        f"{path}:{no}: label {parts[1]!r} disagrees with folder "
                        f"{rel.split('/')[0]!r} (class {label + 1} in classInd.txt)"
                    )
            if rel in seen:
                raise ValueError(f"{path}:{no}: {rel} listed twice")
            seen.add(rel)
            items.append(VideoItem(rel, label))
        out[split] = items
    _check_disjoint(split_dir, out["train"], out["test"])
    return Split("ucf101", fold, classes, out["train"], out["test"])


_HMDB_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>[123])\.txt$")


def read_hmdb51_classes(split_dir: str | os.PathLike) -> list[str]:
    """The HMDB-51 class names, sorted, from the split file names."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"HMDB-51 split folder not found: {split_dir}")
    classes = sorted(
        {m["cls"] for p in split_dir.iterdir() if (m := _HMDB_RE.match(p.name)) is not None}
    )
    if not classes:
        raise ValueError(f"{split_dir}: no '<class>_test_split<N>.txt' files")
    return classes


def read_hmdb51_split(split_dir: str | os.PathLike, fold: int = 1) -> Split:
    """HMDB-51 fold ``fold``: id 1 = train, 2 = test, 0 = unused; videos at ``class/name.avi``."""
    fold = _check_fold(fold)
    split_dir = Path(split_dir)
    classes = read_hmdb51_classes(split_dir)
    train: list[VideoItem] = []
    test: list[VideoItem] = []
    seen: set[str] = set()
    for label, cls in enumerate(classes):
        path = split_dir / f"{cls}_test_split{fold}.txt"
        for no, line in _lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}:{no}: expected '<name>.avi <0|1|2>', got {line!r}")
            if "/" in parts[0] or "\\" in parts[0]:
                raise ValueError(f"{path}:{no}: video name must not hold a path: {parts[0]!r}")
            rel = f"{cls}/{parts[0]}"
            if rel in seen:
                raise ValueError(f"{path}:{no}: {parts[0]} listed twice")
            seen.add(rel)
            if parts[1] == "1":
                train.append(VideoItem(rel, label))
            elif parts[1] == "2":
                test.append(VideoItem(rel, label))
    _check_disjoint(split_dir, train, test)
    return Split("hmdb51", fold, classes, train, test)
