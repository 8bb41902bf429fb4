"""Low-frequency subspaces for random probes: where a hard-label attack draws its directions.

A 16 x 112 x 112 x 3 video has 600k dimensions; random probes in all of them estimate the
boundary's normal poorly, and most of a natural video's (and a classifier's) sensitivity lies in
its low spatial and temporal frequencies. The image attacks that draw their probes in a
low-frequency subspace (QEBA, Li et al. CVPR 2020: HopSkipJump's step on resized noise; GeoDA,
Rahmati et al. CVPR 2020: a low DCT band; CGBA, Reza et al. ICCV 2023) reach several times
smaller L2 than the same steps in the full space at equal budgets. Here the subspace is one
argument of every optimizer (``AttackConfig.subspace``), named by a short string:

- ``None`` / ``"full"``: i.i.d. Gaussian values, the papers' probes (the default).
- ``"resize:S"`` (``"resize:S:R"``): Gaussian on a grid ``S`` times coarser in H and W (and
  ``R`` times coarser in T), upsampled (bilinear in space; trilinear with ``R > 1``), as QEBA's
  spatial resize. ``"resize:S"`` is bit for bit the older ``probe_scale=S``.
- ``"dct:K"`` (``"dct:K:R"``): Gaussian coefficients on the lowest ``ceil(H/K) x ceil(W/K)``
  (x ``ceil(T/R)``) frequencies of an orthonormal 3-D DCT-II per channel, transformed back: an
  isotropic Gaussian *within* that band, and the band is an orthogonal subspace
  (:meth:`Subspace.project` is the exact orthogonal projection).

Either way a probe is then multiplied by the attack's mask (key frames x salient regions) and
normalised, so it lies in the span of ``mask * B`` (``B`` the subspace's basis) and changes no
pixel outside the mask; ``tests/test_subspace.py`` checks both.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from hba_lib.oracle.specs import named_option, split_spec

KINDS = ("full", "resize", "dct")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Subspace:
    """A linear map ``expand: R^k -> R^(C x T x H x W)`` that draws probes in a low band.

    ``kind``: ``full``, ``resize`` or ``dct``; ``spatial`` (``S``) and ``temporal`` (``R``):
    the reduction factors. :meth:`sample` draws ``n`` probes (not yet masked or normalised),
    :meth:`coefficient_shape` is the shape of ``R^k`` for a video shape, :meth:`dim` its size.
    """

    def __init__(self, kind: str = "full", spatial: int = 1, temporal: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown subspace kind {kind!r}; expected one of {KINDS}")
        if int(spatial) != spatial or int(temporal) != temporal or spatial < 1 or temporal < 1:
            raise ValueError(f"reduction factors must be integers >= 1, got {spatial}, {temporal}")
        self.kind, self.spatial, self.temporal = kind, int(spatial), int(temporal)
        if kind == "full" and (self.spatial, self.temporal) != (1, 1):
            raise ValueError("the full space has no reduction factors")

    def __repr__(self) -> str:
        return f"Subspace({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Subspace) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    @property
    def spec(self) -> str:
        """The name this subspace is parsed from (:func:`parse_subspace`)."""
        if self.kind == "full":
            return "full"
        tail = f":{self.temporal}" if self.temporal > 1 else ""
        return f"{self.kind}:{self.spatial}{tail}"

    @property
    def is_full(self) -> bool:
        return self.kind == "full"

    def coefficient_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The shape ``(C, T', H', W')`` of the coefficients for a video of ``shape``."""
        c, t, h, w = shape
        if self.kind == "full":
            return c, t, h, w
        return (
            c,
            _ceil_div(t, self.temporal),
            _ceil_div(h, self.spatial),
            _ceil_div(w, self.spatial),
        )

    def dim(self, shape: tuple[int, ...]) -> int:
        """Dimension of the subspace for a video of ``shape`` (before any mask)."""
        return math.prod(self.coefficient_shape(shape))

    def reduction(self, shape: tuple[int, ...]) -> float:
        """How many times smaller than the full space the subspace is."""
        return math.prod(shape) / self.dim(shape)

    def expand(self, coefficients: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The videos ``[n, C, T, H, W]`` of coefficients ``[n, C, T', H', W']`` (linear)."""
        n = coefficients.shape[0]
        c, t, h, w = shape
        if self.kind == "full":
            return coefficients
        if self.kind == "resize":
            if self.temporal == 1:  # exactly the older probe_scale path
                flat = coefficients.reshape(n * c, *coefficients.shape[-3:])
                out = torch.nn.functional.interpolate(
                    flat, size=(h, w), mode="bilinear", align_corners=False
                )
            else:
                flat = coefficients.reshape(n * c, 1, *coefficients.shape[-3:])
                out = torch.nn.functional.interpolate(
                    flat, size=(t, h, w), mode="trilinear", align_corners=False
                )
            return out.reshape(n, c, t, h, w)
        # dct: pad the low band with zeros, apply the inverse orthonormal DCT on T, H, W
        dev, dtype = coefficients.device, coefficients.dtype
        kt, kh, kw = coefficients.shape[-3:]
        mt = _dct_matrix(t, str(dev), dtype)[:kt]  # rows: the lowest kt basis vectors
        mh = _dct_matrix(h, str(dev), dtype)[:kh]
        mw = _dct_matrix(w, str(dev), dtype)[:kw]
        return torch.einsum("ncabd,at,bh,dw->ncthw", coefficients, mt, mh, mw)

    def sample(self, n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """``n`` Gaussian probes in the subspace ``[n, C, T, H, W]`` (not masked, not normalised)."""
        coef = torch.randn((n, *self.coefficient_shape(shape)), generator=generator,
                           device=generator.device)  # fmt: skip
        return self.expand(coef, shape)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """The orthogonal projection of ``v [..., C, T, H, W]`` onto the subspace (``dct`` and
        ``full`` only: the resize subspace's basis is not orthogonal; tests use its basis)."""
        if self.kind == "full":
            return v
        if self.kind != "dct":
            raise NotImplementedError("project() is exact for 'dct' and 'full' only")
        c, t, h, w = v.shape[-4:]
        kc, kt, kh, kw = self.coefficient_shape((c, t, h, w))
        mt = _dct_matrix(t, str(v.device), v.dtype)[:kt]
        mh = _dct_matrix(h, str(v.device), v.dtype)[:kh]
        mw = _dct_matrix(w, str(v.device), v.dtype)[:kw]
        coef = torch.einsum("...cthw,at,bh,dw->...cabd", v, mt, mh, mw)
        return torch.einsum("...cabd,at,bh,dw->...cthw", coef, mt, mh, mw)


@lru_cache(maxsize=32)
def _dct_matrix(n: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``[n, n]`` (row k: the k-th cosine basis vector)."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.to(device=device, dtype=dtype)


FULL = Subspace("full")


@named_option(Subspace, "subspace", "'resize:4' or 'dct:4'", off=("", "full"), off_value=FULL)
def parse_subspace(spec: str | Subspace | None) -> Subspace:
    """A :class:`Subspace` from its name: ``None``/``""``/``"full"``, ``"resize:S"``,
    ``"resize:S:R"``, ``"dct:K"``, ``"dct:K:R"`` (a clear error otherwise)."""
    kind, factors = split_spec(
        spec, "subspace", ("resize", "dct"), (1, 2),
        "'full', 'resize:S', 'resize:S:R', 'dct:K' or 'dct:K:R'", int,
        "the factors must be whole numbers",
    )  # fmt: skip
    return Subspace(kind, *factors)
