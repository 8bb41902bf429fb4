"""Saliency masks: the torch spectral residual agrees with OpenCV's; masks keep round(phi*H*W)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hba_lib.data import get_dataset, synthetic
from hba_lib.data.video import to_model_layout
from hba_lib.heuristics import saliency as sal
from hba_lib.heuristics.saliency import (
    keep_count,
    mask_overlap,
    saliency_maps,
    saliency_mask,
    top_phi_mask,
)
from hba_lib.paths import REAL_DATA

torch.set_num_threads(1)
cv2.setNumThreads(1)

PHIS = (0.2, 0.4, 0.6, 0.8)
MIN_AGREEMENT = 0.95
REAL_SOURCES = {
    "ucf101_frames": "ucf101_frames/v_ApplyEyeMakeup_g01_c01",
    "ucf101_avi": "ucf101_avi/*.avi",
    "hmdb51_avi": "hmdb51_avi/*.avi",
}
needs_real = pytest.mark.skipif(
    not REAL_DATA.is_dir(), reason=f"real clips not present at {REAL_DATA} (../shared absent)"
)


def _agreement(videos: torch.Tensor, phi: float) -> float:
    """Share of OpenCV's selected pixels that the torch mask also selects, over all frames."""
    ref = saliency_mask(videos, phi, backend="opencv")
    ours = saliency_mask(videos, phi, backend="torch")
    return mask_overlap(ref, ours)


def _check_agreement(name: str, videos: torch.Tensor) -> None:
    """Assert (and print) the torch/OpenCV mask agreement for every phi."""
    scores = {phi: _agreement(videos, phi) for phi in PHIS}
    print(f"{name}: " + ", ".join(f"phi {p}: {s:.4%}" for p, s in scores.items()))
    for phi, score in scores.items():
        assert score >= MIN_AGREEMENT, f"{name} phi={phi}: only {score:.2%} of pixels agree"


def _random_video(c: int = 3, t: int = 4, h: int = 20, w: int = 30, seed: int = 0) -> torch.Tensor:
    """A random float video in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((c, t, h, w), generator=g)


@pytest.fixture(scope="module")
def synthetic_32() -> torch.Tensor:
    """24 synthetic test clips at 32 px, ``[B, C, T, H, W]``."""
    ds = get_dataset("synthetic", "test", size=32, n_per_class=2)
    return to_model_layout(ds.videos)


@pytest.mark.parametrize("size,n_per_class", [(32, 2), (112, 1)])
def test_torch_matches_opencv_on_synthetic(size, n_per_class):
    ds = get_dataset("synthetic", "test", size=size, n_per_class=n_per_class)
    _check_agreement(f"synthetic {size}px", to_model_layout(ds.videos))


@needs_real
@pytest.mark.parametrize("source", sorted(REAL_SOURCES))
def test_torch_matches_opencv_on_real_clips(source):
    from hba_lib.data.video_io import read_snippet

    paths = sorted(REAL_DATA.glob(REAL_SOURCES[source]))
    if not paths:
        pytest.skip(f"no {source} clips under {REAL_DATA}")
    videos = to_model_layout(np.stack([read_snippet(p, size=112)[0] for p in paths]))
    _check_agreement(f"{source} 112px ({len(paths)} clips)", videos)


def test_grey_and_resize_are_bit_exact_with_opencv():
    rng = np.random.default_rng(0)
    for h, w in [(32, 32), (112, 112), (50, 70), (128, 128)]:
        rgb = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        grey = np.stack([cv2.cvtColor(f[..., ::-1].copy(), cv2.COLOR_BGR2GRAY) for f in rgb])
        small = np.stack(
            [cv2.resize(f, (64, 64), interpolation=cv2.INTER_LINEAR_EXACT) for f in grey]
        )
        ours = sal._luma_u8(torch.from_numpy(rgb).permute(0, 3, 1, 2).int())
        np.testing.assert_array_equal(ours.numpy(), grey)
        np.testing.assert_array_equal(sal._resize_linear_exact_u8(ours, 64, 64).numpy(), small)


def test_maps_close_to_opencv_and_shaped():
    x = _random_video()
    ours, ref = saliency_maps(x), saliency_maps(x, backend="opencv")
    assert ours.shape == ref.shape == (4, 20, 30) and ours.dtype == torch.float32
    assert torch.allclose(ours, ref, atol=1e-5)


def test_grey_video_matches_opencv():
    x = _random_video(c=1, h=40, w=40)
    assert torch.allclose(saliency_maps(x), saliency_maps(x, backend="opencv"), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_backend_runs_on_the_tensors_device(synthetic_32):
    x = synthetic_32[:2]
    m = saliency_mask(x.cuda(), 0.6)
    assert m.device.type == "cuda"
    assert mask_overlap(saliency_mask(x, 0.6), m.cpu()) >= 0.999


def test_phi_one_is_all_ones_without_saliency(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("saliency computed for phi = 1")

    monkeypatch.setattr(sal, "saliency_maps", boom)
    m = saliency_mask(_random_video(), 1.0)
    assert m.shape == (1, 4, 20, 30) and bool((m == 1).all())
    assert saliency_mask(_random_video()[None].repeat(2, 1, 1, 1, 1), 1).shape == (2, 1, 4, 20, 30)


@pytest.mark.parametrize("backend", ["torch", "opencv"])
@pytest.mark.parametrize("phi", [0.01, 0.2, 0.37, 0.6, 0.8, 0.999])
def test_mask_keeps_round_phi_hw_pixels_per_frame(phi, backend):
    x = _random_video(h=21, w=30)
    m = saliency_mask(x, phi, backend=backend)
    assert m.shape == (1, 4, 21, 30) and m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert m.sum(dim=(-2, -1)).eq(round(phi * 21 * 30)).all()
    assert keep_count(phi, 21, 30) == round(phi * 21 * 30)


def test_mask_is_one_2d_mask_for_all_channels(synthetic_32):
    x = synthetic_32[0]
    m = saliency_mask(x, 0.6)
    assert m.shape == (1, *x.shape[1:])
    masked = x * m  # broadcasts to [C, T, H, W]: every channel gets the same 2-D mask
    assert masked.shape == x.shape
    assert ((masked != 0) <= m.bool()).all()


def test_batch_equals_per_video(synthetic_32):
    xb = synthetic_32[:3]
    mb = saliency_mask(xb, 0.4)
    assert mb.shape == (3, 1, *xb.shape[2:])
    for i in range(3):
        assert torch.equal(mb[i], saliency_mask(xb[i], 0.4))
    assert torch.equal(saliency_maps(xb)[1], saliency_maps(xb[1]))


def test_keeps_the_most_salient_pixels(synthetic_32):
    x = synthetic_32[0]
    s, m = saliency_maps(x), saliency_mask(x, 0.3)[0].bool()
    for t in range(x.shape[1]):
        assert s[t][m[t]].min() >= s[t][~m[t]].max()


def test_ties_broken_by_pixel_index_and_deterministic():
    flat = torch.zeros(2, 3, 4)
    m = top_phi_mask(flat, 0.5)  # all tied: the first 6 pixels in raster order
    assert m.reshape(2, 12)[:, :6].eq(1).all() and m.reshape(2, 12)[:, 6:].eq(0).all()
    s = torch.tensor([[1.0, 2.0, 2.0, 1.0], [2.0, 0.0, 2.0, 2.0]])
    assert top_phi_mask(s, 0.5).tolist() == [[0, 1, 1, 0], [1, 0, 1, 0]]
    x = _random_video(seed=3)
    assert torch.equal(saliency_mask(x, 0.6), saliency_mask(x, 0.6))
    assert torch.equal(
        saliency_mask(x, 0.6, backend="opencv"),
        saliency_mask(x, 0.6, "spectral_residual", "opencv"),
    )


def test_fine_grained_via_opencv():
    x = _random_video(h=32, w=32)
    s = saliency_maps(x, method="fine_grained", backend="opencv")
    assert s.shape == (4, 32, 32) and s.dtype == torch.float32 and s.isfinite().all()
    m = saliency_mask(x, 0.6, method="fine_grained", backend="opencv")
    assert m.sum(dim=(-2, -1)).eq(round(0.6 * 32 * 32)).all()
    with pytest.raises(ValueError, match="fine_grained"):
        saliency_maps(x, method="fine_grained")


@pytest.mark.parametrize("phi", [0, 0.0, -0.1, 1.01, 2, float("nan"), "a", None])
def test_bad_phi_raises(phi):
    with pytest.raises(ValueError, match="phi"):
        saliency_mask(_random_video(), phi)


def test_bad_inputs_raise():
    x = _random_video()
    with pytest.raises(ValueError, match=r"\[C, T, H, W\]"):
        saliency_maps(x[0])
    with pytest.raises(ValueError, match="C in"):
        saliency_maps(torch.rand(2, 4, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        saliency_maps((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="Tensor"):
        saliency_maps(x.numpy())
    with pytest.raises(ValueError, match="method"):
        saliency_mask(x, 0.5, method="itti")
    with pytest.raises(ValueError, match="backend"):
        saliency_mask(x, 0.5, backend="jax")
    with pytest.raises(ValueError, match="shape"):
        mask_overlap(torch.ones(2, 2), torch.ones(3))


def test_mask_overlap():
    a = torch.tensor([1.0, 1.0, 0.0, 1.0])
    b = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert mask_overlap(a, b) == pytest.approx(2 / 3)
    assert mask_overlap(a, a) == 1.0 and mask_overlap(torch.zeros(4), b) == 1.0


def _object_masks(index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(clip, object-pixel mask ``[T, H, W]``) of synthetic test clip ``index``, regenerated."""
    label = index % len(synthetic.CLASSES)
    seed = [0, 1, index]  # generate(split="test", seed=0)
    clip, track = synthetic.generate_clip(
        label, np.random.default_rng(seed), size, return_track=True
    )
    rng = np.random.default_rng(seed)  # replay the generator's draws up to the sprite
    synthetic._background(rng, size, max(1, size // 32))
    _, alpha = synthetic._sprite(rng)
    half = synthetic._SPRITE / 2
    masks = []
    for t in range(clip.shape[0]):
        m = cv2.getRotationMatrix2D((half, half), float(track.angle[t]), track.radius[t] / half)
        m[:, 2] += (track.cx[t] - half, track.cy[t] - half)
        masks.append(cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR) > 0.5)
    return clip, np.stack(masks)


def test_mask_is_informative_on_synthetic_clips(synthetic_32):
    kept, total = 0, 0
    for i in range(12):
        clip, obj = _object_masks(i, 32)
        np.testing.assert_array_equal(
            clip, synthetic_32[i].permute(1, 2, 3, 0).mul(255).round().byte().numpy()
        )
        m = saliency_mask(to_model_layout(clip), 0.6)[0].numpy().astype(bool)
        kept += int((m & obj).sum())
        total += int(obj.sum())
    share = kept / total
    print(f"object pixels kept at phi 0.6: {share:.1%} (chance 60 %)")
    assert share > 0.7
