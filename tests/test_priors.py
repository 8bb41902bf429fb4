"""Probe priors (``hba_lib.oracle.priors``): the edge prior's weights come from the clean video
alone, probes stay in the mask, their energy follows the weights, and with no prior nothing
moves."""

from __future__ import annotations

import pytest
import torch

from hba_lib.attacks import HopSkipJump, SignOPT, make_optimizer
from hba_lib.attacks.base import AttackState
from hba_lib.oracle.priors import ProbePrior, colour_edge_map, edge_map, parse_prior
from hba_lib.oracle.queries import random_directions

SHAPE = (3, 4, 8, 8)


def step_video() -> torch.Tensor:
    """Dark left half, bright right half: one vertical edge between columns 3 and 4."""
    x = torch.full(SHAPE, 0.2)
    x[..., 4:] = 0.8
    return x


def test_names_parse_and_bad_names_are_clear_errors() -> None:
    assert parse_prior(None) is None and parse_prior("") is None and parse_prior("none") is None
    assert parse_prior("edge:2") == ProbePrior("edge", 2.0, 0.01)
    assert parse_prior("edge:2:0.1").floor == 0.1 and parse_prior("edge:2:0.1").spec == "edge:2:0.1"
    assert parse_prior("edge:1.5").spec == "edge:1.5"
    assert parse_prior("cedge:3") == ProbePrior("cedge", 3.0) != ProbePrior("edge", 3.0)
    assert parse_prior("lcedge:3:0.1") == ProbePrior("lcedge", 3.0, 0.1) != ProbePrior("cedge", 3.0)
    for bad in ("edge", "edgy:2", "edge:x", "edge:1:2:3", "edge:-1", "cedge", "lcedge"):
        with pytest.raises(ValueError):
            parse_prior(bad)
    with pytest.raises(TypeError):
        parse_prior(3)


def test_the_edge_map_lies_on_the_edge_and_nowhere_else() -> None:
    e = edge_map(step_video(), blur=1)
    assert e.shape == SHAPE[1:]
    assert (
        torch.all(e[..., 3:5] > 0.25) and torch.all(e[..., :2] == 0) and torch.all(e[..., 6:] == 0)
    )
    with pytest.raises(ValueError):
        edge_map(torch.zeros(4, 8, 8))


def test_the_colour_edge_map_sees_an_edge_of_equal_luminance() -> None:
    """Red left half, green right half, the same luminance (the mean of the channels): the
    luminance edge map is flat, the colour one lies on the edge, and so does the ``cedge``
    prior's weight; on an edge of luminance both see it."""
    x = torch.zeros(SHAPE)
    x[0, ..., :4] = 0.6
    x[1, ..., 4:] = 0.6
    assert torch.all(edge_map(x, blur=1) == 0)
    c = colour_edge_map(x, blur=1)
    assert c.shape == SHAPE[1:] and torch.all(c[..., 3:5] > 0.25)
    assert torch.all(c[..., :2] == 0) and torch.all(c[..., 6:] == 0)
    std = ProbePrior("cedge", 2.0, floor=0.0).std(x)
    assert torch.all(std[..., :2] == 0) and torch.all(std[..., 3:5] > 0)
    flat = ProbePrior("edge", 2.0, floor=0.0).std(x)  # the luminance prior: nothing to weight by
    assert torch.all(flat == 1)
    lum = step_video()
    assert torch.equal(colour_edge_map(lum, blur=1) > 0, edge_map(lum, blur=1) > 0)
    with pytest.raises(ValueError):
        colour_edge_map(torch.zeros(4, 8, 8))


def test_the_mixed_prior_gives_each_edge_map_half_the_energy() -> None:
    """``lcedge``: on a grey video the two maps agree, so it is ``edge``; on an edge of equal
    luminance the luminance map is flat, so it is ``cedge`` at half the weight; on a video with
    both kinds of edge it lies on both, and its weights average to 1 as the others' do."""
    grey = step_video()
    assert torch.allclose(
        ProbePrior("lcedge", 3.0).std(grey), ProbePrior("edge", 3.0).std(grey), atol=1e-5
    )
    hue = torch.zeros(SHAPE)
    hue[0, ..., :4] = 0.6
    hue[1, ..., 4:] = 0.6
    mixed = ProbePrior("lcedge", 2.0, floor=0.0).std(hue) ** 2
    assert torch.allclose(mixed, ProbePrior("cedge", 2.0, floor=0.0).std(hue) ** 2 / 2)
    both = torch.full(SHAPE, 0.2)
    both[..., :, 6:] = 0.8  # a luminance edge between columns 5 and 6 ...
    both[0, :, :4, :3] = 0.6  # ... and a red patch on grey of nearly its luminance
    both[1:, :, :4, :3] = 0.1
    var = ProbePrior("lcedge", 2.0, floor=0.0).std(both)[0] ** 2
    lum = ProbePrior("edge", 2.0, floor=0.0).std(both)[0] ** 2
    col = ProbePrior("cedge", 2.0, floor=0.0).std(both)[0] ** 2
    assert torch.allclose(var, (lum + col) / 2) and abs(float(var.mean()) - 1) < 1e-5
    assert float(var[..., 5:7].min()) > 0 and float(var[:, :4, 2:4].min()) > 0


def test_exercise_10_4_is_what_the_library_computes(monkeypatch) -> None:
    """Notebook 10's exercise on ``lcedge``: the library's weights on the exercise's two maps
    (a luminance edge on a set A of 10 % of the pixels, a colour edge on A and on another 10 %,
    B) put on B the share its reference answer says."""
    from hba_lib.exercises import nb10
    from hba_lib.oracle import priors

    shape = (3, 10, 10, 10)  # 1,000 pixels: A and B are 100 each
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    a = torch.zeros(1000, dtype=torch.bool)
    b = torch.zeros(1000, dtype=torch.bool)
    a[order[:100]], b[order[100:200]] = True, True
    a, b = a.view(shape[1:]), b.view(shape[1:])
    monkeypatch.setitem(priors.EDGE_MAPS, "edge", lambda x: 0.7 * a.float())
    monkeypatch.setitem(priors.EDGE_MAPS, "cedge", lambda x: 0.3 * (a | b).float())
    var = ProbePrior("lcedge", 3.0).std(torch.zeros(shape))[0] ** 2
    assert 100 * float(var[b].sum() / var.sum()) == pytest.approx(nb10._LC, rel=1e-5)
    for kind, share in (("edge", 0.1), ("cedge", 49.6)):  # the wrong answers it names
        var = ProbePrior(kind, 3.0).std(torch.zeros(shape))[0] ** 2
        assert 100 * float(var[b].sum() / var.sum()) == pytest.approx(share, abs=0.05)


def test_probes_follow_the_weights_and_stay_in_the_mask() -> None:
    x = step_video()
    std = ProbePrior("edge", 2.0, floor=0.0).std(x)
    assert std.shape == SHAPE and torch.all(std[..., :1] == 0) and torch.all(std[..., 3:5] > 0)
    mask = torch.ones(1, *SHAPE[1:])
    mask[:, 1] = 0  # a dropped frame
    g = torch.Generator().manual_seed(0)
    u = random_directions(500, SHAPE, g, mask, std=std)
    assert torch.allclose(torch.linalg.vector_norm(u.flatten(1), dim=1), torch.ones(500))
    assert torch.all(u[:, :, 1] == 0)  # the mask holds
    assert torch.all(u[..., :1] == 0) and torch.all(u[..., 7:] == 0)  # zero weight: untouched
    # the probes' energy per pixel follows the prior's variance
    energy = (u**2).mean(0)[mask.expand(SHAPE) > 0]
    target = (std**2)[mask.expand(SHAPE) > 0]
    assert torch.corrcoef(torch.stack([energy, target]))[0, 1] > 0.95
    # the neighbouring wrong input: without the prior every masked pixel moves
    flat = random_directions(500, SHAPE, torch.Generator().manual_seed(0), mask)
    assert torch.all(flat[..., :1].abs().sum(0)[:, [0, 2, 3]] > 0)
    # with the default floor, every pixel of the mask stays reachable
    floored = random_directions(50, SHAPE, g, mask, std=ProbePrior("edge", 2.0).std(x))
    assert torch.all(floored.abs().sum(0)[:, [0, 2, 3]] > 0)


def test_a_flat_video_gives_flat_weights() -> None:
    std = ProbePrior("edge", 2.0).std(torch.full(SHAPE, 0.5))
    assert torch.allclose(std, std.flatten()[0].expand(SHAPE))
    assert torch.all(ProbePrior("edge", 2.0, floor=0.0).std(torch.full(SHAPE, 0.5)) == 1)


@pytest.mark.parametrize("cls", [HopSkipJump, SignOPT])
def test_no_prior_draws_exactly_the_probes_of_before(cls) -> None:
    x = step_video()
    st = AttackState(x, None)
    attack = cls(subspace="dct:2")
    u = attack.probes(st, 7, torch.Generator().manual_seed(4))
    assert torch.equal(u, random_directions(7, SHAPE, torch.Generator().manual_seed(4),
                                            subspace="dct:2"))  # fmt: skip
    weighted = cls(subspace="dct:2", prior="edge:2").probes(st, 7, torch.Generator().manual_seed(4))
    assert not torch.allclose(weighted, u)
    assert st.probe_std is not None and st.info == {}  # cached on the state, not in the result


def test_names_carry_subspace_and_prior() -> None:
    opt = make_optimizer("hsja@dct:4+edge:2")
    assert opt.config.subspace == "dct:4" and opt.config.prior == "edge:2"
    assert opt.name == "HopSkipJump [dct:4, edge:2]"
    assert make_optimizer("sign-opt+edge:1:0.1").name == "Sign-OPT [edge:1:0.1]"
    assert make_optimizer("hsja").config.prior is None
    with pytest.raises(ValueError):
        make_optimizer("hsja+edge:2", prior="edge:1")
    with pytest.raises(ValueError):
        make_optimizer("hsja+blur:2")
    with pytest.raises(ValueError):
        HopSkipJump(prior="edge")


def test_where_the_normal_lies_on_the_edges_the_prior_converges_faster() -> None:
    """A linear model whose boundary normal lives on the edges of a bright square (12.5 % of the
    pixels): at equal queries the edge prior gets much closer to the true closest point than
    the flat probes, and both stay adversarial and above the optimum."""
    from test_hsja import Linear2

    from hba_lib.oracle import Oracle

    shape = (3, 4, 16, 16)
    g = torch.Generator().manual_seed(0)
    x = torch.full(shape, 0.3)
    x[..., 6:10, 6:10] = 0.7
    w = torch.randn(shape, generator=g) * (edge_map(x) > 0.1).float()
    model = Linear2(w, float((w * x).sum()) + 2.0)
    cands = (x + 0.35 * (torch.rand((6, *shape), generator=g) * 2 - 1) + 0.06 * w.sign()).clamp(
        0, 1
    )
    optimum = 2.0 / float(w.norm())
    ratio = {}
    for prior in (None, "edge:2"):
        oracle = Oracle(model)
        res = HopSkipJump(max_iter=10, prior=prior).run(oracle, x, 0, candidates=cands)
        assert res.success and res.queries == oracle.used
        assert float(model(res.x_adv.unsqueeze(0)).argmax(1)[0]) == 1
        ratio[prior] = res.distance / optimum
    assert 1 - 1e-5 <= ratio["edge:2"] < 1.3 < 1.5 < ratio[None]


def test_prior_merit_counts_probes_where_the_normal_lies(bench_module) -> None:
    """``benchmarks/gradient_energy.prior_merit``: flat probes have merit 1 and no lean; a prior
    that puts all the variance on the normal's support (a share ``a`` of the values) has merit
    ``1 / a``, and no lean where it weights that support evenly; the merit does not depend on
    the variance's scale. And the merit is what it claims to be: the mean of many probe estimates'
    cosines with the normal grows by ``sqrt(M)`` (here 2: M = 4)."""
    mod = bench_module("gradient_energy")
    g = torch.zeros(3, 4, 8, 8, dtype=torch.float64)
    g[:, :, :4, :4] = 1.0  # a quarter of the values
    assert mod.prior_merit(g, torch.ones_like(g)) == pytest.approx((1.0, 1.0))
    on_support = (g != 0).double() + 1e-12
    assert mod.prior_merit(g, on_support) == pytest.approx((4.0, 1.0), rel=1e-6)
    assert mod.prior_merit(g, 7 * on_support) == pytest.approx(mod.prior_merit(g, on_support))
    leaning = on_support.clone()
    leaning[:, :, :2] *= 3  # 3 x the variance on half the support: the same merit, leaning
    m, cos = mod.prior_merit(g, leaning)
    assert m == pytest.approx(4.0, rel=1e-6) and cos == pytest.approx(4 / 20**0.5, rel=1e-6)

    gen = torch.Generator().manual_seed(0)
    unit = (g / g.norm()).flatten()

    def mean_cosine(var: torch.Tensor) -> float:
        s = (var / var.mean()).sqrt().flatten()
        u = torch.randn(400, 30, g.numel(), generator=gen, dtype=torch.float64) * s
        phi = torch.sign(u @ unit)  # which side of the hyperplane each probe lands on
        v = (phi.unsqueeze(-1) * u).mean(1)
        return float((v @ unit / v.norm(dim=1)).mean())

    ratio = mean_cosine(on_support) / mean_cosine(torch.ones_like(g))
    assert ratio == pytest.approx(2.0, rel=0.1)


def test_prior_structure_maps_and_the_learned_profile(bench_module) -> None:
    """``benchmarks/prior_structure.py``'s pieces: the centre window is 1 inside and smallest in
    the corners; a still video has no motion; the channels' mean keeps a grey gradient whole and
    none of one that sums to zero over R, G, B; a cell's multiplier is largest where the normal's
    energy lies over the prior's variance (not where the prior alone is large). And the learned
    profile learns: with the normal on one cell of one frame, the simulated estimates lift the
    merit over the base prior's as the iterations go, to 0.7 of the white-box cell profile's
    where the base prior is large on a frame the normal is not (unwhitened estimates: 0.35,
    no noise floor: 0.45)."""
    mod = bench_module("prior_structure")
    w = mod.centre_window(8, 8, border=4, power=1)
    assert float(w[3:5, 3:5].min()) == 1.0 and float(w[0, 0]) == pytest.approx(1 / 16)
    still = torch.rand(3, 1, 8, 8).expand(3, 5, 8, 8)
    assert float(mod.motion_map(still).abs().max()) == 0.0
    grey = torch.randn(1, 4, 8, 8).expand(3, 4, 8, 8)
    assert mod.grey_share(grey) == pytest.approx(1.0)
    assert mod.grey_share(torch.cat([grey[:1], -grey[:1], 0 * grey[:1]])) == pytest.approx(0.0)

    energy = torch.ones(4, 8, 8, dtype=torch.float64)
    energy[1, :4, 4:] = 9.0  # frame 1, cell (0, 1) of a 2 x 2 grid
    prior_var = torch.ones_like(energy)
    prior_var[2, 4:, :4] = 9.0  # the prior alone large elsewhere
    m = mod.cell_multiplier(energy, prior_var, grid=2)
    assert float(m.mean()) == pytest.approx(1.0)
    assert float(m[1, 0, 4]) == float(m.max()) and float(m[2, 4, 0]) == float(m.min())

    g = torch.zeros(3, 4, 8, 8, dtype=torch.float64)
    g[:, 1, :4, 4:] = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(1))
    g[:, 0] = 0.05  # a little energy everywhere else in frame 0
    s = torch.ones_like(g)
    s[:, 2] = 3.0  # the base prior's variance 9 x on frame 2, where the normal is not
    out = mod.learned_profile(g, s, 2, torch.Generator().manual_seed(0))
    assert set(out) == {*mod.ITERATIONS, "white-box"}
    assert out[5] < out[10] < out[15] < out[25]
    assert 0.6 * out["white-box"] < out[25] <= out["white-box"]


def test_perturbation_energy_weights(bench_module) -> None:
    """``benchmarks/perturbation_merit.energy_weights`` (the ``pe:`` variant's weights): the
    same in every channel, mean 1, the energy summed over the channels; the blur spreads one
    pixel's energy over its ``K x K`` neighbours (and ``T`` frames) and no farther; a zero
    perturbation gives flat weights."""
    mod = bench_module("perturbation_merit")
    p = torch.zeros(3, 5, 8, 8)
    p[0, 2, 4, 4], p[2, 2, 4, 4] = 3.0, 4.0  # energy 25 at one pixel, over two channels
    w = mod.energy_weights(p, blur=1)
    assert torch.equal(w[0], w[1]) and float(w.mean()) == pytest.approx(1.0)
    assert float(w[0, 2, 4, 4]) == pytest.approx(5 * 8 * 8) and int((w[0] > 0).sum()) == 1
    w3 = mod.energy_weights(p, blur=3, frames=3)
    assert int((w3[0] > 0).sum()) == 3 * 3 * 3 and float(w3.mean()) == pytest.approx(1.0)
    assert bool((w3[0, 1:4, 3:6, 3:6] > 0).all())
    assert torch.equal(mod.energy_weights(torch.zeros(3, 5, 8, 8)), torch.ones(3, 5, 8, 8))


def test_boundary_point_looks(bench_module) -> None:
    """``perturbation_merit.capture`` keeps the top share of the scores (ties kept) and
    reports the share of ``|g|^2`` there; ``span_cosine`` is 1 for ``g`` in the span, the
    single vector's cosine for one vector, and grows with the span."""
    mod = bench_module("perturbation_merit")
    g = torch.zeros(2, 5)
    g[0, 0], g[1, 4] = 3.0, 4.0  # energy 9 and 16
    score = torch.arange(10.0).view(2, 5)  # the largest: g[1, 4], then g[1, 3], ...
    share, mask = mod.capture(g, score, 0.2)
    assert share == pytest.approx(16 / 25) and int(mask.sum()) == 2 and mask[1, 4] == 1
    share, mask = mod.capture(g, torch.ones(2, 5), 0.2)  # all tied: all kept
    assert share == pytest.approx(1.0) and int(mask.sum()) == 10
    gen = torch.Generator().manual_seed(0)
    h, a, b = (torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(3))
    one = mod.span_cosine(a.unsqueeze(0), h)
    assert one == pytest.approx(abs(float(a @ h / (a.norm() * h.norm()))), rel=1e-9)
    assert mod.span_cosine(torch.stack([a, b]), h) > one
    assert mod.span_cosine(torch.stack([a, h + a, b]), h) == pytest.approx(1.0)
