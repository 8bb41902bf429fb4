"""Decode a video file or a jpg-frame folder to 16 uniformly sampled, centre-cropped RGB frames.

Frame counts come from decoding, never from a container header: real UCF-101 / HMDB-51 clips
decode to fewer frames than their headers claim, and truncated files report counts that are
not there at all. Sampling: ``uniform_indices`` takes the centre frame of ``num_frames`` equal
segments of the whole clip; a clip shorter than ``num_frames`` is looped (as the 3D-ResNets
pipeline does) and flagged. Geometry: short side to ``size``, then a centre crop to
``size x size`` (done as a centre square crop followed by one resize, the same geometry).

Damage: OpenCV decodes a truncated or damaged stream without a word (FFmpeg logs "Error at MB"
and ``read`` still reports success, handing out smeared frames). ``read_snippet`` therefore
checks every video file with PyAV, whose decoder can be told to stop at the first error
(``err_detect=explode``): when decoding ends in an error only the intact frames before it are
kept, and the warnings say so. ``min_frames`` refuses clips shorter than that.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

NUM_FRAMES = 16
SIZE = 112
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MAX_FRAMES = 100_000  # a sanity cap: no UCF/HMDB clip comes near it


class VideoDecodeError(RuntimeError):
    """A video file or frame folder that cannot be turned into a snippet; the message names it."""


@dataclass
class SnippetInfo:
    """What ``read_snippet`` found: decoded vs header frame counts, sampled indices, looping."""

    path: str
    n_decoded: int
    n_header: int | None
    indices: list[int]
    looped: bool
    source_hw: tuple[int, int]
    warnings: list[str] = field(default_factory=list)

    @property
    def header_mismatch(self) -> bool:
        """True when the container claimed a frame count other than the one decoded."""
        return self.n_header is not None and self.n_header != self.n_decoded


def uniform_indices(n_frames: int, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """``num_frames`` indices spread uniformly over ``range(n_frames)`` (segment centres).

    With ``n_frames >= num_frames`` index i is ``floor((2i + 1) * n_frames / (2 * num_frames))``:
    the middle frame of the i-th of ``num_frames`` equal segments, all distinct and increasing.
    With fewer frames the clip is looped: ``0, 1, ..., n-1, 0, 1, ...``.
    """
    n_frames, num_frames = int(n_frames), int(num_frames)
    if n_frames <= 0:
        raise ValueError(f"cannot sample from a clip of {n_frames} frames")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if n_frames < num_frames:
        return np.arange(num_frames, dtype=np.int64) % n_frames
    i = np.arange(num_frames, dtype=np.int64)
    return ((2 * i + 1) * n_frames) // (2 * num_frames)


def resize_crop(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Short side to ``size`` then centre crop ``size x size`` of one ``[H, W, C]`` frame."""
    h, w = frame.shape[:2]
    s = min(h, w)
    if s <= 0:
        raise ValueError(f"empty frame of shape {frame.shape}")
    top, left = (h - s) // 2, (w - s) // 2
    square = frame[top : top + s, left : left + s]
    if s == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Image files of a frame folder in frame order (``image_00001.jpg`` or ``000001.jpg``)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def read_n_frames_file(folder: str | os.PathLike) -> int | None:
    """The count in a 3D-ResNets ``n_frames`` file (a claim, like a header), or None."""
    f = Path(folder) / "n_frames"
    if not f.is_file():
        return None
    try:
        return int(f.read_text().strip())
    except ValueError:
        return None


def _decode_video(path: Path, size: int) -> tuple[list[np.ndarray], int | None, tuple[int, int]]:
    """Every frame really decodable from a video file, already resized and cropped, RGB."""
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: zero-length file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoDecodeError(f"{path}: cannot open as a video (corrupt or not a video file)")
    try:
        claimed = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        n_header = int(claimed) if np.isfinite(claimed) and claimed > 0 else None
        frames: list[np.ndarray] = []
        hw = (0, 0)
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
                raise VideoDecodeError(f"{path}: unexpected frame shape {frame.shape}")
            hw = frame.shape[:2]
            frames.append(cv2.cvtColor(resize_crop(frame, size), cv2.COLOR_BGR2RGB))
            if len(frames) > MAX_FRAMES:
                raise VideoDecodeError(f"{path}: more than {MAX_FRAMES} frames; refusing")
    finally:
        cap.release()
    if not frames:
        raise VideoDecodeError(f"{path}: no decodable frames (empty or corrupt video)")
    return frames, n_header, hw


def _decode_folder(folder: Path, size: int) -> tuple[list[np.ndarray], int | None, tuple[int, int]]:
    """Every image of a frame folder, decoded, resized and cropped, RGB."""
    files = list_frame_files(folder)
    if not files:
        raise VideoDecodeError(f"{folder}: frame folder holds no images")
    frames: list[np.ndarray] = []
    hw = (0, 0)
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise VideoDecodeError(f"{f}: cannot decode image (frame folder {folder})")
        hw = img.shape[:2]
        frames.append(cv2.cvtColor(resize_crop(img, size), cv2.COLOR_BGR2RGB))
    return frames, read_n_frames_file(folder), hw


def intact_frame_count(path: str | os.PathLike) -> tuple[int, str | None]:
    """``(frames decoded before the first decoding error, that error or None)`` with PyAV.

    FFmpeg's error detection is set to stop at the first damaged packet, so a clip cut short or
    damaged in the middle reports its error here even when OpenCV decodes it "successfully".
    Undecodable container metadata (not UTF-8) is ignored: it says nothing about the pixels.
    """
    import av  # PyAV: only for this check; the pixels come from OpenCV

    try:  # container metadata that is not UTF-8 (Latin-1 titles in HMDB-51) is no damage
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as e:  # noqa: BLE001 - any open failure is a decoding error here
        return 0, f"{type(e).__name__}: {e}"
    n = 0
    try:
        if not container.streams.video:
            return 0, "no video stream"
        stream = container.streams.video[0]
        stream.codec_context.options = {"err_detect": "explode"}
        try:
            for packet in container.demux(stream):
                n += len(packet.decode())
        except Exception as e:  # noqa: BLE001 - av.error.* (InvalidDataError, ...)
            return n, f"{type(e).__name__}: {e}"
    finally:
        container.close()
    return n, None


def read_all_frames(
    path: str | os.PathLike, size: int = SIZE
) -> tuple[np.ndarray, int | None, tuple[int, int]]:
    """All frames really present in a video file or frame folder: uint8 ``[N, size, size, 3]``.

    Returns ``(frames, n_header, (src_h, src_w))``; raises ``VideoDecodeError`` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        frames, n_header, hw = _decode_folder(path, size)
    else:
        frames, n_header, hw = _decode_video(path, size)
    return np.stack(frames), n_header, hw


def read_snippet(
    path: str | os.PathLike,
    num_frames: int = NUM_FRAMES,
    size: int = SIZE,
    *,
    min_frames: int | None = None,
    check_errors: bool = True,
) -> tuple[np.ndarray, SnippetInfo]:
    """Decode ``path`` (video file or jpg folder) to uint8 ``[num_frames, size, size, 3]`` RGB.

    The frames are uniformly sampled over the frames really decoded (see ``uniform_indices``);
    ``info`` says how many were decoded, what the header claimed, which indices were taken and
    whether the clip had to be looped. ``check_errors`` (video files): when decoding ends in an
    error (see :func:`intact_frame_count`) only the intact frames before it are kept, with a
    warning. Raises ``VideoDecodeError`` (naming the file) when nothing intact can be decoded,
    or fewer than ``min_frames`` frames (``None``: any number, looped to ``num_frames``).
    """
    path = Path(path)
    all_frames, n_header, hw = read_all_frames(path, size)
    damage = None
    if check_errors and path.is_file():
        n_ok, err = intact_frame_count(path)
        if err is not None:
            if n_ok == 0:
                raise VideoDecodeError(
                    f"{path}: decoding fails at the first frame (damaged or truncated: {err})"
                )
            damage = (
                f"decoding ends in an error after {min(n_ok, len(all_frames))} intact frames "
                f"(damaged or truncated: {err}); kept those, dropped "
                f"{max(len(all_frames) - n_ok, 0)} decoded after it"
            )
            all_frames = all_frames[:n_ok]
    n = len(all_frames)
    if min_frames is not None and n < min_frames:
        why = f"; {damage}" if damage else ""
        raise VideoDecodeError(
            f"{path}: only {n} intact frames decoded, fewer than the {min_frames} required "
            f"(a truncated clip? every official UCF-101 / HMDB-51 clip has more){why}"
        )
    idx = uniform_indices(n, num_frames)
    info = SnippetInfo(
        path=str(path),
        n_decoded=n,
        n_header=n_header,
        indices=[int(i) for i in idx],
        looped=n < num_frames,
        source_hw=(int(hw[0]), int(hw[1])),
    )
    if damage:
        info.warnings.append(damage)
    if info.looped:
        info.warnings.append(f"only {n} frames decoded; looped to {num_frames}")
    if n_header is not None and abs(n_header - n) > 1:
        info.warnings.append(f"header claims {n_header} frames, {n} decoded")
    return all_frames[idx], info


def write_video(
    path: str | os.PathLike, frames: np.ndarray, fps: float = 25.0, fourcc: str = "MJPG"
) -> Path:
    """Write uint8 RGB ``[T, H, W, 3]`` frames to a video file (MJPG .avi by default)."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"{path}: expected uint8 [T, H, W, 3] frames, got {frames.dtype} {frames.shape}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: cv2.VideoWriter cannot write {fourcc} video")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
