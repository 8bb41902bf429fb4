"""UCF101 / HMDB51 datasets over the snippet cache, normalisation constants, jpg-folder loader."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from hba_lib.data import get_dataset
from hba_lib.data.real_datasets import (
    HMDB51,
    HMDB51_MEAN,
    HMDB51_STD,
    UCF101,
    UCF101_MEAN,
    UCF101_STD,
    JpgFolderDataset,
    make_fake_layout,
)
from hba_lib.data.splits import VideoItem
from hba_lib.data.video_io import read_snippet
from hba_lib.paths import REAL_DATA

SIZE = 24


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_get_dataset_interface_matches_synthetic(tmp_path, name):
    fake = make_fake_layout(name, tmp_path, hw=(32, 40))
    ds = get_dataset(name, "test", root=tmp_path, size=SIZE, build=True, workers=1)
    assert isinstance(ds, UCF101 if name == "ucf101" else HMDB51)
    assert ds.classes == fake.classes and len(ds) == len(fake.test)
    assert ds.videos.dtype == np.uint8 and ds.videos.shape == (len(ds), 16, SIZE, SIZE, 3)
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [v.label for v in fake.test]
    x, y = ds[1]
    assert x.dtype == torch.float32 and x.shape == (3, 16, SIZE, SIZE)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and isinstance(y, int)
    np.testing.assert_allclose(x.permute(1, 2, 3, 0).numpy() * 255, ds.videos[1], atol=1e-3)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 3, 16, SIZE, SIZE)


def test_missing_cache_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_scripts/hmdb51.py build-cache"):
        HMDB51("train", fold=2, root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        UCF101("val", root=tmp_path)


def test_normalisation_constants_are_the_3d_resnets_means():
    x = torch.rand(3, 16, 8, 8)
    for mean, std, m255 in (
        (UCF101_MEAN, UCF101_STD, (101.2198, 97.5751, 89.5303)),
        (HMDB51_MEAN, HMDB51_STD, (95.4070, 93.4680, 82.1443)),
    ):
        m, s = torch.tensor(mean)[:, None, None, None], torch.tensor(std)[:, None, None, None]
        ref = x * 255 - torch.tensor(m255)[:, None, None, None]  # 0-255 minus mean, no std
        torch.testing.assert_close((x - m) / s, ref, rtol=1e-5, atol=1e-3)
    assert UCF101.MEAN == UCF101_MEAN and HMDB51.STD == HMDB51_STD


def _jpg_layout(tmp_path):
    """root/<label>/<video>/image_%05d.jpg + n_frames, from the real C3D frames when present."""
    root = tmp_path / "jpg"
    real = REAL_DATA / "ucf101_frames" / "v_ApplyEyeMakeup_g01_c01"
    dst = root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01"
    dst.mkdir(parents=True)
    if real.is_dir():
        for i, f in enumerate(sorted(real.glob("*.jpg")), 1):
            shutil.copy(f, dst / f"image_{i:05d}.jpg")
    else:
        for i in range(1, 41):
            cv2.imwrite(str(dst / f"image_{i:05d}.jpg"), np.full((24, 32, 3), 5 * i, np.uint8))
    n = len(list(dst.iterdir()))
    (dst / "n_frames").write_text(str(n + 1))  # a claim that is off by one: not trusted
    other = root / "Archery" / "v_Archery_g01_c01"
    other.mkdir(parents=True)
    for i in range(1, 9):  # 8 frames: looped
        cv2.imwrite(str(other / f"image_{i:05d}.jpg"), np.full((24, 32, 3), 20 * i, np.uint8))
    return root, dst, n


def test_jpg_folder_dataset(tmp_path):
    root, folder, n = _jpg_layout(tmp_path)
    ds = JpgFolderDataset(root, size=SIZE)
    assert ds.classes == ["ApplyEyeMakeup", "Archery"] and ds.labels.tolist() == [0, 1]
    assert ds.videos.shape == (2, 16, SIZE, SIZE, 3) and len(ds) == 2
    frames, info = read_snippet(folder, 16, SIZE)
    assert info.n_decoded == n and info.n_header == n + 1
    np.testing.assert_array_equal(ds.videos[0], frames)
    x, y = ds[1]
    assert x.shape == (3, 16, SIZE, SIZE) and y == 1
    assert ds.videos[0:2].shape == (2, 16, SIZE, SIZE, 3)


def test_jpg_folder_dataset_with_split_items(tmp_path):
    root, _, _ = _jpg_layout(tmp_path)
    items = [VideoItem("Archery/v_Archery_g01_c01.avi", 1)]
    ds = JpgFolderDataset(root, classes=["ApplyEyeMakeup", "Archery"], items=items, size=SIZE)
    assert len(ds) == 1 and ds.labels.tolist() == [1]
    with pytest.raises(FileNotFoundError, match="v_Archery_g02_c01"):
        JpgFolderDataset(root, items=[VideoItem("Archery/v_Archery_g02_c01.avi", 1)])
