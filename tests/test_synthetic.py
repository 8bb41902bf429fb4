"""The embedded synthetic action data set: determinism, shapes, balance, and that only time tells."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hba_lib.data import get_dataset, synthetic

K = len(synthetic.CLASSES)


def test_deterministic_per_seed():
    a, la = synthetic.generate("train", size=32, n_per_class=2, seed=7)
    b, lb = synthetic.generate("train", size=32, n_per_class=2, seed=7)
    c, _ = synthetic.generate("train", size=32, n_per_class=2, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_shapes_dtype_and_classes():
    videos, labels = synthetic.generate("test", size=40, n_per_class=2, seed=0)
    assert videos.shape == (2 * K, 16, 40, 40, 3) and videos.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(K))
    assert K >= 10 and len(set(synthetic.CLASSES)) == K
    assert videos.std() > 10  # not blank


def test_paper_scale_clip():
    clip = synthetic.generate_clip(0, np.random.default_rng(0), size=112)
    assert clip.shape == (16, 112, 112, 3) and clip.dtype == np.uint8


def test_dataset_interface_and_balance(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.paths, "CACHE", tmp_path)
    ds = get_dataset("synthetic", "train", size=32, n_per_class=3, seed=0)
    assert len(ds) == 3 * K and ds.num_classes == K
    video, label = ds[5]
    assert isinstance(video, torch.Tensor) and video.dtype == torch.float32
    assert tuple(video.shape) == (3, 16, 32, 32)
    assert 0.0 <= float(video.min()) and float(video.max()) <= 1.0
    assert label == int(ds.labels[5])
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=K), np.full(K, 3))
    torch.testing.assert_close(video[:, 2], torch.as_tensor(ds.videos[5, 2]).permute(2, 0, 1) / 255)


def test_train_and_test_differ_and_default_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.paths, "CACHE", tmp_path)
    tr = synthetic.SyntheticActions("train", size=32, n_per_class=2)
    te = synthetic.SyntheticActions("test", size=32, n_per_class=2)
    va = synthetic.SyntheticActions("val", size=32, n_per_class=2)
    for a, b in ((tr, te), (tr, va), (te, va)):
        assert not any(np.array_equal(a.videos[i], b.videos[i]) for i in range(len(b)))
    assert synthetic.DEFAULT_N_PER_CLASS == {"train": 100, "test": 30, "val": 30}
    with pytest.raises(ValueError, match="'val'"):
        synthetic.SyntheticActions("valid", size=32, n_per_class=1)
    from hba_lib.data import get_dataset

    got = get_dataset("synthetic", "val", size=32, n_per_class=2)
    assert np.array_equal(got.videos, va.videos)
    with pytest.raises(ValueError, match="'ucf101'.*'val'"):  # only the synthetic set has one
        get_dataset("ucf101", "val")


def test_cache_round_trip_and_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.paths, "CACHE", tmp_path)
    cfg = synthetic.SyntheticConfig("test", size=32, n_per_class=1, seed=3)
    v1, l1 = synthetic.load_split(cfg)
    files = list((tmp_path / "synthetic").glob("*.npz"))
    assert len(files) == 1
    v2, l2 = synthetic.load_split(cfg)
    np.testing.assert_array_equal(v1, v2)
    files[0].write_bytes(b"not an npz file")
    v3, _ = synthetic.load_split(cfg)
    np.testing.assert_array_equal(v1, v3)


def test_two_builders_of_one_split_at_once_both_succeed(tmp_path, monkeypatch):
    """Two processes that build the same split at the same time (two benchmarks started
    together) must both get it: here the second builds, writes and renames its file while the
    first is between its write and its rename (what crashed with a shared temporary name)."""
    monkeypatch.setattr(synthetic.paths, "CACHE", tmp_path)
    cfg = synthetic.SyntheticConfig("test", size=32, n_per_class=1, seed=4)
    savez, nested = np.savez, []

    def savez_then_other_builder(file, **arrays):
        savez(file, **arrays)
        if not nested:
            nested.append(file)
            monkeypatch.setattr(synthetic.paths.os, "getpid", lambda: -1)  # the other process
            nested.append(synthetic.load_split(cfg))

    monkeypatch.setattr(synthetic.np, "savez", savez_then_other_builder)
    videos, labels = synthetic.load_split(cfg)
    np.testing.assert_array_equal(videos, nested[1][0])
    np.testing.assert_array_equal(labels, nested[1][1])
    folder = tmp_path / "synthetic"
    assert [f.name for f in folder.iterdir()] == [f"test_32px_{cfg.key()}.npz"]  # no leftovers
    with np.load(folder / f"test_32px_{cfg.key()}.npz") as z:
        np.testing.assert_array_equal(z["videos"], videos)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "valid"}, "split"),
        ({"n_per_class": 0}, "n_per_class"),
        ({"size": 8}, "size"),
        ({"num_frames": 2}, "num_frames"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic.generate(**{"split": "train", "n_per_class": 1, **kwargs})


# --- only time tells the class -------------------------------------------------------------


def _tracks(n_per_class: int, seed: int, size: int = 32):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(K):
        for _ in range(n_per_class):
            out.append((k, synthetic._track(k, rng, size, 16)))
    return out


def _frame_state(track, t):
    """What one frame shows of the object: where it is, how big, its orientation."""
    a = np.deg2rad(track.angle[t])
    return np.array([track.cx[t], track.cy[t], track.radius[t], np.cos(a), np.sin(a)])


def _motion(track):
    """How the object moves: mean and spread of its per-frame changes, and its turning."""
    dx, dy = np.diff(track.cx), np.diff(track.cy)
    da, dr = np.diff(track.angle), np.diff(np.log(track.radius))
    turn = dx[:-1] * dy[1:] - dy[:-1] * dx[1:]
    return np.array(
        [
            dx.mean(),
            dy.mean(),
            np.abs(dx).mean(),
            np.abs(dy).mean(),
            da.mean(),
            dr.mean(),
            turn.mean(),
        ]
    )


def _knn_accuracy(xtr, ytr, xte, yte, k=7):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    d = ((xte[:, None] - xtr[None]) ** 2).sum(-1)
    nn = np.argsort(d, axis=1)[:, :k]
    pred = np.array([np.bincount(ytr[row], minlength=K).argmax() for row in nn])
    return float((pred == yte).mean())


def test_single_frame_is_chance_but_motion_separates_classes():
    """The label is a function of the motion, not of what any one frame shows.

    A k-NN classifier on the object's state in one random frame (position, size,
    orientation) is near chance (1/K); the same classifier on the object's motion over the
    clip is near perfect.
    """
    rng = np.random.default_rng(0)
    train, test = _tracks(80, seed=1), _tracks(40, seed=2)
    ytr = np.array([k for k, _ in train])
    yte = np.array([k for k, _ in test])
    frame_tr = np.stack([_frame_state(tr, rng.integers(16)) for _, tr in train])
    frame_te = np.stack([_frame_state(tr, rng.integers(16)) for _, tr in test])
    motion_tr = np.stack([_motion(tr) for _, tr in train])
    motion_te = np.stack([_motion(tr) for _, tr in test])
    frame_acc = _knn_accuracy(frame_tr, ytr, frame_te, yte)
    motion_acc = _knn_accuracy(motion_tr, ytr, motion_te, yte)
    assert frame_acc < 2.0 / K, f"one frame tells the class too often: {frame_acc:.2f}"
    assert motion_acc > 0.95, f"motion does not separate the classes: {motion_acc:.2f}"


def test_single_pixel_frame_classifier_is_chance(tmp_path, monkeypatch):
    """Pixels of one random frame: a nearest-class-mean classifier on them stays near chance."""
    monkeypatch.setattr(synthetic.paths, "CACHE", tmp_path)
    tr = synthetic.SyntheticActions("train", size=32, n_per_class=40, seed=5)
    te = synthetic.SyntheticActions("test", size=32, n_per_class=20, seed=5)
    rng = np.random.default_rng(0)

    def one_frame(ds):
        t = rng.integers(16, size=len(ds))
        f = ds.videos[np.arange(len(ds)), t].astype(np.float32) / 255  # [N, H, W, C]
        f = f.reshape(len(ds), 8, 4, 8, 4, 3).mean((2, 4))  # 8x8 colour thumbnails
        return f.reshape(len(ds), -1)

    xtr, xte = one_frame(tr), one_frame(te)
    means = np.stack([xtr[tr.labels == k].mean(0) for k in range(K)])
    pred = ((xte[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    acc = float((pred == te.labels).mean())
    assert acc < 2.0 / K, f"a one-frame pixel classifier beats chance: {acc:.2f}"
