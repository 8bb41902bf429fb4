"""A folder of real video files as a data set (issue 16 (3)): ``get_dataset("clips", root=...)``.

Labels from a mapping or from a model's own clean prediction; the real action clips of
``../shared/real_data`` labelled by MoViNet-A0 (skipped without ``../shared`` or the runtime).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hba_lib import paths
from hba_lib.attacks import attack_set
from hba_lib.data import get_dataset
from hba_lib.data.video_io import write_video
from hba_lib.paths import REAL_DATA

CLIPS = REAL_DATA / "action_clips"
MOVINET = paths.SHARED / "models" / "movinet_a0_stream_int8_k600" / "movinet_int8.tflite"


class Brightness(nn.Module):
    """Three classes by mean brightness (dark, mid, bright), sharper the farther from a border."""

    classes = ["dark", "mid", "bright"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([-(m - 0.15).abs(), -(m - 0.5).abs(), -(m - 0.85).abs()], 1) * 40


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for name, level in [("a_dark.avi", 30), ("b_mid.avi", 128), ("c_bright.avi", 220),
                        ("d_grey.avi", 90)]:  # fmt: skip
        frames = np.clip(level + rng.integers(-10, 10, (20, 40, 50, 3)), 0, 255).astype(np.uint8)
        write_video(tmp_path / name, frames)
    (tmp_path / "notes.txt").write_text("not a video")
    return tmp_path


def test_labels_from_the_models_own_prediction(folder):
    ds = get_dataset("clips", root=folder, model=Brightness(), size=32)
    assert ds.names == ["a_dark.avi", "b_mid.avi", "c_bright.avi", "d_grey.avi"]
    assert ds.classes == Brightness.classes
    assert [ds.classes[y] for y in ds.labels] == ["dark", "mid", "bright", "mid"]
    assert ds.videos.shape == (4, 16, 32, 32, 3) and ds.videos.dtype == np.uint8
    x, y = ds[2]
    assert x.shape == (3, 16, 32, 32) and x.dtype == torch.float32 and y == 2
    assert np.array_equal(ds.predictions, ds.labels) and (ds.confidences > 0.3).all()
    # confident clips only: the grey one sits between two classes
    confident = get_dataset("clips", root=folder, model=Brightness(), size=32, min_confidence=0.9)
    assert confident.names == ["a_dark.avi", "b_mid.avi", "c_bright.avi"]
    assert (confident.confidences >= 0.9).all()


def test_labels_from_a_mapping_win_over_the_model(folder):
    labels = {"a_dark.avi": "bright", "b_mid": "mid", "c_bright.avi": 0, "d_grey.avi": "dark"}
    ds = get_dataset("clips", root=folder, labels=labels, model=Brightness(), size=24)
    assert [ds.classes[y] for y in ds.labels] == ["bright", "mid", "dark", "dark"]
    assert [ds.classes[y] for y in ds.predictions] == ["dark", "mid", "bright", "mid"]
    only_mapping = get_dataset("clips", root=folder, labels=labels, classes=Brightness.classes)
    assert list(only_mapping.labels) == [2, 1, 0, 0] and only_mapping.predictions is None
    with pytest.raises(ValueError, match="no label for"):
        get_dataset("clips", root=folder, labels={"a_dark.avi": "dark"}, classes=["dark"])
    with pytest.raises(ValueError, match="not one of the classes"):
        get_dataset("clips", root=folder, labels={k: "fog" for k in labels}, classes=["dark"])


def test_bad_folders_and_files_say_so(folder, tmp_path_factory):
    (folder / "e_broken.mp4").write_bytes(b"\x00" * 500)
    with pytest.warns(UserWarning, match="1 of 5 video files .* could not be decoded"):
        ds = get_dataset("clips", root=folder, model=Brightness(), size=16)
    assert len(ds) == 4 and list(ds.excluded) == ["e_broken.mp4"]
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ValueError, match="no video files"):
        get_dataset("clips", root=empty, model=Brightness())
    with pytest.raises(FileNotFoundError, match="clip folder not found"):
        get_dataset("clips", root=empty / "nope", model=Brightness())
    with pytest.raises(ValueError, match="labels .* or a model"):
        get_dataset("clips", root=folder)


def test_an_attack_set_over_clips(folder):
    model = Brightness()
    ds = get_dataset("clips", root=folder, model=model, size=16)
    chosen = attack_set(ds, model, n=2, num_candidates=2)
    assert len(chosen.indices) == 2
    for i, cands in zip(chosen.indices, chosen.candidates):
        with torch.no_grad():
            assert not (model(cands).argmax(1) == int(ds.labels[i])).any()
    sure = ds.surest(2)  # the clips the model is most sure of, surest first
    assert ds.confidences[sure[0]] >= ds.confidences[sure[1]] >= sorted(ds.confidences)[-2]
    assert attack_set(ds, model, 0, num_candidates=2, indices=sure).indices == sure
    assert ds.surest(2, skip=1) == ds.surest(3)[1:] and ds.surest(1, skip=3) == ds.surest(4)[3:]
    assert ds.surest(9) == ds.surest(4) and ds.surest(2, skip=3) == ds.surest(4)[3:]
    with pytest.raises(ValueError, match="skip = 4"):
        ds.surest(1, skip=4)
    with pytest.raises(ValueError, match="loaded with a model"):
        labels = {"a_dark.avi": 0, "b_mid.avi": 1, "c_bright.avi": 2, "d_grey.avi": 1}
        get_dataset("clips", root=folder, labels=labels, classes=Brightness.classes).surest(1)


UCF = REAL_DATA / "ucf101_avi"


@pytest.mark.skipif(not UCF.is_dir(), reason=f"real clips not present at {UCF} (../shared)")
def test_real_clips_labelled_by_a_mapping_without_a_model():
    from hba_lib.data.splits import read_ucf101_classes

    classes = read_ucf101_classes(REAL_DATA / "ucfTrainTestlist")
    labels = {
        "v_ApplyEyeMakeup_g01_c01": "ApplyEyeMakeup",
        "v_BaseballPitch_g01_c01": "BaseballPitch",
    }
    ds = get_dataset("clips", root=UCF, labels=labels, classes=classes, size=48)
    assert ds.names == ["v_ApplyEyeMakeup_g01_c01.avi", "v_BaseballPitch_g01_c01.avi"]
    assert [ds.classes[y] for y in ds.labels] == ["ApplyEyeMakeup", "BaseballPitch"]
    assert list(ds.labels) == [0, 6] and len(ds.classes) == 101
    assert ds.videos.shape == (2, 16, 48, 48, 3) and ds.videos.std() > 10  # real pixels


@pytest.mark.skipif(not CLIPS.is_dir(), reason=f"real clips not present at {CLIPS} (../shared)")
@pytest.mark.skipif(not MOVINET.is_file(), reason=f"MoViNet not present at {MOVINET}")
def test_real_clips_labelled_by_movinet():
    pytest.importorskip("ai_edge_litert", reason="no LiteRT runtime (extra 'real')")
    from hba_lib.models import build_model

    model = build_model("movinet_a0", path=MOVINET, workers=2)
    ds = get_dataset("clips", root=CLIPS, model=model, min_confidence=0.8)
    top1 = {  # ../shared/real_data/action_clips/kinetics600_top3.txt: top-1 with p >= 0.8
        "arm_wrestling_k400.mp4": "arm wrestling",
        "cleaning_pool_k400.mp4": "cleaning pool",
        "using_segway_k400_R6llTwEh07w.mp4": "using segway",
        "horse_riding_ucf101_v_HorseRiding_g01_c03.mp4": "riding or walking with horse",
        "ice_dancing_ucf101_v_IceDancing_g02_c05.mp4": "ice skating",
        "hitting_baseball.mp4": "hitting baseball",
        "playing_guitar_bass.mp4": "playing bass guitar",
    }
    got = {n: ds.classes[y] for n, y in zip(ds.names, ds.labels)}
    assert {n: got[n] for n in top1 if n in got} == top1 and set(top1) <= set(got)
    assert ds.videos.shape[1:] == (16, 112, 112, 3) and len(ds.classes) == 600
    assert (ds.confidences >= 0.8).all()


def test_missing_clips_says_what_is_missing_and_how_to_get_it(folder, tmp_path):
    from hba_lib.data.clips import missing_clips

    assert missing_clips(folder) is None
    assert "does not exist" in missing_clips(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    message = missing_clips(tmp_path / "empty")
    assert "holds no video file" in message and "SOURCES.txt" in message
