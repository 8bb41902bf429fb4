"""Snippet cache: one command end to end, resume after interruption, bad files excluded by name."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

import hba_lib.data.snippet_cache as sc
from hba_lib.data.real_datasets import UCF101, cache_dir, make_fake_layout
from hba_lib.data.snippet_cache import build_snippet_cache, load_snippet_cache
from hba_lib.data.video_io import read_snippet
from hba_lib.paths import REPO_ROOT

SIZE = 24


@pytest.fixture
def ucf_root(tmp_path):
    """A fabricated 20-video UCF-101 layout (5 classes x 4 videos; fold 1: 15 train, 5 test)."""
    make_fake_layout("ucf101", tmp_path, hw=(32, 40))
    return tmp_path


def _items(root, split="train"):
    from hba_lib.data.splits import read_ucf101_split

    sp = read_ucf101_split(root / "ucfTrainTestlist", 1)
    return sp.items(split), sp.classes


def test_one_command_builds_both_splits(ucf_root):
    cmd = [
        sys.executable,
        str(REPO_ROOT / "data_scripts" / "ucf101.py"),
        "build-cache",
        "--root",
        str(ucf_root),
        "--fold",
        "1",
        "--size",
        str(SIZE),
        "--workers",
        "2",
        "--quiet",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "15 videos listed, 15 cached, 0 excluded" in res.stdout
    assert "5 videos listed, 5 cached, 0 excluded" in res.stdout
    for split, n in (("train", 15), ("test", 5)):
        videos, labels, meta = load_snippet_cache(cache_dir("ucf101", ucf_root, split, 1, SIZE))
        assert videos.shape == (n, 16, SIZE, SIZE, 3) and videos.dtype == np.uint8
        assert labels.dtype == np.int64 and len(meta["relpaths"]) == n
        first = ucf_root / "UCF-101" / meta["relpaths"][0]
        np.testing.assert_array_equal(videos[0], read_snippet(first, 16, SIZE)[0])
    # all 20 videos once, none in both splits, every label its folder's class
    ds_tr, ds_te = (
        UCF101("train", root=ucf_root, size=SIZE),
        UCF101("test", root=ucf_root, size=SIZE),
    )
    assert len(set(ds_tr.names) | set(ds_te.names)) == 20 and not set(ds_tr.names) & set(
        ds_te.names
    )
    for ds in (ds_tr, ds_te):
        assert all(ds.classes[y] == n.split("/")[0] for n, y in zip(ds.names, ds.labels))


def test_resume_after_interruption_does_not_redo_finished_videos(ucf_root, tmp_path, monkeypatch):
    items, classes = _items(ucf_root)
    calls: list[str] = []
    real = sc.read_snippet

    def counting(path, *a, stop_after=None, **kw):
        if stop_after is not None and len(calls) >= stop_after:
            raise KeyboardInterrupt  # simulate Ctrl-C after k videos
        calls.append(str(path))
        return real(path, *a, **kw)

    out = tmp_path / "cache"
    k = 6
    monkeypatch.setattr(sc, "read_snippet", lambda p, *a, **kw: counting(p, *a, stop_after=k, **kw))
    with pytest.raises(KeyboardInterrupt):
        build_snippet_cache(
            items,
            ucf_root / "UCF-101",
            out,
            classes,
            size=SIZE,
            workers=1,
            progress=False,
            flush_every=4,
        )
    assert len(calls) == k and not sc.is_complete(out)
    assert len((out / "progress.jsonl").read_text().splitlines()) == k
    first_run = list(calls)

    calls.clear()
    monkeypatch.setattr(sc, "read_snippet", lambda p, *a, **kw: counting(p, *a, **kw))
    report = build_snippet_cache(
        items, ucf_root / "UCF-101", out, classes, size=SIZE, workers=1, progress=False
    )
    assert len(calls) == len(items) - k and not set(calls) & set(first_run)
    assert (report.decoded_now, report.already_done, report.n_cached) == (len(items) - k, k, 15)

    calls.clear()  # a finished cache: nothing decoded at all
    again = build_snippet_cache(
        items, ucf_root / "UCF-101", out, classes, size=SIZE, progress=False
    )
    assert calls == [] and again.decoded_now == 0

    fresh = tmp_path / "fresh"  # the resumed cache equals an uninterrupted build
    build_snippet_cache(
        items, ucf_root / "UCF-101", fresh, classes, size=SIZE, workers=1, progress=False
    )
    a, la, ma = load_snippet_cache(out)
    b, lb, mb = load_snippet_cache(fresh)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert ma["relpaths"] == mb["relpaths"]


def test_bad_files_are_reported_by_name_and_excluded(ucf_root, capsys):
    items, classes = _items(ucf_root)
    vroot = ucf_root / "UCF-101"
    bad = {
        items[0].relpath: "zero-length",
        items[1].relpath: "corrupt",
        items[2].relpath: "truncated",
        items[3].relpath: "missing",
        items[4].relpath: "empty",
    }
    data = (vroot / items[5].relpath).read_bytes()
    (vroot / items[0].relpath).write_bytes(b"")
    (vroot / items[1].relpath).write_bytes(np.random.default_rng(0).bytes(4000))
    (vroot / items[2].relpath).write_bytes(data[:200])
    (vroot / items[3].relpath).unlink()
    w = cv2.VideoWriter(
        str(vroot / items[4].relpath), cv2.VideoWriter_fourcc(*"MJPG"), 25, (40, 32)
    )
    w.release()  # a valid container with no frame
    out = cache_dir("ucf101", ucf_root, "train", 1, SIZE)
    report = build_snippet_cache(items, vroot, out, classes, size=SIZE, workers=1)
    printed = capsys.readouterr().out
    excluded = dict(report.excluded)
    assert set(excluded) == set(bad)
    for rel in excluded:
        assert rel in printed and rel in (out / "report.txt").read_text()
    assert "zero-length" in excluded[items[0].relpath]
    assert "no such file" in excluded[items[3].relpath]
    assert "no decodable frames" in excluded[items[4].relpath]
    videos, labels, meta = load_snippet_cache(out)
    assert len(videos) == len(items) - len(excluded) == report.n_cached
    assert not set(meta["relpaths"]) & set(excluded)
    assert [e["relpath"] for e in meta["excluded"]] == [r for r, _ in report.excluded]
    label_of = {it.relpath: it.label for it in items}
    assert labels.tolist() == [label_of[r] for r in meta["relpaths"]]
    with pytest.warns(UserWarning, match=r"5 listed videos could not be decoded"):
        ds = UCF101("train", root=ucf_root, size=SIZE)
    assert len(ds) == len(items) - 5


def test_wrong_root_and_changed_inputs(ucf_root, tmp_path):
    items, classes = _items(ucf_root)
    with pytest.raises(FileNotFoundError, match="wrong --root"):
        build_snippet_cache(items, tmp_path / "nowhere", tmp_path / "c1", classes, progress=False)
    out = tmp_path / "c2"
    build_snippet_cache(
        items[:3], ucf_root / "UCF-101", out, classes, size=SIZE, workers=1, progress=False
    )
    with pytest.raises(ValueError, match="other videos or parameters"):
        build_snippet_cache(
            items[:4], ucf_root / "UCF-101", out, classes, size=SIZE, progress=False
        )
