"""Opt-attack: closed-form searches, exact query accounting, budget, masks, goals, seeds, batching."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hba_lib.attacks import OptAttack, OptAttackConfig, drive
from hba_lib.attacks.opt_attack import (
    local_search,
    targeted_initial_search,
    untargeted_initial_search,
)
from hba_lib.oracle import NonFiniteOutputError, Oracle
from hba_lib.oracle.goals import Targeted, Untargeted

torch.set_num_threads(1)  # tiny ops: threads only add overhead
SHAPE = (3, 4, 8, 8)  # [C, T, H, W]: small enough for many iterations in a second


def run_search(search, boundary: float) -> tuple[float, list[float]]:
    """Drive a search against 'adversarial iff lam >= boundary'; return g and the queried lams."""
    asked = []
    try:
        lam = next(search)
        while True:
            asked.append(lam)
            lam = search.send(lam >= boundary)
    except StopIteration as stop:
        return stop.value, asked


# -- the searches, against a known boundary ---------------------------------------------------
def test_untargeted_initial_search_bisects_to_tolerance() -> None:
    g, asked = run_search(
        untargeted_initial_search(3.0, math.inf, 0.01, known_adversarial=True), 1.3
    )
    assert 1.3 <= g <= 1.31
    assert len(asked) == math.ceil(math.log2(3.0 / 0.01))  # 9 bisections of [0, 3]


def test_untargeted_initial_search_uses_the_best_so_far() -> None:
    # best (2.0) < lam0: queried first; adversarial -> bisect [0, 2]
    g, asked = run_search(untargeted_initial_search(3.0, 2.0, 0.01), 1.3)
    assert asked[0] == 2.0 and 1.3 <= g <= 1.31 and len(asked) == 1 + math.ceil(math.log2(200))
    # not adversarial at best: the candidate is skipped after one query
    g, asked = run_search(untargeted_initial_search(3.0, 1.0, 0.01), 1.3)
    assert g == math.inf and asked == [1.0]


def test_local_search_grows_then_stops() -> None:
    # 0.5 * 1.01**k >= 1 first at k = 70; the last step (< 0.01) needs no bisection
    g, asked = run_search(local_search(0.5, 0.01, cap=10.0), 1.0)
    assert len(asked) == 71 and g == pytest.approx(0.5 * 1.01**70) and g >= 1.0
    # past the cap: inf
    g, asked = run_search(local_search(0.5, 0.01, cap=0.8), 1.0)
    assert g == math.inf and max(asked) <= 0.8


def test_local_search_shrinks_then_bisects() -> None:
    g, asked = run_search(local_search(2.0, 0.001, cap=10.0), 1.5)
    k = math.ceil(math.log(1.5 / 2.0) / math.log(0.99))  # 2 * 0.99**k < 1.5 first at k
    width = 2.0 * 0.99 ** (k - 1) * 0.01
    assert 1.5 <= g <= 1.5 + 0.001
    assert len(asked) == 1 + k + math.ceil(math.log2(width / 0.001))


def test_targeted_initial_search_grows_scans_bisects() -> None:
    g, asked = run_search(targeted_initial_search(1.0, 0.01, cap=100.0), 2.0)
    grows = math.ceil(math.log(2.0) / math.log(1.05))  # 1.05**15 >= 2
    lam = 1.05**grows
    first = math.ceil(2.0 / (lam / 99))  # first grid point >= 2
    assert asked[: grows + 1] == pytest.approx([1.05**i for i in range(grows + 1)])
    assert len(asked) == grows + 1 + first + math.ceil(math.log2((lam / 99) / 0.01))
    assert 2.0 <= g <= 2.01


# -- tiny models -------------------------------------------------------------------------------
class Linear2(nn.Module):
    """Class 1 iff w . x > b: along x + lam * theta the boundary is at (b - w.x) / (w.theta)."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.double().flatten(1) * self.w.double().flatten()).sum(1) - self.b
        return torch.stack([-s, s], dim=1).float() * 50


class Toy3(nn.Module):
    """Three classes, a curved boundary, per-video arithmetic (identical at any batch size)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "a", torch.randn(3, math.prod(SHAPE), generator=g, dtype=torch.float64)
        )
        self.register_buffer(
            "c", torch.randn(3, math.prod(SHAPE), generator=g, dtype=torch.float64)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.double().flatten(1).unsqueeze(1) - 0.5  # [B, 1, D]
        return (torch.tanh(3 * v * self.a) * self.c).sum(-1).float()


def linear_setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(SHAPE, generator=g)
    x = 0.4 + 0.05 * torch.rand(SHAPE, generator=g)
    b = float((w * x).sum()) + 2.0  # w.x is 2 below the boundary: x is class 0
    candidates = 0.4 + 0.2 * torch.rand((6, *SHAPE), generator=g)
    candidates += 0.02 * torch.sign(w)  # push some candidates over the boundary
    return Linear2(w, b), x, candidates


def toy_setup(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    model = Toy3(seed)
    pool = torch.rand((40, *SHAPE), generator=g)
    with torch.no_grad():
        labels = model(pool).argmax(1)
    x = pool[0]
    return model, x, int(labels[0]), pool[1:], labels[1:]


def small_config(**kw) -> OptAttackConfig:
    return OptAttackConfig(**{"max_iter": 8, **kw})


# -- the attack ----------------------------------------------------------------------------------
def test_initial_search_finds_the_closed_form_boundary() -> None:
    model, x, cands = linear_setup()
    oracle = Oracle(model)
    attack = OptAttack(small_config(max_iter=0))
    res = attack.run(oracle, x, label=0, candidates=cands)
    w, b = model.w, model.b
    adv = [(c - x) for c in cands if float((w * c).sum()) > b]
    assert adv, "the setup needs candidates across the boundary"
    gstar = [(b - float((w * x).sum())) / float((w * p).sum() / p.norm()) for p in adv]
    assert min(gstar) <= res.distance <= min(gstar) + 1e-2 + 1e-5
    assert res.success and res.label == 1
    # exact accounting: clean check + candidates + each kept candidate's search + final check
    assert res.queries == oracle.used == sum(res.queries_by_phase.values())
    assert res.queries_by_phase == oracle.counts
    assert res.queries_by_phase["check"] == 2
    assert res.queries_by_phase["optimisation"] == 0
    # each adversarial candidate's search, replayed on the closed form: exactly those queries
    searched, best = 0, math.inf
    for p in adv:
        theta, lam0 = p / p.norm(), float(p.norm())
        search = untargeted_initial_search(lam0, best, 1e-2, known_adversarial=True)
        try:
            lam = next(search)
            while True:
                searched += 1
                pt = (x + lam * theta).clamp(0, 1)
                lam = search.send(float((w * pt).sum()) > b)
        except StopIteration as stop:
            best = min(best, stop.value)
    assert res.queries_by_phase["init"] == len(cands) + searched
    assert res.distance == pytest.approx(best, abs=1e-5)


def test_optimisation_approaches_the_closed_form_optimum() -> None:
    model, x, cands = linear_setup()
    oracle = Oracle(model)
    res = OptAttack(small_config(max_iter=60)).run(oracle, x, label=0, candidates=cands)
    optimum = 2.0 / float(model.w.norm())  # the distance to the hyperplane
    init_g = res.trace[0].distance
    assert res.success and res.label == 1
    assert res.distance < init_g
    assert res.distance <= optimum + 0.5 * (init_g - optimum)
    assert res.distance >= optimum - 1e-6  # nothing is closer than the hyperplane
    assert res.queries == oracle.used and res.queries_by_phase == oracle.counts
    assert [r.queries for r in res.trace] == sorted(r.queries for r in res.trace)


def test_budget_of_n_yields_at_most_n_queries_and_keeps_the_best() -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:5]
    for budget in (1, 2, 7, 60, 333):
        oracle = Oracle(model, budget=budget)
        res = OptAttack(small_config(max_iter=1000)).run(oracle, x, label, candidates=cands)
        assert oracle.used <= budget and res.queries == oracle.used
        if budget >= 60:
            assert res.stop_reason == "budget_exhausted"
            assert res.success and res.label != label  # the best so far survives the cut
            assert oracle.used >= budget - 20  # a lockstep step is at most q queries


def test_masked_attack_leaves_pixels_outside_the_mask_unchanged() -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:8]
    mask = torch.zeros(1, *SHAPE[1:])
    mask[:, 1:3, 2:7, 1:6] = 1  # two frames, a box: the same mask for every channel
    res = OptAttack(small_config()).run(Oracle(model), x, label, candidates=cands, mask=mask)
    assert res.success and res.label != label
    outside = mask.expand(SHAPE) == 0
    assert torch.equal(res.x_adv[outside], x[outside])
    assert (res.x_adv != x)[~outside].any()
    assert res.sparsity == pytest.approx(1 - (2 / 4) * (25 / 64))
    assert res.map_star > res.map


def test_untargeted_and_targeted_goals() -> None:
    model, x, label, pool, labels = toy_setup()
    attack = OptAttack(small_config())
    res = attack.run(Oracle(model), x, label, candidates=pool[labels != label][:5])
    assert res.success and res.label != label and "untargeted" in res.goal
    target = next(t for t in range(3) if t != label and (labels == t).any())
    res = attack.run(Oracle(model), x, label, target=target, candidates=pool[labels == target][:5])
    assert res.success and res.label == target and "targeted" in res.goal


def test_clean_misclassified_video_is_not_attacked() -> None:
    model, x, label, pool, labels = toy_setup()
    oracle = Oracle(model)
    res = OptAttack(small_config()).run(oracle, x, (label + 1) % 3, candidates=pool[:3])
    assert not res.attacked and res.stop_reason == "clean_misclassified"
    assert oracle.used == 1 and torch.equal(res.x_adv, x)


def test_same_seed_same_result_other_seed_other_path() -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:5]
    runs = [OptAttack(small_config(seed=s)).run(Oracle(model), x, label, candidates=cands)
            for s in (3, 3, 4)]  # fmt: skip
    assert torch.equal(runs[0].x_adv, runs[1].x_adv) and runs[0].queries == runs[1].queries
    assert runs[0].trace == runs[1].trace
    assert not torch.equal(runs[0].x_adv, runs[2].x_adv)


def test_nan_model_output_gives_the_documented_error() -> None:
    class NaNModel(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(x.shape[0], 3)
            out[:, 0] = 1.0
            out[x.flatten(1).mean(1) > 0.55] = math.nan
            return out

    x = torch.full(SHAPE, 0.5)
    cands = torch.full((2, *SHAPE), 0.9)
    with pytest.raises(NonFiniteOutputError, match=r"query #2 .*phase 'init'"):
        OptAttack(small_config()).run(Oracle(NaNModel()), x, 0, candidates=cands)


@pytest.mark.parametrize("target", [None, 2])
def test_batched_equals_sequential(target) -> None:
    model, x, label, pool, labels = toy_setup()
    if target == label:
        target = (label + 1) % 3
    want = labels != label if target is None else labels == target
    cands = pool[want][:5]
    results, oracles = [], []
    for lockstep in (True, False):
        oracle = Oracle(model)
        attack = OptAttack(small_config(lockstep=lockstep, seed=7, max_iter=6))
        results.append(attack.run(oracle, x, label, target=target, candidates=cands))
        oracles.append(oracle)
    batched, sequential = results
    assert batched.iterations == sequential.iterations >= 3
    assert torch.equal(batched.x_adv, sequential.x_adv)
    assert batched.queries == sequential.queries
    assert batched.queries_by_phase == sequential.queries_by_phase
    assert batched.trace == sequential.trace
    # the batched form made far fewer oracle calls for the same queries
    assert oracles[0].used == oracles[1].used
    assert oracles[1].calls == oracles[1].used - (len(cands) - 1)  # candidates: one call
    assert oracles[0].calls < oracles[1].calls


def test_run_many_equals_run() -> None:
    model, x, label, pool, labels = toy_setup()
    xs = pool[:3]
    ys = [int(v) for v in labels[:3]]
    cands = [pool[3:][labels[3:] != y][:4] for y in ys]
    attack = OptAttack(small_config(max_iter=4, query_budget=400))
    many = attack.run_many(Oracle(model), xs, ys, candidates=cands)
    for i in range(3):
        one = attack.run(Oracle(model, budget=400), xs[i], ys[i], candidates=cands[i])
        assert torch.equal(one.x_adv, many[i].x_adv) and one.queries == many[i].queries
        assert many[i].queries <= 400


def test_init_and_process_api() -> None:
    """The heuristics' hook: a known direction and g instead of candidates, driven by hand."""
    model, x, cands = linear_setup()
    theta = torch.sign(model.w) / torch.sign(model.w).norm()
    g = 2.0 / float((model.w * theta).sum()) + 1e-3
    oracle = Oracle(model)
    attack = OptAttack(small_config(max_iter=3))
    res = drive(attack.process(x, Untargeted(0), init=(theta, g)), oracle)
    assert res.success and res.queries_by_phase["init"] == 0 and res.distance <= g + 1e-5
    with pytest.raises(ValueError, match="candidate"):
        drive(attack.process(x, Targeted(0, 1)), oracle)


def test_run_search_through_the_oracle_matches_the_closed_form() -> None:
    from hba_lib.attacks import run_search

    model, x, _ = linear_setup()
    theta = model.w / model.w.norm()
    oracle = Oracle(model)
    g, steps = run_search(oracle, x, theta, local_search(1.0, 1e-3, cap=100.0), Untargeted(0))
    assert 2.0 / float(model.w.norm()) <= g <= 2.0 / float(model.w.norm()) + 1e-3
    assert oracle.used == oracle.counts["init"] == len(steps)
    assert all(adv == (lam >= g) for lam, adv in steps)


def test_attack_set_picks_correct_videos_and_candidates() -> None:
    from types import SimpleNamespace

    from hba_lib.attacks import attack_set
    from hba_lib.data.video import to_uint8_frames

    model, _, _, pool, _ = toy_setup()
    frames = to_uint8_frames(pool)  # stored layout, as data sets keep it
    with torch.no_grad():
        pred = model(torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 255).argmax(1)
    truth = pred.numpy().copy()
    truth[:5] = (truth[:5] + 1) % 3  # five videos the model gets wrong
    data = SimpleNamespace(videos=frames, labels=truth, classes=["a", "b", "c"])
    for targeted in (False, True):
        chosen = attack_set(data, model, 4, num_candidates=3, targeted=targeted, seed=0)
        assert len(chosen.indices) == 4 and all(i >= 5 for i in chosen.indices)
        for i, y, cands, t in zip(chosen.indices, chosen.labels, chosen.candidates, chosen.targets):
            assert y == truth[i] and cands.shape == (3, *SHAPE)
            assert (t is None) != targeted and t != y
            idx = [j for j in range(len(truth)) if any(
                torch.equal(torch.from_numpy(frames[j]).permute(3, 0, 1, 2).float() / 255, c)
                for c in cands)]  # fmt: skip
            assert idx and i not in idx
            assert all((truth[j] != y) if t is None else (truth[j] == t) for j in idx)


def test_attack_set_attacks_the_videos_it_is_given() -> None:
    from types import SimpleNamespace

    from hba_lib.attacks import attack_set
    from hba_lib.data.video import to_uint8_frames

    model, _, _, pool, _ = toy_setup()
    frames = to_uint8_frames(pool)
    with torch.no_grad():
        pred = model(torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 255).argmax(1)
    truth = pred.numpy().copy()
    truth[0] = (truth[0] + 1) % 3  # one video the model gets wrong
    data = SimpleNamespace(videos=frames, labels=truth, classes=["a", "b", "c"])
    chosen = attack_set(data, model, 1, num_candidates=2, indices=[7, 3])
    assert chosen.indices == [7, 3] and chosen.labels == [int(truth[7]), int(truth[3])]
    assert [c.shape[0] for c in chosen.candidates] == [2, 2]
    with pytest.raises(ValueError, match=r"misclassifies videos \[0\]"):
        attack_set(data, model, 1, indices=[3, 0])
    with pytest.raises(ValueError, match="distinct"):
        attack_set(data, model, 1, indices=[3, 3])
    with pytest.raises(ValueError, match="out of range"):
        attack_set(data, model, 1, indices=[len(truth)])


def test_config_budget_holds_on_an_unlimited_oracle() -> None:
    model, x, label, pool, labels = toy_setup()
    oracle = Oracle(model)  # no budget of its own
    attack = OptAttack(small_config(max_iter=1000, query_budget=150))
    res = attack.run(oracle, x, label, candidates=pool[labels != label][:5])
    assert res.stop_reason == "budget_exhausted" and res.queries == oracle.used <= 150
    assert res.success and res.queries_by_phase["check"] == 2


def test_step_schedule_decays_resets_and_stops():
    """The collapse rule, written once for Opt-attack and Sign-OPT: reset eta, divide beta by
    10, stop after ``max_beta_decays`` decays."""
    from hba_lib.attacks.base import StepSchedule

    cfg = OptAttackConfig(eta=0.2, beta=0.005, eta_reset=1.0, eta_floor=1e-4, max_beta_decays=2)
    s = StepSchedule.from_config(cfg)
    assert (s.eta, s.beta, s.eta_reset) == (0.2, 0.005, 1.0)
    s.eta = 5e-5
    assert s.collapsed()
    assert s.decay() is False
    assert (s.eta, s.decays) == (1.0, 1) and s.beta == pytest.approx(5e-4)
    assert not s.collapsed()
    assert s.decay() is True and s.beta == pytest.approx(5e-5)
    assert StepSchedule.from_config(OptAttackConfig(eta=0.3)).eta_reset == 0.3  # None: eta
