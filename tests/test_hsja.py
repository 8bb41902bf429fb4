"""HopSkipJump's boundary steps in hba, and CGBA's semicircular move on the same normal: exact
counting, budgets in lockstep, masks, subspaces, and convergence to the known closest point of
a linear model."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn

from hba_lib.attacks import HopSkipJump, SemicircleBoundary, make_attack
from hba_lib.oracle import Oracle

torch.set_num_threads(1)
SHAPE = (3, 4, 8, 8)
OPTIMIZERS = [HopSkipJump, SemicircleBoundary]


class Linear2(nn.Module):
    """Class 1 iff w . x > b (float64 inside); counts every clip it evaluates."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.b = b
        self.clips = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clips += x.shape[0]
        s = (x.double().flatten(1) * self.w.double().flatten()).sum(1) - self.b
        return torch.stack([-s, s], dim=1).float() * 50


class Toy3(nn.Module):
    """Three classes, a curved boundary; counts every clip it evaluates."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "a", torch.randn(3, math.prod(SHAPE), generator=g, dtype=torch.float64)
        )
        self.register_buffer(
            "c", torch.randn(3, math.prod(SHAPE), generator=g, dtype=torch.float64)
        )
        self.clips = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clips += x.shape[0]
        v = x.double().flatten(1).unsqueeze(1) - 0.5
        return (torch.tanh(3 * v * self.a) * self.c).sum(-1).float()


def linear_setup(seed: int = 0, margin: float = 2.0):
    """x sits ``margin / ||w||`` from the hyperplane; candidates far across it."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(SHAPE, generator=g)
    x = 0.4 + 0.2 * torch.rand(SHAPE, generator=g)
    b = float((w * x).sum()) + margin
    r = torch.rand((6, *SHAPE), generator=g) * 2 - 1
    candidates = (x + 0.35 * r + 0.06 * torch.sign(w)).clamp(0, 1)  # across, far from optimal
    return Linear2(w, b), x, candidates


def toy_setup(seed: int = 1):
    model = Toy3(seed)
    pool = torch.rand((40, *SHAPE), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        labels = model(pool).argmax(1)
    model.clips = 0
    x, y = pool[0], int(labels[0])
    return model, x, y, pool[1:][labels[1:] != y][:6]


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_converges_toward_the_closest_point_of_a_hyperplane(cls) -> None:
    model, x, cands = linear_setup()
    optimum = 2.0 / float(model.w.norm())  # distance from x to the hyperplane
    oracle = Oracle(model)
    res = cls(max_iter=30).run(oracle, x, 0, candidates=cands)
    start = res.trace[0].distance
    assert res.success and res.label == 1
    assert res.distance >= optimum * (1 - 1e-5)  # nothing adversarial is closer
    assert start > 3 * optimum, "the start should be far from the optimum for this to mean much"
    assert res.distance <= optimum * 1.1  # from 3.5 x to within 10 % of the closest point
    # and in the right place: the perturbation points along the hyperplane's normal
    p = (res.x_adv - x).flatten().double()
    cos = float(p @ model.w.flatten().double() / (p.norm() * model.w.norm()))
    assert cos > 0.9
    assert res.queries == oracle.used == model.clips


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_in_a_mask_it_converges_toward_the_masked_optimum(cls) -> None:
    model, x, cands = linear_setup(seed=3)
    mask = torch.zeros(1, *SHAPE[1:])
    mask[:, 0:2] = 1  # two frames of four
    wm = model.w * mask
    optimum = 2.0 / float(wm.norm())  # the closest point that changes only the masked pixels
    res = cls(max_iter=30).run(Oracle(model), x, 0, candidates=cands, mask=mask)
    outside = mask.expand(SHAPE) == 0
    assert res.success and torch.equal(res.x_adv[outside], x[outside])
    assert optimum * (1 - 1e-5) <= res.distance <= optimum * 1.1
    # the unmasked optimum is closer: the mask really bound the search
    assert res.distance > 1.2 * 2.0 / float(model.w.norm())


@pytest.mark.parametrize("cls", OPTIMIZERS)
@pytest.mark.parametrize("subspace", [None, "dct:2", "resize:2"])
@pytest.mark.parametrize("prior", [None, "edge:2"])
def test_counts_every_query_exactly(cls, subspace, prior) -> None:
    model, x, y, cands = toy_setup()
    oracle = Oracle(model)
    res = cls(max_iter=6, subspace=subspace, prior=prior).run(oracle, x, y, candidates=cands)
    assert res.queries == oracle.used == model.clips == sum(res.queries_by_phase.values())
    assert res.queries_by_phase == oracle.counts
    assert res.queries_by_phase["optimisation"] > 100  # the probes were asked, and counted
    assert res.success and res.label != y


@pytest.mark.parametrize("optimizer", ["hsja", "cgba@dct:2", "hsja+edge:2", "hsja+edge:2+top:0.2"])
@pytest.mark.parametrize("budget", [1, 5, 40, 137, 400, 1234])
def test_run_many_holds_every_videos_budget_and_returns_only_adversarial_videos(
    optimizer, budget
) -> None:
    model = Toy3(2)
    pool = torch.rand((60, *SHAPE), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        labels = model(pool).argmax(1)
    xs, ys = pool[:4], [int(v) for v in labels[:4]]
    cands = [pool[10:][labels[10:] != y][:5] for y in ys]
    model.clips = 0
    oracle = Oracle(model)
    attack = make_attack("opt", optimizer=optimizer, query_budget=budget, q=20, max_q=60)
    res = attack.run_many(oracle, xs, ys, candidates=cands, progress=False)
    assert model.clips == oracle.used == sum(r.queries for r in res)
    for r, x, y in zip(res, xs, ys):
        assert r.queries <= budget
        with torch.no_grad():
            answered = int(model(r.x_adv.unsqueeze(0)).argmax(1)[0])
        if r.success:  # a success is a video the model answers adversarial
            assert answered != y and r.label == answered and r.distance > 0
        else:
            assert torch.equal(r.x_adv, x) or answered == y
    if budget >= 400:
        assert all(r.success and r.stop_reason == "budget_exhausted" for r in res)
        assert all(r.queries >= budget - 60 for r in res)  # the end of the budget is used


def test_same_seed_same_result_other_seed_other_path_and_lockstep_equals_one_by_one() -> None:
    model, x, y, cands = toy_setup()
    runs = [HopSkipJump(max_iter=5, seed=s).run(Oracle(model), x, y, candidates=cands)
            for s in (3, 3, 4)]  # fmt: skip
    assert torch.equal(runs[0].x_adv, runs[1].x_adv) and runs[0].queries == runs[1].queries
    assert not torch.equal(runs[0].x_adv, runs[2].x_adv)
    many = HopSkipJump(max_iter=5, seed=3).run_many(
        Oracle(model), x[None], [y], candidates=[cands], progress=False
    )[0]
    assert torch.equal(many.x_adv, runs[0].x_adv) and many.queries == runs[0].queries


def test_on_the_heuristic_masks_it_stays_in_the_mask() -> None:
    model, x, y, cands = toy_setup()
    attack = make_attack("temporal+spatial", optimizer="hsja@dct:2", omega=1e9, phi=0.5,
                         q=20, max_q=40, max_iter=4)  # fmt: skip
    oracle = Oracle(model)
    res = attack.run(oracle, x, y, candidates=cands)
    assert res.success and res.queries == oracle.used == model.clips
    outside = res.mask.expand(SHAPE) == 0
    assert torch.equal(res.x_adv[outside], x[outside]) and res.sparsity > 0.5
    assert res.info["optimizer"] == "HopSkipJump [dct:2]"


def test_bad_constants_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="q <= max_q"):
        HopSkipJump(q=200, max_q=100)
    with pytest.raises(ValueError, match="gamma"):
        HopSkipJump(gamma=0)
    with pytest.raises(ValueError, match="give query_budget"):
        HopSkipJump(support="top:0.1")


def test_support_names_parse_and_bad_names_are_clear_errors() -> None:
    from hba_lib.attacks.heuristic import make_optimizer
    from hba_lib.attacks.hsja import Support, parse_support

    assert parse_support("top:0.05") == Support(0.05, 0.3) and parse_support(None) is None
    assert parse_support("top:0.1:0.5").spec == "top:0.1:0.5"
    opt = make_optimizer("hsja+edge:3+top:0.05", query_budget=100)
    assert opt.config.support == "top:0.05" and opt.config.prior == "edge:3"
    assert opt.name == "HopSkipJump [edge:3, top:0.05]"
    assert make_optimizer("cgba+top:0.1", query_budget=100).config.prior is None
    for bad, match in [
        ("top:1", "0 < K < 1"),
        ("top:0", "0 < K < 1"),
        ("top:0.1:1", "F < 1"),
        ("top:x", "numbers"),
        ("top", "expected"),
        ("bottom:0.1", "expected"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_support(bad)
    for bad, match in [
        ("opt+top:0.1", "only hsja and cgba"),
        ("sign-opt+top:0.1", "only hsja"),
        ("hsja+top:0.1+top:0.2", "two supports"),
        ("hsja+edge:2+edge:3", "two priors"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_optimizer(bad, query_budget=100)


def sparse_linear_setup(seed: int = 5, share: float = 0.05):
    """Linear2 whose normal lives on ``share`` of the values; x 2 / ||w|| from the hyperplane."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(SHAPE)
    w = torch.zeros(n)
    idx = torch.randperm(n, generator=g)[: int(share * n)]
    w[idx] = torch.randn(len(idx), generator=g)
    w = w.view(SHAPE)
    x = 0.4 + 0.2 * torch.rand(SHAPE, generator=g)
    b = float((w * x).sum()) + 2.0
    r = torch.rand((6, *SHAPE), generator=g) * 2 - 1
    candidates = (x + 0.35 * r + 0.06 * torch.sign(w)).clamp(0, 1)
    return Linear2(w, b), x, candidates


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_narrowing_the_support_to_where_the_normal_lives_gets_closer_at_equal_budget(cls) -> None:
    model, x, cands = sparse_linear_setup()
    optimum = 2.0 / float(model.w.norm())
    budget = 1500
    runs = {}
    for spec in (None, "top:0.1"):
        model.clips = 0
        oracle = Oracle(model)
        res = cls(q=20, max_q=60, query_budget=budget, support=spec).run(
            oracle, x, 0, candidates=cands
        )
        assert res.success and res.label == 1 and res.distance >= optimum * (1 - 1e-5)
        assert res.queries == oracle.used == model.clips <= budget
        runs[spec] = res
    narrowed = runs["top:0.1"]
    assert narrowed.info["support_narrowed"] is True
    assert 0.3 * budget <= narrowed.info["support_narrowed_at"] <= 0.3 * budget + 100
    kept = narrowed.mask.expand(SHAPE)
    assert int(kept.sum()) == int(0.1 * x.numel())  # the top tenth of the values (no ties)
    assert torch.equal(narrowed.x_adv[~kept], x[~kept])  # nothing changed outside it
    energy = float((model.w * kept).norm() ** 2 / model.w.norm() ** 2)
    assert energy >= 0.8, energy  # the kept values hold most of the normal's energy
    # closer at the same budget, in L2 and in MAP; the neighbouring input (no narrowing) is not
    assert narrowed.distance < 0.85 * runs[None].distance  # measured 0.77, 0.77
    assert narrowed.map < 0.5 * runs[None].map  # measured 0.23, 0.22
    assert "support_narrowed" not in runs[None].info and runs[None].mask is None


def test_narrowing_stays_inside_the_mask_it_was_given() -> None:
    model, x, y, cands = toy_setup()
    mask = torch.zeros(1, *SHAPE[1:])
    mask[:, 1:3] = 1
    oracle = Oracle(model)
    res = HopSkipJump(q=20, max_q=40, query_budget=600, support="top:0.25").run(
        oracle, x, y, candidates=cands, mask=mask)  # fmt: skip
    assert res.success and res.queries == oracle.used == model.clips
    assert res.info["support_narrowed"] is True
    kept = res.mask.expand(SHAPE)
    assert bool((kept <= (mask.expand(SHAPE) > 0)).all())  # a subset of the given mask
    assert int(kept.sum()) == int(0.25 * int(mask.expand(SHAPE).sum()))
    assert torch.equal(res.x_adv[~kept], x[~kept])


class AloneNeedsMargin(nn.Module):
    """Linear2's boundary in a batch, but a clip asked alone needs a margin ``tau`` more: float
    rounding that depends on the batch (one C3D test video met it), exaggerated."""

    def __init__(self, inner: Linear2, tau: float) -> None:
        super().__init__()
        self.inner, self.tau, self.clips = inner, tau, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clips += x.shape[0]
        s = (x.double().flatten(1) * self.inner.w.double().flatten()).sum(1) - self.inner.b
        if x.shape[0] == 1:
            s = s - self.tau
        return torch.stack([-s, s], dim=1).float() * 50


def test_a_closest_video_answered_otherwise_alone_falls_back_to_one_that_is_not() -> None:
    model, x, cands = linear_setup()
    flaky = AloneNeedsMargin(model, 1e-3)
    oracle = Oracle(flaky)
    res = HopSkipJump(max_iter=8).run(oracle, x, 0, candidates=cands)
    # the closest video was answered adversarial in a batch of probes and clean alone ...
    assert res.info["closest_answered_otherwise"] == 0
    # ... so a video it had replaced was checked, answered adversarial alone, and returned
    assert res.success and res.info["returned_runner_up"] and res.label == 1
    assert res.queries == oracle.used == flaky.clips and res.queries_by_phase["check"] >= 3
    with torch.no_grad():
        assert int(flaky(res.x_adv.unsqueeze(0)).argmax(1)[0]) == 1
    # the neighbouring input: no such model, no fallback (the closest passes its check)
    plain = HopSkipJump(max_iter=8).run(Oracle(model), x, 0, candidates=cands)
    assert plain.success and "closest_answered_otherwise" not in plain.info


def test_closest_keeps_the_videos_it_replaced_closest_first_and_inside_the_mask() -> None:
    from hba_lib.oracle.closest import Closest

    x = torch.zeros(SHAPE)
    c = Closest(x, keep=2)
    videos = [torch.zeros(SHAPE) for _ in range(4)]
    for i, v in enumerate(videos):
        v[0, i % 2, 0, 0] = 4.0 - i  # farther first, each offer a new closest
        assert c.offer(v.unsqueeze(0))
    assert float(c.video[0, 1, 0, 0]) == 1.0
    assert [d for d, _ in c.runners_up] == [2.0, 3.0]  # the last two replaced, closest first
    mask = torch.zeros(1, *SHAPE[1:])
    mask[:, 1] = 1  # frame 1 only: the video at distance 3 (frame 1) stays, 2 (frame 0) goes
    c.restrict(mask)
    assert [d for d, _ in c.runners_up] == [3.0] and float(c.distance) == 1.0


def test_normal_diagnostic_steps_on_the_true_normal_and_measures_the_estimate(
    bench_module,
) -> None:
    """``benchmarks/normal_diagnostic.py``: on a hyperplane the true normal is ``w``; stepping on
    it (after asking the same probes) reaches the closest point in a few iterations, where the
    estimate alone is still far; with the estimate kept, it records cosines with ``w`` (a sign
    error in the true normal would make every step fail, or every cosine negative)."""
    mod = bench_module("normal_diagnostic")
    model, x, cands = linear_setup()
    optimum = 2.0 / float(model.w.norm())
    distances = {}
    for replace in (False, True):
        stats: dict = {"whole": [], "tangential": []}
        cls = mod.diagnosed(HopSkipJump, model, replace, stats)
        model.clips = 0
        oracle = Oracle(model)
        res = cls(max_iter=4).run(oracle, x, 0, candidates=cands)
        assert res.success and res.queries == oracle.used
        # the diagnostic's own white-box evaluations (one a normal) are not queries
        assert model.clips == oracle.used + len(stats["whole"])
        distances[replace] = res.distance
        if not replace:
            assert len(stats["whole"]) == 4 and all(0.0 < c < 1.0 for c in stats["whole"])
    assert distances[True] <= optimum * 1.02 < distances[False], (distances, optimum)


def test_whitebox_floor_finds_the_closest_point_of_a_hyperplane(bench_module) -> None:
    """``benchmarks/whitebox_floor.py``'s white-box reference: on a hyperplane, DDN then the
    shrinking lands within a few per cent of the closest point and never below it (every
    distance it reports is of an adversarial video); a video the box cannot flip reports
    ``inf``, not the last point tried."""
    mod = bench_module("whitebox_floor")
    model, x, _ = linear_setup()
    optimum = 2.0 / float(model.w.norm())
    far = Linear2(model.w, float((model.w * x).sum()) + 1e6)  # out of reach in [0, 1]
    for m, expect in ((model, optimum), (far, math.inf)):
        xs = torch.stack([x, x])
        l2, p = mod.whitebox_l2(m, xs, torch.zeros(2, dtype=torch.long), steps=200, restarts=2)
        if math.isinf(expect):
            assert math.isinf(l2[0]) and math.isinf(l2[1]) and float(p.abs().sum()) == 0.0
            continue
        assert optimum * (1 - 1e-5) <= l2.min() and l2.max() <= optimum * 1.03, (l2, optimum)
        assert bool((m((xs + p).clamp(0, 1)).argmax(1) == 1).all())
        assert abs(float(p[0].norm()) - l2[0]) < 1e-5


def test_whitebox_floor_says_what_is_wrong_with_its_records(tmp_path, capsys, bench_module) -> None:
    """``benchmarks/whitebox_floor.py`` stops with a clear error (exit 2) and no model loaded
    for records it cannot read at a budget: a missing file, and a file whose records name no
    checkpoints and whose name no budget (``--budget`` is then the way)."""
    import json

    mod = bench_module("whitebox_floor")
    assert mod.main([str(tmp_path / "missing.jsonl")]) == 2
    assert "no records at" in capsys.readouterr().err
    unnamed = tmp_path / "records.jsonl"
    rec = {"attack": "ART HopSkipJump (same start)", "video": 0, "attacked": True,
           "success": True, "queries": 10, "map": 1.0, "distance": 1.0, "map_at": [1.0],
           "l2_at": [1.0]}  # fmt: skip
    unnamed.write_text(json.dumps(rec) + "\n")
    assert mod.main([str(unnamed)]) == 2
    assert "give --budget" in capsys.readouterr().err


def test_optimizer_variants_change_one_thing_and_put_it_back(bench_module, tmp_path) -> None:
    """``benchmarks/optimizer_variants.py`` (the screens of issue 22): ``step:1`` and
    ``sstep:1`` are the library to the last bit and ``step:2`` is not; ``sstep:2:1`` tries
    both steps and keeps the closer; a fade reaches flat probes when its share of the budget is
    spent and leaves the prior's before; ``pe:`` probes follow the perturbation's energy;
    ``q:`` reaches the optimizer the benchmark builds; ``nb:`` narrows to whole pixels ranked by
    the blurred energy; ``mono`` rejects a move that lands farther and ``back:R`` undoes a run-away; every patch is put back, also after an error; the report reads records
    files."""
    import json

    from hba_lib.attacks import base, heuristic, hsja
    from hba_lib.attacks.base import AttackState
    from hba_lib.oracle.queries import random_directions

    mod = bench_module("optimizer_variants")
    before = (base.BoundaryAttack.probes, hsja.HopSkipJump.geometric_step,
              hsja.HopSkipJump.move, heuristic.make_optimizer,
              hsja.HopSkipJump.narrow_score)  # fmt: skip
    model, x, cands = linear_setup()

    def run(spec=None):
        with mod.variant(spec) if spec else contextlib.nullcontext():
            oracle = Oracle(model)
            res = HopSkipJump(query_budget=600).run(oracle, x, 0, candidates=cands)
        assert res.success and res.queries == oracle.used
        return res

    plain, same, doubled = run(), run("step:1"), run("step:2:0.5")
    one, double_step, also_double, both = (
        run("sstep:1"),
        run("sstep:2"),
        run("step:2"),
        run("sstep:2:1"),
    )
    for res in (same, one):
        assert torch.equal(res.x_adv, plain.x_adv) and res.queries == plain.queries
    assert not torch.equal(doubled.x_adv, plain.x_adv)
    assert torch.equal(double_step.x_adv, also_double.x_adv)
    assert double_step.distance != plain.distance  # both steps tried, the closer kept:
    closest = min(plain.distance, double_step.distance)
    assert both.queries > plain.queries and both.distance <= closest
    attack, st = HopSkipJump(prior="edge:2", query_budget=600), AttackState(x, None)
    prior_probes = attack.probes(st, 5, torch.Generator().manual_seed(3))
    flat = random_directions(5, SHAPE, torch.Generator().manual_seed(3))
    with mod.variant("fade:0.2:0.5"):
        early = attack.probes(st, 5, torch.Generator().manual_seed(3))
        st.queries = 300
        late = attack.probes(st, 5, torch.Generator().manual_seed(3))
        assert heuristic.make_optimizer("hsja").config.q == 100  # only the fade changed
    assert torch.allclose(early, prior_probes, atol=1e-6) and not torch.allclose(early, flat)
    assert torch.allclose(late, flat, atol=1e-6)
    st.theta = torch.zeros_like(x)
    st.theta[:, 0] = 1.0  # the perturbation so far: frame 0 only
    with mod.variant("pe:1:1"):
        follow = attack.probes(st, 200, torch.Generator().manual_seed(3))
    share = float(follow[:, :, 0].pow(2).sum() / follow.pow(2).sum())
    assert share > 0.9 > 1 / SHAPE[1]  # the probes follow the perturbation's energy
    p = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    assert torch.equal(attack.narrow_score(p), p.abs())
    with mod.variant("nb:3"):
        score = attack.narrow_score(p)
        oracle = Oracle(model)
        narrowed = HopSkipJump(query_budget=600, support="top:0.3:0.5").run(oracle, x, 0,
                                                                           candidates=cands)  # fmt: skip
    assert torch.equal(score, score[:1].expand_as(score)) and not torch.equal(score, p.abs())
    assert narrowed.success and narrowed.queries == oracle.used
    assert narrowed.info["support_narrowed"]
    changed = (narrowed.x_adv - x) != 0  # whole pixels: every channel or none
    assert torch.equal(changed.any(0), changed.all(0)) and 0 < float(changed.float().mean()) < 0.31
    with mod.variant("mono"):  # on a hyperplane no move of the plain step lands farther
        assert torch.equal(run().x_adv, plain.x_adv)
    far, kept = run("step:4"), None
    with mod.variant("mono"):
        kept = run("step:4")  # the same move lands farther once: rejected, the point stays
    assert any(b.l2 > a.l2 for a, b in zip(far.trace, far.trace[1:]))
    assert all(b.l2 <= a.l2 for a, b in zip(kept.trace, kept.trace[1:]))
    assert kept.info["moves_rejected"] >= 1 and "moves_rejected" not in far.info
    with mod.variant("back:1"):  # a move past the closest point so far is undone
        undone = run("step:4")
    with mod.variant("back:2"):  # and one within 2 x of it kept
        within = run("step:4")
    assert all(b.l2 <= a.l2 for a, b in zip(undone.trace, undone.trace[1:]))
    assert undone.info["moves_back"] >= 1 and torch.equal(within.x_adv, far.x_adv)
    with pytest.raises(RuntimeError), mod.variant("q:7:9"):
        opt = heuristic.make_optimizer("hsja+edge:2")
        assert (opt.config.q, opt.config.max_q) == (7, 9)
        raise RuntimeError("an error inside the block")
    assert (base.BoundaryAttack.probes, hsja.HopSkipJump.geometric_step,
            hsja.HopSkipJump.move, heuristic.make_optimizer,
            hsja.HopSkipJump.narrow_score) == before  # fmt: skip
    bad_specs = ("step", "step:0", "step:2:1.5", "fade:0.5:0.2", "q:9:7", "q:1.5:3", "warp:1",
                 "pe:1:2", "pe:0:3", "sstep", "sstep:2:0", "nb", "nb:4", "nb:3:2", "nb:3:3:3",
                 "mono:1", "back", "back:0.5")  # fmt: skip
    for bad in bad_specs:
        with pytest.raises(ValueError, match="variant"):
            mod.parse_variant(bad)
    files = []
    for name, scale in (("a", 1.0), ("b", 0.5)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({
            "attack": "opt / hsja", "video": v, "distance": scale * (v + 1) if v else 3.0,
            "map": 1.0, "map_at": [4.0, 2.0, 1.0], "l2_at": [9.0, 5.0, 3.0], "success": True,
            "clean_returned": False}) + "\n" for v in range(3)))  # fmt: skip
        files.append(f"{path}={name}")
    rows = mod.report(files)
    assert [r["lower"] for r in rows] == [0, 2] and rows[1]["l2_over_first"] == pytest.approx(1 / 2)
    assert [r["above_1_25"] for r in rows] == [0, 0]
    assert rows[1]["l2_at"] == [9.0, 5.0, 1.5]
    assert rows[1]["geomean_ratio"] == pytest.approx(0.25 ** (1 / 3))
    # one row from several files of other videos (a screen's sets pooled), names may differ
    more = []
    for name, scale, row in (("c", 1.0, "opt / hsja"), ("d", 0.5, "opt / hsja+step:2")):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({
            "attack": row, "video": v, "distance": scale * v, "map": 1.0, "map_at": [4.0, 2.0, 1.0],
            "l2_at": [9.0, 5.0, scale * v], "success": True, "clean_returned": False}) + "\n"
            for v in (3, 4)))  # fmt: skip
        more.append(path)
    pooled = mod.report(
        [f"{tmp_path / 'a.jsonl'},{more[0]}=a", f"{tmp_path / 'b.jsonl'},{more[1]}=b"]
    )
    assert [r["videos"] for r in pooled] == [5, 5] and pooled[1]["lower"] == 4
    # a run-away counted: video 3 at 1.3 x the first's (a neighbour at exactly 1.25 x is not)
    runaway = tmp_path / "e.jsonl"
    runaway.write_text("".join(json.dumps({
        "attack": "opt / hsja", "video": v, "distance": {0: 3.9, 1: 2.5, 2: 3.0}[v], "map": 1.0,
        "map_at": [4.0, 2.0, 1.0], "l2_at": [9.0, 5.0, 3.0], "success": True,
        "clean_returned": False}) + "\n" for v in range(3)))  # fmt: skip
    counted = mod.report([f"{tmp_path / 'a.jsonl'}=a", f"{runaway}=e"])
    assert counted[1]["above_1_25"] == 1
    assert pooled[1]["geomean_ratio"] == pytest.approx((0.25 * 0.5 * 0.5) ** (1 / 5))
    with pytest.raises(ValueError, match="also in another file"):
        mod.report(
            [f"{tmp_path / 'a.jsonl'},{tmp_path / 'a.jsonl'}=a", f"{tmp_path / 'b.jsonl'}=b"]
        )


def test_learned_profile_weights_the_prior_and_is_put_back(
    bench_module, monkeypatch, tmp_path
) -> None:
    """Round 9 of issue 22: ``learn_profile.profile_from`` is the separable frames x positions
    energy of the perturbations (mean 1; a zero perturbation, no perturbation or an even blur
    a clear error), and ``prof:Q`` multiplies the prior's weights by it: a flat profile is the
    library's prior to the last bit, one on frame 0 sends the probes there; a profile of another
    shape, a missing file and a non-positive power are clear errors; ``prof:Q:F`` drops the
    profile once a share ``F`` of the budget is spent (not a query before); the patches are put
    back."""
    from hba_lib.oracle.priors import ProbePrior

    learn, mod = bench_module("learn_profile"), bench_module("optimizer_variants")
    p = torch.zeros(SHAPE)
    p[:, 1, 2, 3] = 2.0  # frame 1, one pixel
    q = torch.zeros(SHAPE)
    q[:, 3, 5, 6] = 1.0  # frame 3, another pixel
    prof = learn.profile_from([p, q])
    assert prof.shape == SHAPE[1:] and float(prof.mean()) == pytest.approx(1.0)
    t, h, w = SHAPE[1:]
    # each video's energy normalised: frames 1 and 3 half each, the two pixels half each
    expected = torch.zeros(SHAPE[1:])
    for f in (1, 3):
        for y, x_ in ((2, 3), (5, 6)):
            expected[f, y, x_] = 0.25 * t * h * w
    assert torch.allclose(prof, expected)
    blurred = learn.profile_from([p, q], blur=3)
    assert float(blurred[1, 1, 2]) > 0 and float(prof[1, 1, 2]) == 0  # spread to neighbours
    for bad, kwargs in (([p, torch.zeros(SHAPE)], {}), ([], {}), ([p], {"blur": 2})):
        with pytest.raises(ValueError):
            learn.profile_from(bad, **kwargs)
    x = 0.2 + 0.6 * torch.rand(SHAPE, generator=torch.Generator().manual_seed(1))
    prior, before = ProbePrior("lcedge", 3.0), ProbePrior.std
    plain = prior.std(x)
    with mod.variant("prof:1", torch.ones(SHAPE[1:])):
        assert torch.equal(prior.std(x), plain)
    frame0 = torch.full(SHAPE[1:], 0.01)
    frame0[0] = 10.0
    with mod.variant("prof:1", frame0):
        s = prior.std(x)
    share = lambda s: float(s[:, 0].pow(2).sum() / s.pow(2).sum())  # noqa: E731
    assert share(s) > 0.9 > share(plain)
    assert torch.allclose(s.pow(2).mean(), plain.pow(2).mean(), atol=1e-4)  # mean 1 + floor
    with pytest.raises(ValueError, match="profile is"), mod.variant("prof:1", torch.ones(2, 8, 8)):
        prior.std(x)
    monkeypatch.setattr(mod, "PROFILES", tmp_path)
    with pytest.raises(FileNotFoundError, match="learn_profile.py"), mod.variant("prof:1", "c3d"):
        pass
    # prof:Q:F: the profile until a share F of the budget is spent, then the prior alone
    from hba_lib.attacks.base import AttackState

    probes_before = HopSkipJump.probes
    attack = HopSkipJump(prior="edge:2", query_budget=600)
    st0 = AttackState(x, None)
    plain_probes = attack.probes(st0, 5, torch.Generator().manual_seed(3))
    with mod.variant("prof:1", frame0):
        st1 = AttackState(x, None)
        profiled = attack.probes(st1, 5, torch.Generator().manual_seed(3))
    with mod.variant("prof:1:0.5", frame0):
        st = AttackState(x, None)
        early = attack.probes(st, 5, torch.Generator().manual_seed(3))
        st.queries = 299
        still = attack.probes(st, 5, torch.Generator().manual_seed(3))
        st.queries = 300
        late = attack.probes(st, 5, torch.Generator().manual_seed(3))
    assert torch.equal(early, profiled) and torch.equal(still, profiled)
    assert torch.equal(late, plain_probes) and not torch.equal(profiled, plain_probes)
    assert ProbePrior.std is before and HopSkipJump.probes is probes_before
    for bad in ("prof", "prof:0", "prof:-1", "prof:1:2", "prof:1:0", "prof:1:0.5:1"):
        with pytest.raises(ValueError, match="variant"):
            mod.parse_variant(bad)


def test_screened_options_are_the_benchmark_variants(bench_module) -> None:
    """``step``, ``fade`` and ``narrow_by`` (issue 22's three changes, off by default) are the
    screens' patches of ``benchmarks/optimizer_variants.py`` to the last bit, each alone and
    together (the same queries, trace and ``x_adv``), each changes the run, the names reach
    them (``make_optimizer``), and a bad value or a missing prior / support / budget is a
    clear error."""
    from hba_lib.attacks.heuristic import make_optimizer

    mod = bench_module("optimizer_variants")
    model, x, cands = linear_setup()
    kw = {"query_budget": 600, "prior": "edge:2", "support": "top:0.3:0.5"}

    def run(**extra):
        oracle = Oracle(model)
        res = HopSkipJump(**kw, **extra).run(oracle, x, 0, candidates=cands)
        assert res.success and res.queries == oracle.used
        return res

    plain = run()
    off = run(step="none", fade="", narrow_by=None)  # the names of "off"
    assert torch.equal(off.x_adv, plain.x_adv) and off.queries == plain.queries
    options = {"step": "step:2:0.5", "fade": "fade:0.3:1", "narrow_by": "nb:3"}
    for chosen in ([k] for k in options), [list(options)]:
        for keys in chosen:
            with contextlib.ExitStack() as stack:
                for key in keys:
                    stack.enter_context(mod.variant(options[key]))
                patched = run()
            lib = run(**{key: options[key] for key in keys})
            assert torch.equal(lib.x_adv, patched.x_adv), keys
            assert lib.queries == patched.queries and lib.trace == patched.trace
            assert not torch.equal(lib.x_adv, plain.x_adv), keys
    opt = make_optimizer("hsja+edge:2+top:0.3+step:2:0.5+fade:0.3:1+nb:3:3", query_budget=600)
    assert (opt.config.step, opt.config.fade, opt.config.narrow_by) == (
        "step:2:0.5", "fade:0.3:1", "nb:3:3")  # fmt: skip
    assert opt.name == "HopSkipJump [edge:2, top:0.3, step:2:0.5, fade:0.3:1, nb:3:3]"
    assert make_optimizer("hsja").config.step is None  # off by default
    for bad in ("opt+step:2", "hsja+fade:0.3:1", "hsja+nb:3", "hsja+edge:2+top:0.3+nb:4",
                "hsja+step:0", "hsja+step:2:1.5", "hsja+edge:2+fade:0.5:0.2", "hsja+step:2+step:3",
                "hsja+step"):  # fmt: skip
        with pytest.raises(ValueError):
            make_optimizer(bad, query_budget=600)
    with pytest.raises(ValueError, match="query_budget"):
        HopSkipJump(prior="edge:2", fade="fade:0.3:1")


def test_every_option_reads_its_name_the_same_way() -> None:
    """One reader for every option's name (``hba_lib.oracle.specs.named_option``): the parsed
    value passes through, ``None`` and the off names give the off value, a number or another
    option's value is a ``TypeError`` naming the option (it was an ``AttributeError`` from
    inside the parser for ``step=2``), and a wrong string stays a ``ValueError``."""
    from hba_lib.attacks.hsja import (
        Fade,
        NarrowBy,
        StepBoost,
        Support,
        parse_fade,
        parse_narrow_by,
        parse_step,
        parse_support,
    )
    from hba_lib.oracle.priors import ProbePrior, parse_prior
    from hba_lib.oracle.subspace import FULL, Subspace, parse_subspace

    readers = [(parse_step, StepBoost(2.0, 0.5), "step:2:0.5", "step", None),
               (parse_fade, Fade(0.3, 1.0), "fade:0.3:1", "fade", None),
               (parse_narrow_by, NarrowBy(7, 1), "nb:7", "narrow_by", None),
               (parse_support, Support(0.3, 0.7), "top:0.3:0.7", "support", None),
               (parse_prior, ProbePrior("edge", 3.0), "edge:3", "prior", None),
               (parse_subspace, Subspace("dct", 4), "dct:4", "subspace", FULL)]  # fmt: skip
    values = [value for _, value, *_ in readers]
    for read, value, name, what, off in readers:
        assert read(value) is value and read(name) == value
        assert read(None) == off and read("") == off
        assert read("full" if off is FULL else "none") == off
        for wrong in (2, 0.3, [name], *(v for v in values if v is not value)):
            with pytest.raises(TypeError, match=f"^{what} must be a string like '"):
                read(wrong)
        with pytest.raises(ValueError, match=what):
            read(name + ":9:9")
    with pytest.raises(TypeError, match="step must be a string"):
        HopSkipJump(query_budget=100, step=2)
