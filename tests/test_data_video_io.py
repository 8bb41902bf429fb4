"""Decoding: real clips and jpg folders to 16 uniform 112x112 frames; bad files fail by name."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hba_lib.data.video_io import (
    SnippetInfo,
    VideoDecodeError,
    read_all_frames,
    read_snippet,
    uniform_indices,
    write_video,
)
from hba_lib.paths import REAL_DATA

needs_real = pytest.mark.skipif(
    not REAL_DATA.is_dir(), reason=f"real clips not present at {REAL_DATA} (../shared absent)"
)
REAL_CLIPS = sorted(REAL_DATA.glob("*_avi/*.avi")) + sorted(REAL_DATA.glob("ucf101_frames/*"))


def test_uniform_indices_cover_the_clip():
    assert uniform_indices(16).tolist() == list(range(16))
    for n in (17, 31, 72, 164, 1800):
        idx = uniform_indices(n)
        assert len(idx) == 16 and np.all(np.diff(idx) > 0)
        seg = n / 16  # one index inside each of 16 equal segments
        assert np.all(idx >= np.floor(np.arange(16) * seg)) and np.all(idx < np.arange(1, 17) * seg)
    assert uniform_indices(164).tolist()[:3] == [5, 15, 25]


def test_uniform_indices_loop_short_clips():
    assert uniform_indices(5).tolist() == [0, 1, 2, 3, 4] * 3 + [0]
    assert uniform_indices(1, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="0 frames"):
        uniform_indices(0)


@needs_real
@pytest.mark.parametrize("path", REAL_CLIPS, ids=lambda p: p.name)
def test_every_real_clip_decodes_to_16_uniform_112px_frames(path):
    frames, info = read_snippet(path)
    assert isinstance(info, SnippetInfo)
    assert frames.shape == (16, 112, 112, 3) and frames.dtype == np.uint8
    assert not info.looped and info.n_decoded >= 16
    assert info.indices == uniform_indices(info.n_decoded).tolist()
    if info.n_header is not None:  # headers may claim one frame more than is really there
        assert info.n_decoded <= info.n_header <= info.n_decoded + 1
    all_frames, _, hw = read_all_frames(path)
    assert len(all_frames) == info.n_decoded and hw in ((240, 320), (240, 560))
    np.testing.assert_array_equal(frames, all_frames[info.indices])
    assert frames.std() > 5  # real content, not a blank


@needs_real
def test_real_clip_header_overcounts_and_is_not_trusted():
    path = REAL_DATA / "hmdb51_avi" / "RATRACE_wave_f_nm_np1_fr_goo_37.avi"
    _, info = read_snippet(path)
    assert (info.n_header, info.n_decoded) == (73, 72)
    assert max(info.indices) < 72


@needs_real
def test_avi_and_its_jpg_frames_agree():
    _, a = read_snippet(REAL_DATA / "ucf101_avi" / "v_ApplyEyeMakeup_g01_c01.avi")
    fr, j = read_snippet(REAL_DATA / "ucf101_frames" / "v_ApplyEyeMakeup_g01_c01")
    assert (a.n_decoded, j.n_decoded, j.n_header) == (164, 165, None)
    # RGB order: the frame is a warm indoor scene, red channel brighter than blue on average
    assert fr[..., 0].mean() > fr[..., 2].mean()


def test_short_clip_is_looped_and_flagged(tmp_path):
    clip = np.zeros((10, 48, 64, 3), np.uint8)
    clip[:, :, :, 0] = (np.arange(10) * 25)[:, None, None]  # frame t has red = 25 t
    path = write_video(tmp_path / "short.avi", clip)
    frames, info = read_snippet(path, size=32)
    assert frames.shape == (16, 32, 32, 3)
    assert info.looped and info.n_decoded == 10 and info.indices[10:] == [0, 1, 2, 3, 4, 5]
    assert any("looped" in w for w in info.warnings)
    np.testing.assert_allclose(frames[:, 16, 16, 0], np.arange(16) % 10 * 25, atol=12)


def test_resize_is_short_side_then_centre_crop(tmp_path):
    clip = np.zeros((16, 40, 80, 3), np.uint8)
    clip[:, :, 20:60] = 200  # the centre square of the 40x80 frame is bright, the sides dark
    frames, _ = read_snippet(write_video(tmp_path / "wide.avi", clip), size=20)
    assert frames.shape == (16, 20, 20, 3)
    assert frames[:, 2:-2, 2:-2].min() > 150


def _valid_avi(tmp_path, n=30):
    rng = np.random.default_rng(0)
    return write_video(tmp_path / "good.avi", rng.integers(0, 255, (n, 48, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", ["zero-length", "corrupt", "empty", "tiny-truncated", "missing"])
def test_bad_files_raise_an_error_naming_the_file(tmp_path, kind):
    data = _valid_avi(tmp_path).read_bytes()
    path = tmp_path / f"{kind}.avi"
    if kind == "zero-length":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    elif kind == "empty":  # a valid container holding no frame
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
        w.release()
    elif kind == "tiny-truncated":
        path.write_bytes(data[:300])
    with pytest.raises(VideoDecodeError, match=path.name):
        read_snippet(path)


def test_truncated_file_decodes_what_is_there_and_warns(tmp_path):
    data = _valid_avi(tmp_path).read_bytes()
    path = tmp_path / "trunc.avi"
    path.write_bytes(data[: len(data) // 2])
    frames, info = read_snippet(path, size=32)
    assert 0 < info.n_decoded < 30 and info.n_header == 30
    assert info.header_mismatch and any("header claims 30" in w for w in info.warnings)
    assert frames.shape == (16, 32, 32, 3)


def test_jpg_folder_bad_inputs(tmp_path):
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="no images"):
        read_snippet(empty)
    folder = tmp_path / "v"
    folder.mkdir()
    for t in range(1, 21):
        cv2.imwrite(str(folder / f"image_{t:05d}.jpg"), np.full((24, 32, 3), t * 10, np.uint8))
    (folder / "n_frames").write_text("25")  # a wrong claim: 20 images are there
    frames, info = read_snippet(folder, size=16)
    assert (info.n_decoded, info.n_header) == (20, 25) and info.header_mismatch
    np.testing.assert_allclose(frames[:, 8, 8, 0], (uniform_indices(20) + 1) * 10, atol=3)
    (folder / "image_00007.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoDecodeError, match="image_00007.jpg"):
        read_snippet(folder)


def _latin1_titled_avi(path, n=24):
    """An MJPG .avi whose container title is Latin-1 bytes (not UTF-8), as in some HMDB-51 clips:
    written with PyAV under a UTF-8 title, then that title's bytes patched in place."""
    import av

    title = "Caf\u00e9 cartwheel"
    with av.open(str(path), "w") as out:
        out.metadata["title"] = title
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        rng = np.random.default_rng(0)
        for _ in range(n):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    data = path.read_bytes()
    utf8, latin1 = title.encode("utf-8"), title.encode("latin-1") + b" "  # same length
    assert data.count(utf8) == 1
    path.write_bytes(data.replace(utf8, latin1))
    return path


def test_non_utf8_metadata_is_no_damage_every_frame_is_kept(tmp_path):
    """Issue 16 (6): PyAV raised UnicodeDecodeError on the Latin-1 title, and the decode check
    refused the intact clip ("decoding fails at the first frame")."""
    import av

    path = _latin1_titled_avi(tmp_path / "latin1_title.avi", n=24)
    with pytest.raises(UnicodeDecodeError):  # what the default (strict) metadata reading does
        av.open(str(path)).close()
    frames, info = read_snippet(path, size=32)
    assert info.n_decoded == 24 and not info.warnings, info
    assert frames.shape == (16, 32, 32, 3)
    every, _, _ = read_all_frames(path, size=32)
    assert len(every) == 24
