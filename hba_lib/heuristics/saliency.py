"""Spatial saliency masks: where in each frame to perturb (the paper's ``SPATIAL(x, phi)``).

Saliency is the spectral residual of Hou & Zhang, "Saliency Detection: A Spectral Residual
Approach" (CVPR 2007), exactly as OpenCV contrib's ``StaticSaliencySpectralResidual``
computes it, which is what the paper used. It is computed on the clean video the attacker
already holds, so it costs no query. Two backends:

- ``backend="opencv"`` (the reference): one ``computeSaliency`` call per frame. Our frames are
  RGB and OpenCV's colour conversion assumes BGR, so the reference is given each frame as
  uint8 **BGR** (``frame[..., ::-1]``, what ``cv2.imread`` would have produced): its
  ``COLOR_BGR2GRAY`` then computes the true luma ``0.299 R + 0.587 G + 0.114 B``.
- ``backend="torch"``: a batched reimplementation of the same computation, one call per video
  or batch, on the tensor's device. Step by step as OpenCV does it:
  1. quantise to uint8 as ``hba_lib.data.video.to_uint8_frames`` does;
  2. luma in 15-bit fixed point (OpenCV's integer ``BGR2GRAY``, rounded);
  3. resize to 64 x 64 with bit-exact bilinear (``INTER_LINEAR_EXACT``: 8-bit weights, one
     rounding at the end);
  4. float64 DFT; amplitude ``A`` and phase (OpenCV's ``cartToPolar`` phase is a float32
     polynomial approximation, error up to ~2e-4 rad: emulated);
  5. ``L = log(A + 1)``; residual ``R = L - box3x3(L)`` (border reflect-101);
  6. inverse DFT of ``exp(R) * e^{i phase}``; its magnitude, Gaussian-blurred (5 x 5,
     sigma 8, reflect-101) and **then** squared (OpenCV's order); divided by its maximum;
  7. float32 bilinear resize back to ``H x W`` (half-pixel centres).
  The two backends' masks agree on >= 95 % of selected pixels (``tests/test_saliency.py``).

``method="fine_grained"`` is OpenCV's ``StaticSaliencyFineGrained`` (the default of the
authors' code, not named in the paper), OpenCV backend only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hba_lib.data.video import to_uint8_frames

METHODS = ("spectral_residual", "fine_grained")
BACKENDS = ("torch", "opencv")
SR_SIZE = 64  # OpenCV's spectral residual works on a 64 x 64 grey image
_GRAY_SHIFT = 15
_GRAY_RGB = (9798, 19235, 3735)  # OpenCV's fixed-point luma weights for R, G, B (sum 2**15)
_GAUSS_KSIZE, _GAUSS_SIGMA = 5, 8.0


def _check_args(x: torch.Tensor, method: str, backend: str) -> None:
    """Raise a clear error for an unknown method/backend or a tensor that is not a video."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; choose one of {METHODS}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown saliency backend {backend!r}; choose one of {BACKENDS}")
    if method == "fine_grained" and backend != "opencv":
        raise ValueError("method='fine_grained' exists only with backend='opencv'")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor video, got {type(x).__name__}")
    if x.ndim not in (4, 5) or x.shape[-4] not in (1, 3):
        raise ValueError(
            "expected a video [C, T, H, W] or batch [B, C, T, H, W] with C in (1, 3), "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point video in [0, 1], got dtype {x.dtype}")
    if 0 in x.shape:
        raise ValueError(f"empty video of shape {tuple(x.shape)}")


def saliency_maps(
    x: torch.Tensor, method: str = "spectral_residual", backend: str = "torch"
) -> torch.Tensor:
    """Per-frame saliency of the clean video: ``[C, T, H, W] -> [T, H, W]`` (batched too)."""
    _check_args(x, method, backend)
    if backend == "opencv":
        return _opencv_maps(x, method)
    lead = x.shape[:-4]
    c, t, h, w = x.shape[-4:]
    frames = x.reshape(-1, c, t, h, w).transpose(1, 2).reshape(-1, c, h, w)  # [N, C, H, W]
    sal = spectral_residual(frames)
    return sal.reshape(*lead, t, h, w)


def saliency_mask(
    x: torch.Tensor, phi: float, method: str = "spectral_residual", backend: str = "torch"
) -> torch.Tensor:
    """0/1 mask keeping each frame's top ``round(phi*H*W)`` salient pixels: ``[1, T, H, W]``."""
    phi = _check_phi(phi)
    _check_args(x, method, backend)
    shape = (*x.shape[:-4], 1, *x.shape[-3:])
    if phi == 1.0:  # no spatial sparsity: nothing to compute
        return torch.ones(shape, dtype=torch.float32, device=x.device)
    sal = saliency_maps(x, method, backend)
    return top_phi_mask(sal, phi).unsqueeze(-4)


def _check_phi(phi: float) -> float:
    """``phi`` as a float in (0, 1], or a ValueError naming it."""
    try:
        value = float(phi)
    except (TypeError, ValueError):
        raise ValueError(f"phi must be a number in (0, 1], got {phi!r}") from None
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"phi must be in (0, 1], got {phi!r}")
    return value


def keep_count(phi: float, h: int, w: int) -> int:
    """How many pixels of an ``h x w`` frame a mask with ratio ``phi`` keeps."""
    return int(round(_check_phi(phi) * h * w))


def top_phi_mask(saliency: torch.Tensor, phi: float) -> torch.Tensor:
    """0/1 float mask of the top ``round(phi*H*W)`` pixels of each ``[..., H, W]`` map."""
    if saliency.ndim < 2:
        raise ValueError(f"expected saliency maps [..., H, W], got shape {tuple(saliency.shape)}")
    h, w = saliency.shape[-2:]
    k = keep_count(phi, h, w)
    flat = saliency.reshape(-1, h * w)
    # Descending by value; a stable sort keeps equal values in pixel order (lower index first).
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    mask = torch.zeros(flat.shape, dtype=torch.float32, device=saliency.device)
    mask.scatter_(1, order[:, :k], 1.0)
    return mask.reshape(saliency.shape)


def mask_overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of ``a``'s selected pixels that ``b`` also selects (1.0 when ``a`` selects none)."""
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    sa = a.bool()
    n = int(sa.sum())
    return 1.0 if n == 0 else float((sa & b.bool()).sum()) / n


# ---------------------------------------------------------------- OpenCV backend (reference)
def _opencv_maps(x: torch.Tensor, method: str) -> torch.Tensor:
    """Saliency per frame by OpenCV contrib, frames given as uint8 BGR; on ``x``'s device."""
    import cv2

    create = {
        "spectral_residual": cv2.saliency.StaticSaliencySpectralResidual_create,
        "fine_grained": cv2.saliency.StaticSaliencyFineGrained_create,
    }[method]
    algo = create()
    frames = to_uint8_frames(x)  # [..., T, H, W, C] RGB
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = np.empty(flat.shape[:-1], np.float32)
    for i, frame in enumerate(flat):
        img = np.ascontiguousarray(frame[..., ::-1] if frame.shape[-1] == 3 else frame[..., 0])
        ok, sal = algo.computeSaliency(img)
        if not ok:
            raise RuntimeError(f"OpenCV {method} saliency failed on frame {i}")
        out[i] = sal
    return torch.from_numpy(out.reshape(frames.shape[:-1])).to(x.device)


# ---------------------------------------------------------------- torch backend
def spectral_residual(frames: torch.Tensor) -> torch.Tensor:
    """Spectral-residual saliency of float ``[N, C, H, W]`` frames in [0, 1] -> ``[N, H, W]``."""
    n, c, h, w = frames.shape
    # uint8 values held in float32: every integer below stays under 2**24, so it is exact.
    u8 = (frames.float().clamp(0, 1) * 255.0).round()  # as hba_lib.data.video.to_uint8_frames
    gray = _luma_u8(u8) if c == 3 else u8[:, 0]
    small = _resize_linear_exact_u8(gray, SR_SIZE, SR_SIZE).double()

    spec = torch.fft.fft2(small)
    phase = _opencv_phase(spec.real, spec.imag)
    log_amp = torch.log(spec.abs() + 1.0)
    residual = log_amp - _box3(log_amp)
    back = torch.fft.ifft2(torch.polar(torch.exp(residual), phase))
    sal = _gaussian(back.abs(), _GAUSS_KSIZE, _GAUSS_SIGMA) ** 2
    sal = sal / sal.amax(dim=(-2, -1), keepdim=True)
    return _resize_bilinear_f32(sal.float(), h, w)


def _luma_u8(rgb: torch.Tensor) -> torch.Tensor:
    """OpenCV's rounded fixed-point luma of ``[N, 3, H, W]`` RGB integer values 0..255."""
    wr, wg, wb = _GRAY_RGB
    acc = rgb[:, 0] * wr + rgb[:, 1] * wg + rgb[:, 2] * wb + (1 << (_GRAY_SHIFT - 1))
    if acc.is_floating_point():  # exact: acc < 2**24
        return torch.floor(acc / (1 << _GRAY_SHIFT))
    return acc >> _GRAY_SHIFT


def _linear_exact_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps as OpenCV's INTER_LINEAR_EXACT: (left index, right index, 8-bit weight)."""
    scale = 1.0 / (dst / src)
    pos = scale * (np.arange(dst) + 0.5) - 0.5
    left = np.floor(pos).astype(np.int64)
    inside = (left >= 0) & (left < src - 1)
    w1 = np.where(inside, np.rint((pos - left) * 256.0), 0).astype(np.int64)
    left = np.clip(left, 0, src - 1)
    right = np.minimum(left + 1, src - 1)
    return left, right, w1


def _resize_linear_exact_u8(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Bit-exact bilinear resize of ``[N, H, W]`` integer values 0..255 (rounded once).

    Float32 input stays exact: the largest sum, 255 * 2**16 + 2**15, is below 2**24.
    """
    h, w = img.shape[-2:]
    if (h, w) == (out_h, out_w):
        return img
    dev, dt = img.device, img.dtype
    x0, x1, wx = (torch.as_tensor(a, device=dev) for a in _linear_exact_taps(w, out_w))
    y0, y1, wy = (torch.as_tensor(a, device=dev) for a in _linear_exact_taps(h, out_h))
    wx, wy = wx.to(dt), wy.to(dt)
    rows = img[..., y0, :] * (256 - wy)[:, None] + img[..., y1, :] * wy[:, None]  # 8 frac bits
    acc = rows[..., x0] * (256 - wx) + rows[..., x1] * wx + (1 << 15)  # 16 frac bits
    if acc.is_floating_point():
        return torch.floor(acc / (1 << 16))
    return acc >> 16


def _opencv_phase(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """Phase in radians [0, 2 pi) the way OpenCV's ``cartToPolar`` computes it (float32 poly)."""
    deg = 180.0 / math.pi
    p1, p3, p5, p7 = (
        0.9997878412794807 * deg,
        -0.3258083974640975 * deg,
        0.1555786518463281 * deg,
        -0.04432655554792128 * deg,
    )
    x, y = re.float(), im.float()
    ax, ay = x.abs(), y.abs()
    eps = float(np.float32(np.finfo(np.float64).eps))
    x_major = ax >= ay
    c = torch.where(x_major, ay / (ax + eps), ax / (ay + eps))
    c2 = c * c
    poly = (((p7 * c2 + p5) * c2 + p3) * c2 + p1) * c
    a = torch.where(x_major, poly, 90.0 - poly)
    a = torch.where(x < 0, 180.0 - a, a)
    a = torch.where(y < 0, 360.0 - a, a)
    return (a * float(np.float32(math.pi / 180.0))).double()


def _filter_sep(img: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Separable correlation of ``[N, H, W]`` with 1-D ``taps`` on both axes, reflect-101."""
    r, (h, w) = len(taps) // 2, img.shape[-2:]
    padded = F.pad(img.unsqueeze(1), (r, r, r, r), mode="reflect").squeeze(1)
    rows = sum(taps[i] * padded[:, i : i + h, :] for i in range(len(taps)))
    return sum(taps[i] * rows[:, :, i : i + w] for i in range(len(taps)))


def _box3(img: torch.Tensor) -> torch.Tensor:
    """3 x 3 normalised box filter of ``[N, H, W]`` (OpenCV's ``blur``), reflect-101 borders."""
    return _filter_sep(img, [1.0 / 3.0] * 3)


def _gaussian(img: torch.Tensor, ksize: int, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``[N, H, W]`` (OpenCV's kernel for sigma > 0), reflect-101 borders."""
    t = torch.arange(ksize, dtype=torch.float64) - ksize // 2
    k = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return _filter_sep(img, (k / k.sum()).tolist())


def _resize_bilinear_f32(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Float bilinear resize of ``[N, H, W]`` with half-pixel centres (OpenCV's INTER_LINEAR)."""
    if tuple(img.shape[-2:]) == (out_h, out_w):
        return img
    out = F.interpolate(img.unsqueeze(1), size=(out_h, out_w), mode="bilinear", align_corners=False)
    return out.squeeze(1)
