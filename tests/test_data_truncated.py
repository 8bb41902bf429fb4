"""Truncated and damaged real clips never enter a snippet cache silently; Ctrl-C says what was kept.

Issue 9 (7, 8). The clips are cut from the real UCF-101 / HMDB-51 files in ``../shared``
(``SOURCES.txt`` names them) into temporary files.
"""

from __future__ import annotations

import numpy as np
import pytest

import hba_lib.data.snippet_cache as sc
from hba_lib.data.snippet_cache import build_snippet_cache, load_snippet_cache
from hba_lib.data.video_io import (
    VideoDecodeError,
    intact_frame_count,
    read_all_frames,
    read_snippet,
)
from hba_lib.paths import REAL_DATA

needs_real = pytest.mark.skipif(
    not REAL_DATA.is_dir(), reason=f"real clips not present at {REAL_DATA} (../shared absent)"
)
UCF = REAL_DATA / "ucf101_avi" / "v_BaseballPitch_g01_c01.avi"
HMDB = REAL_DATA / "hmdb51_avi" / "RATRACE_wave_f_nm_np1_fr_goo_37.avi"
SIZE = 32


def _cut(src, n_bytes, folder, name=None):
    path = folder / (name or f"cut{n_bytes}_{src.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(src.read_bytes()[:n_bytes])
    return path


@needs_real
def test_whole_real_clips_decode_without_error():
    for src in (UCF, HMDB):
        n, err = intact_frame_count(src)
        assert err is None and n == len(read_all_frames(src, SIZE)[0])


@needs_real
def test_stream_cut_in_the_middle_keeps_only_its_intact_frames(tmp_path):
    path = _cut(UCF, UCF.stat().st_size // 2, tmp_path)
    all_cv, _, _ = read_all_frames(path, SIZE)  # OpenCV: "success", the last frames damaged
    n_ok, err = intact_frame_count(path)
    assert err is not None and 16 <= n_ok < len(all_cv)
    frames, info = read_snippet(path, 16, SIZE)
    assert info.n_decoded == n_ok and not info.looped
    assert any(f"after {n_ok} intact frames" in w for w in info.warnings)
    np.testing.assert_array_equal(frames, all_cv[:n_ok][info.indices])


@needs_real
def test_short_or_damaged_prefixes_are_refused(tmp_path):
    # a 20 KB prefix of an HMDB clip: OpenCV decodes one smeared frame
    head = _cut(HMDB, 20_000, tmp_path)
    assert len(read_all_frames(head, SIZE)[0]) == 1
    with pytest.raises(VideoDecodeError, match="decoding fails at the first frame"):
        read_snippet(head, 16, SIZE)
    # 40 KB: a few intact frames, fewer than 16
    short = _cut(HMDB, 40_000, tmp_path)
    n_ok, _ = intact_frame_count(short)
    assert 0 < n_ok < 16
    with pytest.raises(VideoDecodeError, match=f"only {n_ok} intact frames.*fewer than the 16"):
        read_snippet(short, 16, SIZE, min_frames=16)
    frames, info = read_snippet(short, 16, SIZE)  # without min_frames: looped, and flagged
    assert info.looped and info.n_decoded == n_ok and frames.shape[0] == 16


@needs_real
def test_cache_excludes_or_trims_truncated_clips_by_name(tmp_path, capsys):
    root = tmp_path / "videos"
    items = [
        ("good/whole.avi", 0),
        ("bad/prefix20k.avi", 1),
        ("bad/short40k.avi", 1),
        ("bad/halfway.avi", 0),
    ]
    (root / "good").mkdir(parents=True)
    (root / "good" / "whole.avi").write_bytes(UCF.read_bytes())
    _cut(HMDB, 20_000, root, "bad/prefix20k.avi")
    _cut(HMDB, 40_000, root, "bad/short40k.avi")
    _cut(UCF, UCF.stat().st_size // 2, root, "bad/halfway.avi")
    out = tmp_path / "cache"
    report = build_snippet_cache(items, root, out, ["a", "b"], size=SIZE, workers=1)
    printed = capsys.readouterr().out
    excluded = dict(report.excluded)
    assert set(excluded) == {"bad/prefix20k.avi", "bad/short40k.avi"}
    assert "decoding fails at the first frame" in excluded["bad/prefix20k.avi"]
    assert "fewer than the 16 required" in excluded["bad/short40k.avi"]
    assert any(name == "bad/halfway.avi" and "intact frames" in w for name, w in report.warnings)
    text = (out / "report.txt").read_text()
    for name in ("bad/prefix20k.avi", "bad/short40k.avi", "bad/halfway.avi"):
        assert name in printed and name in text
    videos, labels, meta = load_snippet_cache(out)
    assert meta["relpaths"] == ["good/whole.avi", "bad/halfway.avi"]
    assert (
        not any(meta["looped"])
        and meta["n_decoded"][1] == intact_frame_count(root / "bad/halfway.avi")[0]
    )


def test_interrupted_build_cache_says_what_was_kept_and_how_to_resume(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C in ``build-cache``: a message, exit status 130, no KeyboardInterrupt traceback."""
    import sys

    from hba_lib.data.real_datasets import make_fake_layout
    from hba_lib.paths import REPO_ROOT

    make_fake_layout("ucf101", tmp_path, hw=(32, 40))
    sys.path.insert(0, str(REPO_ROOT / "data_scripts"))
    try:
        import _cli
    finally:
        sys.path.remove(str(REPO_ROOT / "data_scripts"))
    real, calls = sc.read_snippet, []

    def ctrl_c_after_5(path, *a, **kw):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(path)
        return real(path, *a, **kw)

    monkeypatch.setattr(sc, "read_snippet", ctrl_c_after_5)
    argv = ["build-cache", "--root", str(tmp_path), "--size", "24", "--workers", "1", "--quiet"]
    code = _cli.main("ucf101", argv)
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted: 5 of 15 videos" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    monkeypatch.setattr(sc, "read_snippet", real)
    assert _cli.main("ucf101", argv) == 0  # resumes and finishes
