"""Low-frequency probe subspaces: probes lie in the mask and in the subspace; off, nothing moves."""

from __future__ import annotations

import math

import pytest
import torch

from hba_lib.attacks import OptAttackConfig, SignOPTConfig, make_attack, make_optimizer
from hba_lib.oracle.queries import normalize, random_directions
from hba_lib.oracle.subspace import Subspace, parse_subspace

SHAPE = (3, 4, 8, 8)
SPECS = ["resize:2", "resize:4", "resize:2:2", "dct:2", "dct:4", "dct:2:2"]


def basis(space: Subspace, shape=SHAPE) -> torch.Tensor:
    """The subspace's basis as columns ``[D, k]``: the expansion of each unit coefficient."""
    k = space.dim(shape)
    eye = torch.eye(k, dtype=torch.float64).view(k, *space.coefficient_shape(shape))
    return space.expand(eye, shape).reshape(k, -1).T


def residual(vectors: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Relative distance of each vector ``[n, D]`` from the span of ``columns [D, k]``."""
    coef = torch.linalg.lstsq(columns, vectors.T).solution
    return torch.linalg.vector_norm(columns @ coef - vectors.T, dim=0) / torch.linalg.vector_norm(
        vectors.T, dim=0
    )


def a_mask() -> torch.Tensor:
    """Frames 1 and 3 dropped, a ragged spatial region on the others (one mask for every channel)."""
    g = torch.Generator().manual_seed(5)
    m = (torch.rand(1, *SHAPE[1:], generator=g) < 0.6).float()
    m[:, 1] = 0
    m[:, 3] = 0
    return m


@pytest.mark.parametrize("spec", SPECS)
def test_probes_lie_in_the_mask_and_in_the_subspace(spec: str) -> None:
    space = parse_subspace(spec)
    mask = a_mask()
    g = torch.Generator().manual_seed(0)
    u = random_directions(6, SHAPE, g, mask, subspace=spec)
    assert u.shape == (6, *SHAPE)
    assert torch.allclose(torch.linalg.vector_norm(u.flatten(1), dim=1), torch.ones(6))
    assert torch.equal(
        u[:, mask.expand(SHAPE) == 0], torch.zeros_like(u[:, mask.expand(SHAPE) == 0])
    )
    columns = basis(space) * mask.expand(SHAPE).reshape(-1, 1).double()  # span of mask * B
    assert residual(u.reshape(6, -1).double(), columns).max() < 1e-5
    # the neighbouring wrong input: full-space probes in the same mask are far from that span
    full = random_directions(6, SHAPE, torch.Generator().manual_seed(0), mask)
    assert residual(full.reshape(6, -1).double(), columns).min() > 0.3


@pytest.mark.parametrize("spec", [s for s in SPECS if s.startswith("dct")])
def test_dct_projection_leaves_a_probe_unchanged_and_is_a_projection(spec: str) -> None:
    space = parse_subspace(spec)
    u = random_directions(4, SHAPE, torch.Generator().manual_seed(1), subspace=spec)
    assert torch.allclose(space.project(u), u, atol=1e-6)
    v = torch.randn((4, *SHAPE), generator=torch.Generator().manual_seed(2))
    p = space.project(v)
    assert torch.allclose(space.project(p), p, atol=1e-5)  # idempotent
    assert not torch.allclose(p, v, atol=1e-2)  # a full-space vector is not in the band
    assert torch.allclose(((v - p) * p).sum(), torch.tensor(0.0), atol=1e-4)  # orthogonal
    assert space.dim(SHAPE) == math.prod(space.coefficient_shape(SHAPE))
    assert torch.linalg.matrix_rank(basis(space)) == space.dim(SHAPE)


def test_subspace_off_draws_exactly_the_papers_probes() -> None:
    """With no subspace the probes are the same draws as before subspaces existed (the
    formula of the earlier ``random_directions``), so every preset queries the same points."""
    mask = a_mask()
    for sub in (None, "", "full"):
        g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        new = random_directions(5, SHAPE, g1, mask, subspace=sub)
        old = normalize(torch.randn((5, *SHAPE), generator=g2), mask)
        assert torch.equal(new, old)
        assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))
    # probe_scale, the older spelling of resize:S, is the same draw bit for bit
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(random_directions(5, SHAPE, g1, mask, 2),
                       random_directions(5, SHAPE, g2, mask, subspace="resize:2"))  # fmt: skip
    for cfg in (OptAttackConfig(), SignOPTConfig()):  # the presets' tolerances do not move
        assert cfg.subspace is None
        assert cfg.search_tol(0.01, 2.0, 5000, SHAPE) == cfg.search_tol(0.01, 2.0, 5000)


@pytest.mark.parametrize(
    "bad", ["dct", "dct:0", "dct:x", "resize:2:2:2", "wavelet:2", "dct:-1", "resize:1.5"]
)
def test_a_bad_subspace_name_is_a_clear_error_before_any_query(bad: str) -> None:
    with pytest.raises(ValueError, match="subspace|factors"):
        parse_subspace(bad)
    with pytest.raises(ValueError):
        OptAttackConfig(subspace=bad)
    with pytest.raises(ValueError):
        make_optimizer(f"hsja@{bad}")
    with pytest.raises(ValueError, match="probe_scale or subspace"):
        OptAttackConfig(probe_scale=2, subspace="dct:2")


def test_every_optimizer_takes_a_subspace_by_name() -> None:
    for name in ("opt", "sign-opt", "hsja", "cgba"):
        opt = make_optimizer(f"{name}@dct:4")
        assert opt.config.subspace == "dct:4" and "[dct:4]" in opt.name
        assert make_optimizer(name).config.subspace is None
    attack = make_attack("temporal+spatial", optimizer="hsja@resize:4:2")
    assert attack.config.probe_space() == Subspace("resize", 4, 2)
    assert attack.name == "temporal+spatial / hsja@resize:4:2"
