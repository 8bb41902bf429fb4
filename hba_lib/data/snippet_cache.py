"""Decode every video of a split once into a compact uint8 snippet cache (resumable, parallel).

Layout of a finished cache folder:
  ``videos.npy``  uint8 ``[N, T, H, W, C]`` RGB (open it memory-mapped), one row per good video
  ``labels.npy``  int64 ``[N]``
  ``meta.json``   classes, relative paths, decoded/header frame counts, looped flags, the
                  videos excluded (by name, with the reason) and the build parameters
  ``report.txt``  the human summary printed at the end of the build
While building, ``work.npy`` (all listed videos) and ``progress.jsonl`` (one line per finished
video, written after its frames are flushed) let an interrupted build resume where it stopped.
A video that cannot be decoded, or holds fewer than ``min_frames`` intact frames (default: the
snippet length, 16), is excluded and named in the report; it never enters the data set, and it
never stops the run. A video whose decoding ends in an error keeps only its intact frames and
is named among the warnings. Ctrl-C raises :class:`CacheBuildInterrupted`, whose message says
what was kept and how to resume.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hba_lib.data.video_io import NUM_FRAMES, SIZE, VideoDecodeError, read_snippet

VIDEOS, LABELS, META, REPORT = "videos.npy", "labels.npy", "meta.json", "report.txt"
WORK, PROGRESS, SPEC = "work.npy", "progress.jsonl", "spec.json"


class CacheBuildInterrupted(KeyboardInterrupt):
    """Ctrl-C during a build; the message says how many videos were kept and how to resume."""


@dataclass
class CacheReport:
    """What a build did: counts, the videos excluded (with reasons) and the warnings."""

    out_dir: str
    n_listed: int
    n_cached: int
    decoded_now: int
    already_done: int
    excluded: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """Multi-line human summary naming every excluded video and every warning."""
        lines = [
            f"snippet cache {self.out_dir}: {self.n_listed} videos listed, {self.n_cached} cached, "
            f"{len(self.excluded)} excluded",
            f"decoded this run: {self.decoded_now}; already done before: {self.already_done}",
        ]
        if self.excluded:
            lines.append("EXCLUDED (not in the data set):")
            lines += [f"  {name}: {reason}" for name, reason in self.excluded]
        if self.warnings:
            lines.append("warnings (kept in the data set):")
            lines += [f"  {name}: {msg}" for name, msg in self.warnings]
        return "\n".join(lines)


def _fingerprint(
    items: Sequence[tuple[str, int]], num_frames: int, size: int, min_frames: int | None = None
) -> str:
    tail = "" if min_frames in (None, num_frames) else f":min{min_frames}"
    h = hashlib.sha256(f"{num_frames}:{size}{tail}\n".encode())
    for rel, label in items:
        h.update(f"{rel}\t{label}\n".encode())
    return h.hexdigest()


def _decode_task(
    task: tuple[int, str, str, int, int, int | None],
) -> tuple[int, np.ndarray | None, dict]:
    """Decode one video (runs in a worker); never raises for a bad file."""
    i, rel, path, num_frames, size, min_frames = task
    rec: dict = {"i": i, "relpath": rel}
    try:
        frames, info = read_snippet(path, num_frames=num_frames, size=size, min_frames=min_frames)
    except VideoDecodeError as e:
        return i, None, {**rec, "ok": False, "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
        return i, None, {**rec, "ok": False, "reason": f"{path}: {type(e).__name__}: {e}"}
    rec.update(
        ok=True,
        n_decoded=info.n_decoded,
        n_header=info.n_header,
        looped=info.looped,
        warnings=info.warnings,
    )
    return i, frames, rec


def _init_worker() -> None:
    import signal

    import cv2

    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the pool


def _read_progress(path: Path) -> dict[int, dict]:
    done: dict[int, dict] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the interruption: redo that video
            continue
        done[int(rec["i"])] = rec
    return done


def is_complete(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds a finished cache."""
    meta = Path(out_dir) / META
    return meta.is_file() and json.loads(meta.read_text()).get("complete", False)


def build_snippet_cache(
    items: Sequence[tuple[str, int]] | Iterable,
    video_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    classes: Sequence[str],
    *,
    num_frames: int = NUM_FRAMES,
    size: int = SIZE,
    workers: int | None = None,
    progress: bool = True,
    flush_every: int = 16,
    min_frames: int | None = None,
) -> CacheReport:
    """Decode ``items`` (``(relpath, label)`` or ``VideoItem``) under ``video_root`` into ``out_dir``.

    Resumes an interrupted build (videos already recorded are not decoded again) and returns
    at once when the cache is complete. ``workers``: processes (default: all cores; 1 decodes
    in this process). ``min_frames``: fewer intact frames exclude a video (default
    ``num_frames``; 0 keeps and loops short clips). Prints and writes ``report.txt``; raises
    only when no video decodes, or :class:`CacheBuildInterrupted` on Ctrl-C.
    """
    if min_frames is None:
        min_frames = num_frames
    pairs = [
        (it.relpath, int(it.label)) if hasattr(it, "relpath") else (str(it[0]), int(it[1]))
        for it in items
    ]
    if not pairs:
        raise ValueError(f"no videos to cache into {out_dir}")
    video_root, out_dir = Path(video_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = _fingerprint(pairs, num_frames, size, min_frames)
    if is_complete(out_dir):
        meta = json.loads((out_dir / META).read_text())
        if meta.get("fingerprint") == fp:
            report = _report_from_meta(out_dir, meta, decoded_now=0)
            if progress:
                print(report.summary())
            return report
        raise ValueError(
            f"{out_dir} holds a finished cache of other videos or parameters; "
            "delete it or choose another folder"
        )
    if not any((video_root / rel).exists() for rel, _ in pairs):
        raise FileNotFoundError(
            f"none of the {len(pairs)} listed videos exists under {video_root} "
            f"(e.g. {video_root / pairs[0][0]}): wrong --root, or not extracted yet?"
        )

    n = len(pairs)
    shape = (n, num_frames, size, size, 3)
    spec_path, work_path, prog_path = out_dir / SPEC, out_dir / WORK, out_dir / PROGRESS
    resume = (
        spec_path.exists()
        and work_path.exists()
        and json.loads(spec_path.read_text()).get("fingerprint") == fp
    )
    if resume:
        work = np.load(work_path, mmap_mode="r+")
        if work.shape != shape or work.dtype != np.uint8:
            resume = False
    if not resume:
        for p in (work_path, prog_path):
            p.unlink(missing_ok=True)
        work = np.lib.format.open_memmap(work_path, mode="w+", dtype=np.uint8, shape=shape)
        spec_path.write_text(json.dumps({"fingerprint": fp, "shape": list(shape)}))
    done = _read_progress(prog_path) if resume else {}
    todo = [
        (i, rel, str(video_root / rel), num_frames, size, min_frames or None)
        for i, (rel, _) in enumerate(pairs)
        if i not in done
    ]
    already = len(done)

    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            work.flush()
            with open(prog_path, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in pending))
                f.flush()
                os.fsync(f.fileno())
            pending.clear()

    decoded_now = 0
    bar = tqdm(
        total=n,
        initial=already,
        desc=f"decode -> {out_dir.name}",
        unit="video",
        disable=not progress,
    )
    pool = None
    interrupted = False
    try:
        if workers == 1:
            results = map(_decode_task, todo)
        else:
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker)
            results = pool.imap_unordered(_decode_task, todo, chunksize=1)
        for i, frames, rec in results:
            if frames is not None:
                work[i] = frames
            done[i] = rec
            pending.append(rec)
            decoded_now += 1
            bar.update(1)
            if len(pending) >= flush_every:
                flush()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        flush()
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    if interrupted:
        raise CacheBuildInterrupted(
            f"interrupted: {len(done)} of {n} videos for {out_dir} are decoded and kept "
            f"({decoded_now} this run, {already} before; recorded in {prog_path}); run the same "
            "command again to resume: videos already done are not decoded again"
        )

    return _finalize(
        out_dir, pairs, classes, done, work, fp, num_frames, size, decoded_now, already, progress
    )


def _finalize(
    out_dir, pairs, classes, done, work, fp, num_frames, size, decoded_now, already, progress
) -> CacheReport:
    ok_idx = [i for i in range(len(pairs)) if done[i]["ok"]]
    excluded = [(pairs[i][0], done[i]["reason"]) for i in range(len(pairs)) if not done[i]["ok"]]
    warnings = [(pairs[i][0], w) for i in ok_idx for w in done[i].get("warnings", [])]
    report = CacheReport(
        str(out_dir), len(pairs), len(ok_idx), decoded_now, already, excluded, warnings
    )
    (out_dir / REPORT).write_text(report.summary() + "\n")
    if not ok_idx:
        raise RuntimeError(f"no video could be decoded for {out_dir}:\n{report.summary()}")
    work_path = out_dir / WORK
    if len(ok_idx) == len(pairs):
        work.flush()
        del work
        os.replace(work_path, out_dir / VIDEOS)
    else:
        out = np.lib.format.open_memmap(
            out_dir / VIDEOS, mode="w+", dtype=np.uint8, shape=(len(ok_idx), *work.shape[1:])
        )
        for j in range(0, len(ok_idx), 64):
            sel = ok_idx[j : j + 64]
            out[j : j + len(sel)] = work[sel]
        out.flush()
        del out, work
        work_path.unlink()
    np.save(out_dir / LABELS, np.asarray([pairs[i][1] for i in ok_idx], dtype=np.int64))
    meta = {
        "complete": True,
        "fingerprint": fp,
        "num_frames": num_frames,
        "size": size,
        "classes": list(classes),
        "relpaths": [pairs[i][0] for i in ok_idx],
        "n_decoded": [done[i]["n_decoded"] for i in ok_idx],
        "n_header": [done[i]["n_header"] for i in ok_idx],
        "looped": [bool(done[i]["looped"]) for i in ok_idx],
        "excluded": [{"relpath": r, "reason": why} for r, why in excluded],
        "warnings": [{"relpath": r, "warning": w} for r, w in warnings],
        "n_listed": len(pairs),
    }
    (out_dir / META).write_text(json.dumps(meta))
    (out_dir / PROGRESS).unlink(missing_ok=True)
    (out_dir / SPEC).unlink(missing_ok=True)
    if progress:
        print(report.summary())
    return report


def _report_from_meta(out_dir: Path, meta: dict, decoded_now: int) -> CacheReport:
    return CacheReport(
        str(out_dir),
        meta["n_listed"],
        len(meta["relpaths"]),
        decoded_now,
        len(meta["relpaths"]) + len(meta["excluded"]),
        [(e["relpath"], e["reason"]) for e in meta["excluded"]],
        [(w["relpath"], w["warning"]) for w in meta["warnings"]],
    )


def load_snippet_cache(out_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(videos uint8 [N, T, H, W, C] memory-mapped, labels int64 [N], meta)`` of a cache."""
    out_dir = Path(out_dir)
    if not is_complete(out_dir):
        raise FileNotFoundError(f"no finished snippet cache in {out_dir}")
    meta = json.loads((out_dir / META).read_text())
    videos = np.load(out_dir / VIDEOS, mmap_mode="r")
    labels = np.load(out_dir / LABELS)
    if len(videos) != len(labels) or len(labels) != len(meta["relpaths"]):
        raise ValueError(f"{out_dir}: videos, labels and meta.json disagree in length")
    return videos, labels, meta
