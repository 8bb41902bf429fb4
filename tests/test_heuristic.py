"""Algorithm 1 (key frames), Algorithm 2 (presets), Sign-OPT: masks, counts, sparsity, equality."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hba_lib import metrics
from hba_lib.attacks import (
    HeuristicAttack,
    OptAttackConfig,
    SignOPT,
    drive,
    make_attack,
    make_optimizer,
)
from hba_lib.heuristics.key_frames import (
    accept_deletion,
    deletion_trial,
    frame_importance,
    frame_support,
    select_key_frames,
)
from hba_lib.oracle import Oracle
from hba_lib.oracle.goals import Targeted, Untargeted

torch.set_num_threads(1)
SHAPE = (3, 6, 8, 8)  # [C, T, H, W]
OPTIMIZERS = ["opt", "opt-authors", "opt-relative", "sign-opt"]


class FramesModel(nn.Module):
    """Class 1 iff the mean of ``frames`` exceeds ``b`` (other frames never matter); the
    probability grows with the margin, so frame importance has something to sort."""

    def __init__(self, frames: list[int], b: float, target_class: int = 1, k: int = 3) -> None:
        super().__init__()
        self.frames, self.b, self.target_class, self.k = frames, b, target_class, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.double()[:, :, self.frames].mean(dim=(1, 2, 3, 4)) - self.b
        logits = torch.zeros(x.shape[0], self.k, dtype=torch.float64)
        logits[:, 0] = -s * 200
        logits[:, self.target_class] = s * 200
        return logits.float()


class Toy3(nn.Module):
    """Three classes with a curved boundary; per-video arithmetic."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = math.prod(SHAPE)
        self.register_buffer("a", torch.randn(3, d, generator=g, dtype=torch.float64))
        self.register_buffer("c", torch.randn(3, d, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.double().flatten(1).unsqueeze(1) - 0.5
        return (torch.tanh(3 * v * self.a) * self.c).sum(-1).float()


def frames_setup(frames=(1, 3)):
    """x below the boundary; a candidate far over it on the key frames, noisy elsewhere."""
    g = torch.Generator().manual_seed(0)
    x = 0.4 + 0.05 * torch.rand(SHAPE, generator=g)
    b = float(x[:, list(frames)].mean()) + 0.05
    cand = x + 0.1 * torch.rand(SHAPE, generator=g)  # noise on every frame ...
    cand[:, list(frames)] = x[:, list(frames)] + 0.09  # ... and the key frames over b
    return FramesModel(list(frames), b), x, cand.clamp(0, 1).unsqueeze(0)


def toy_setup(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    model = Toy3(seed)
    pool = torch.rand((40, *SHAPE), generator=g)
    with torch.no_grad():
        labels = model(pool).argmax(1)
    return model, pool[0], int(labels[0]), pool[1:], labels[1:]


def measured_sparsity(mask: torch.Tensor) -> float:
    """1 - mean over frames of the share of each frame's pixels in the mask, counted by hand."""
    m = mask.expand(SHAPE)[0].float()  # one channel: [T, H, W]
    per_frame = [float(m[t].sum()) / (SHAPE[2] * SHAPE[3]) for t in range(SHAPE[1])]
    return 1.0 - sum(per_frame) / SHAPE[1]


# -- Algorithm 1 ---------------------------------------------------------------------------------
def test_frame_importance_costs_exactly_t_queries_in_one_call() -> None:
    model, x, cand = frames_setup()
    oracle = Oracle(model)
    probs, order = drive(frame_importance(x, cand[0] - x, Untargeted(0)), oracle)
    assert oracle.used == SHAPE[1] and oracle.calls == 1 and oracle.counts["init"] == SHAPE[1]
    # removing a key frame breaks the attack: never a deletion candidate
    assert probs[1] == probs[3] == -math.inf and set(order) == {0, 2, 4, 5}
    assert [probs[t] for t in order] == sorted((probs[t] for t in order), reverse=True)


@pytest.mark.parametrize(
    "acceptance, omega",
    [("paper", 1e9), ("whole_video", 0.0), ("whole_video", 3.0), ("whole_video", 1e9),
     ("adversarial_once_under_omega", 1e9)],
)  # fmt: skip
def test_algorithm1_keeps_exactly_the_frames_the_model_uses(acceptance, omega) -> None:
    model, x, cand = frames_setup()
    oracle = Oracle(model)
    found = drive(select_key_frames(x, cand[0], Untargeted(0), omega=omega,
                                    acceptance=acceptance), oracle)  # fmt: skip
    assert found.key_frames == [1, 3]
    if acceptance == "whole_video":  # omega = 0 too: every deletion lowered the whole-video MAP
        assert found.map < found.initial_map
    assert [t.frame for t in found.trials] == found.order
    assert all(t.accepted for t in found.trials) and found.trials[-1].frames_left == 2
    assert oracle.used == oracle.counts["init"] == found.queries  # all initialisation
    assert found.queries == SHAPE[1] + found.initial_queries + sum(t.queries for t in found.trials)
    # the direction is adversarial at g and perturbs only the key frames
    x_adv = (x + found.g * found.theta).clamp(0, 1)
    assert int(model(x_adv[None]).argmax()) == 1
    assert torch.equal(x_adv[:, [0, 2, 4, 5]], x[:, [0, 2, 4, 5]])


def _whole_video_map(x, cand, kept, g) -> float:
    p = (cand - x) * torch.isin(torch.arange(SHAPE[1]), torch.tensor(kept)).view(1, -1, 1, 1)
    x_adv = (x + g * p / torch.linalg.vector_norm(p)).clamp(0, 1)
    return metrics.mean_absolute_perturbation(x, x_adv)


def test_paper_rule_bounds_the_map_on_the_kept_frames() -> None:
    """Dropping an unused frame whose perturbation is below the average lowers the whole-video
    MAP but raises the MAP on the kept frames: the paper's rule refuses it when that is above
    omega, and accepts it when omega reaches it; the whole-video reading accepts it anyway."""
    model, x, cand = frames_setup()
    found = drive(select_key_frames(x, cand[0], Untargeted(0), omega=0.0), Oracle(model))
    first = found.trials[0]
    kept = [t for t in range(SHAPE[1]) if t != first.frame]
    assert math.isfinite(first.g), "still adversarial: refused by the bound, not by the check"
    assert _whole_video_map(x, cand[0], kept, first.g) < found.initial_map * 0.95  # whole: lower
    assert first.map > found.initial_map > 0.0 and not first.accepted  # kept frames: higher
    assert found.key_frames == list(range(SHAPE[1]))  # omega 0 drops nothing here
    # omega exactly at the new key-frame MAP: accepted (<= omega)
    at = drive(select_key_frames(x, cand[0], Untargeted(0), omega=first.map), Oracle(model))
    assert at.trials[0].accepted and at.trials[0].frame == first.frame
    # the whole-video reading accepts every still-adversarial deletion, omega 0 or not
    whole = drive(select_key_frames(x, cand[0], Untargeted(0), omega=0.0,
                                    acceptance="whole_video"), Oracle(model))  # fmt: skip
    assert whole.trials[0].accepted


def test_algorithm1_targeted() -> None:
    model, x, cand = frames_setup(frames=(2, 5))
    model.target_class = 2
    found = drive(select_key_frames(x, cand[0], Targeted(0, 2), omega=30.0), Oracle(model))
    assert found.key_frames == [2, 5] and math.isfinite(found.g)


def test_targeted_trial_checks_x_plus_p_hat_once() -> None:
    """Algorithm 1, lines 12-13: one query of ``x + p_hat``; not the target: refused. The
    ``grow`` option accepts what is the target only at a larger scale, at a higher price."""
    model, x, cand = frames_setup(frames=(2, 5))
    model.target_class = 2
    goal = Targeted(0, 2)
    p_hat = (cand[0] - x) * 0.5  # half the step: x + p_hat stays under the boundary
    logged: list[torch.Tensor] = []

    class Logging(nn.Module):
        def forward(self, v):
            logged.append(v.clone())
            return model(v)

    oracle = Oracle(Logging())
    theta, g = drive(deletion_trial(x, p_hat, goal, 1e-2, 10.0, "check"), oracle)
    assert g == math.inf and oracle.used == 1
    assert torch.equal(logged[0][0], (x + p_hat).clamp(0, 1))  # exactly x + p_hat
    grown = Oracle(model)
    _, g_grow = drive(deletion_trial(x, p_hat, goal, 1e-2, 10.0, "grow"), grown)
    assert math.isfinite(g_grow) and g_grow > float(torch.linalg.vector_norm(p_hat))
    assert grown.used > 10
    # the target at x + p_hat: one check, then a bisection on [0, ||p_hat||]
    full = cand[0] - x
    checked = Oracle(model)
    _, g_ok = drive(deletion_trial(x, full, goal, 1e-2, 10.0, "check"), checked)
    lam0 = float(torch.linalg.vector_norm(full))
    assert 0 < g_ok <= lam0 and checked.used == 1 + math.ceil(math.log2(lam0 / 1e-2))


def _pruning_setup():
    """Five candidates over the boundary of a model that reads frames {1, 3}; the closer a
    candidate's direction points at those frames, the smaller its ``g``; the best is third."""
    g = torch.Generator().manual_seed(5)
    x = 0.4 + 0.05 * torch.rand(SHAPE, generator=g)
    model = FramesModel([1, 3], float(x[:, [1, 3]].mean()) + 0.05)
    cands = []
    for noise, step in ((0.30, 0.09), (0.20, 0.10), (0.02, 0.12), (0.25, 0.08), (0.10, 0.09)):
        c = x + noise * torch.rand(SHAPE, generator=g)
        c[:, [1, 3]] = x[:, [1, 3]] + step
        cands.append(c.clamp(0, 1))
    return model, x, torch.stack(cands)


def test_pruning_keeps_the_best_candidate_and_costs_less() -> None:
    model, x, cands = _pruning_setup()
    runs = {}
    for prune in (True, False):
        oracle = Oracle(model)
        attack = make_attack("temporal", omega=0.0, max_iter=0, prune=prune)
        res = attack.run(oracle, x, 0, candidates=cands)
        runs[prune] = (res.info["key_frames"], oracle.counts["init"])
    full, full_queries = runs[False]
    pruned, pruned_queries = runs[True]
    initial = {c: s["initial_g"] for c, s in zip(full["candidates"], full["searches"])}
    best = min(initial, key=initial.get)
    assert best == 2 and full["candidates"] == [0, 1, 2, 3, 4]
    assert best in pruned["survivors"] and pruned["survivors"][-1] == best
    for c, s in zip(pruned["candidates"], pruned["searches"]):  # the same g, pruned or not
        assert s["initial_g"] == pytest.approx(initial[c], abs=2e-2)
    assert pruned["chosen"] in pruned["survivors"]
    assert pruned_queries < full_queries
    assert len(pruned["survivors"]) < len(full["survivors"])


def test_omega_bound_accepts_a_deletion_that_raises_map() -> None:
    assert accept_deletion("paper", omega=3.0, cur_map=1.0, new_map=2.5)  # under the bound
    assert not accept_deletion("paper", omega=3.0, cur_map=1.0, new_map=3.5)
    assert accept_deletion("paper", omega=0.0, cur_map=4.0, new_map=3.9)  # lower MAP
    assert not accept_deletion("paper", omega=0.0, cur_map=4.0, new_map=4.0)
    assert not accept_deletion("paper", omega=1e9, cur_map=4.0, new_map=math.inf)  # broke it
    # the authors' looser rule: once under omega, any adversarial deletion
    assert accept_deletion("adversarial_once_under_omega", 3.0, cur_map=2.0, new_map=7.0)
    assert not accept_deletion("adversarial_once_under_omega", 3.0, cur_map=4.0, new_map=7.0)


# -- Algorithm 2 and the optimizers on masks -----------------------------------------------------
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_perturbation_never_leaves_the_mask(optimizer) -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:4]
    attack = make_attack("temporal+spatial", optimizer=optimizer, omega=1e9, phi=0.5,
                         max_iter=3, q=10, seed=0)  # fmt: skip
    oracle = Oracle(model)
    res = attack.run(oracle, x, label, candidates=cands)
    assert res.success and res.label != label
    assert res.mask is not None and res.mask.shape == (1, *SHAPE[1:])
    outside = ~res.mask.expand(SHAPE)
    assert torch.equal(res.x_adv[outside], x[outside]) and (res.x_adv != x)[~outside].any()
    spatial = attack.spatial_mask(x).bool()
    assert not (res.mask & ~spatial).any()  # key frames only narrow the salient regions
    kept = frame_support(res.mask)
    assert len(kept) < SHAPE[1], "a huge omega drops frames"
    assert res.sparsity == pytest.approx(measured_sparsity(res.mask))
    assert res.sparsity == pytest.approx(metrics.sparsity(res.mask))
    assert res.map_star == pytest.approx(metrics.mean_absolute_perturbation(x, res.x_adv, res.mask))
    assert res.queries == oracle.used and res.queries_by_phase == oracle.counts
    info = res.info["key_frames"]
    assert info["key_frames"] == kept and info["chosen"] in info["candidates"]


def test_spatial_mask_alone_has_sparsity_one_minus_phi() -> None:
    model, x, label, pool, labels = toy_setup()
    attack = make_attack("temporal+spatial", omega=None, phi=0.25, max_iter=2, seed=0)
    res = attack.run(Oracle(model), x, label, candidates=pool[labels != label][:3])
    assert res.sparsity == pytest.approx(0.75) == pytest.approx(measured_sparsity(res.mask))
    assert "key_frames" not in res.info


@pytest.mark.parametrize("optimizer", ["opt", "sign-opt"])
def test_no_heuristics_reproduces_the_plain_optimizer_exactly(optimizer) -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:5]
    kw = {"max_iter": 5, "seed": 3, "q": 12}
    plain = make_optimizer(optimizer, **kw)
    heur = HeuristicAttack(optimizer, omega=None, phi=1.0, **kw)
    preset = make_attack("opt", optimizer=optimizer, **kw)
    runs, oracles = [], []
    for attack in (plain, heur, preset):
        oracles.append(Oracle(model))
        runs.append(attack.run(oracles[-1], x, label, candidates=cands))
    for other, oracle in zip(runs[1:], oracles[1:]):
        assert torch.equal(other.x_adv, runs[0].x_adv) and other.trace == runs[0].trace
        assert other.queries_by_phase == runs[0].queries_by_phase
        assert oracle.calls == oracles[0].calls
        assert other.sparsity == 0.0 and other.mask is None


def test_presets_follow_the_paper() -> None:
    a = make_attack("temporal+spatial")
    assert (a.heuristics.omega, a.heuristics.phi) == (3.0, 0.6)
    a = make_attack("temporal+spatial", targeted=True)
    assert (a.heuristics.omega, a.heuristics.phi) == (30.0, 0.8)
    a = make_attack("temporal")
    assert (a.heuristics.omega, a.heuristics.phi) == (3.0, 1.0)
    assert make_attack("opt").heuristics.omega is None
    authors = make_optimizer("opt-authors").config
    assert (authors.q, authors.beta, authors.grad_scale, authors.eta_reset) == (15, 0.01, 15, 1)
    assert make_optimizer("opt").config == OptAttackConfig()
    with pytest.raises(ValueError, match="phi"):
        make_attack("temporal+spatial", phi=0.0)
    with pytest.raises(ValueError, match="configuration"):
        make_attack("spatial-only")
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("adam")


def test_key_frame_queries_are_initialisation_and_the_budget_holds() -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:3]
    for budget in (5, 40, 300):
        oracle = Oracle(model)
        attack = make_attack("temporal", omega=1e9, query_budget=budget, max_iter=50, seed=0)
        res = attack.run(oracle, x, label, candidates=cands)
        assert res.queries == oracle.used <= budget
        assert res.queries_by_phase == oracle.counts
    oracle = Oracle(model)
    res = make_attack("temporal", omega=1e9, max_iter=0).run(oracle, x, label, candidates=cands)
    info = res.info["key_frames"]
    with torch.no_grad():
        assert info["adversarial_candidates"] == (model(cands).argmax(1) != label).nonzero(
        ).flatten().tolist()  # fmt: skip
    assert info["candidates"] == info["survivors"] and info["chosen"] in info["survivors"]
    # exactly: the candidates' classes + the pruned boundary searches + per survivor, T
    # importance queries, its trials (each counted where it ran)
    for search in info["searches"]:
        assert search["queries"] == SHAPE[1] + sum(t["queries"] for t in search["trials"])
    searched = sum(s["queries"] for s in info["searches"])
    assert res.queries_by_phase["init"] == len(cands) + info["start_queries"] + searched
    assert res.queries_by_phase["optimisation"] == 0 and res.queries_by_phase["check"] == 2


def test_run_many_equals_run_for_the_heuristic_attack() -> None:
    model, _, _, pool, labels = toy_setup()
    xs, ys = pool[:3], [int(v) for v in labels[:3]]
    cands = [pool[3:][labels[3:] != y][:3] for y in ys]
    attack = make_attack("temporal+spatial", optimizer="sign-opt", omega=1e9, phi=0.5, q=8,
                         max_iter=3, query_budget=600, seed=1)  # fmt: skip
    many = attack.run_many(Oracle(model), xs, ys, candidates=cands)
    for i in range(3):
        one = attack.run(Oracle(model, budget=600), xs[i], ys[i], candidates=cands[i])
        assert torch.equal(one.x_adv, many[i].x_adv) and one.queries == many[i].queries


# -- Sign-OPT ------------------------------------------------------------------------------------
def test_sign_opt_asks_its_probes_in_one_call_and_descends() -> None:
    model, x, label, pool, labels = toy_setup()
    cands = pool[labels != label][:4]
    oracle = Oracle(model)
    res = SignOPT(q=30, max_iter=10, seed=0).run(oracle, x, label, candidates=cands)
    assert res.success and res.distance < res.trace[0].distance
    assert res.queries == oracle.used and res.queries_by_phase == oracle.counts
    assert res.info["optimizer"] == "Sign-OPT" and res.iterations >= 1
    # each iteration: one call of q sign queries, then one query per line-search step; every
    # other call is one query, but for the call that classifies the 4 candidates
    assert res.queries == len(cands) + 30 * res.iterations + (oracle.calls - 1 - res.iterations)


def test_sign_opt_approaches_the_closed_form_optimum_on_a_hyperplane() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(SHAPE, generator=g)

    class Linear(nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            s = (v.double().flatten(1) * w.double().flatten()).sum(1) - b
            return torch.stack([-s, s], 1).float() * 50

    x = 0.4 + 0.05 * torch.rand(SHAPE, generator=g)
    b = float((w * x).sum()) + 2.0
    cands = (0.4 + 0.2 * torch.rand((6, *SHAPE), generator=g) + 0.02 * torch.sign(w)).clamp(0, 1)
    optimum = 2.0 / float(w.norm())
    res = SignOPT(query_budget=1500, q=50, seed=0).run(Oracle(Linear()), x, 0, candidates=cands)
    assert res.success and optimum - 1e-6 <= res.distance
    assert res.distance <= optimum + 0.5 * (res.trace[0].distance - optimum)


def test_smooth_probes_are_unit_masked_and_coarse() -> None:
    from hba_lib.oracle.queries import random_directions

    mask = torch.zeros(1, *SHAPE[1:])
    mask[:, 2:4, 1:7, 2:8] = 1
    gen = torch.Generator().manual_seed(0)
    u = random_directions(5, SHAPE, gen, mask, scale=2)
    assert u.shape == (5, *SHAPE)
    assert torch.allclose(torch.linalg.vector_norm(u.flatten(1), dim=1), torch.ones(5))
    assert not u[(mask.expand(SHAPE) == 0).expand(5, *SHAPE)].any()
    # bilinear upsampling of a 2x coarser grid: neighbouring pixels are strongly correlated
    fine = random_directions(200, SHAPE, torch.Generator().manual_seed(1), None, scale=1)
    smooth = random_directions(200, SHAPE, torch.Generator().manual_seed(1), None, scale=2)

    def neighbour_corr(v: torch.Tensor) -> float:
        a, b = v[..., :-1].flatten(), v[..., 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert neighbour_corr(smooth) > 0.5 > abs(neighbour_corr(fine))
    model, x, label, pool, labels = toy_setup()
    res = make_attack("temporal+spatial", optimizer="sign-opt", omega=None, phi=0.5, q=10,
                      max_iter=3, probe_scale=2, seed=0).run(
        Oracle(model), x, label, candidates=pool[labels != label][:3])  # fmt: skip
    assert res.success and torch.equal(
        res.x_adv[~res.mask.expand(SHAPE)], x[~res.mask.expand(SHAPE)]
    )


def test_benchmark_report_of_the_peers_alone(capsys, bench_module) -> None:
    """``heuristic_attack.py --configs '' --variants '' --peers ...`` (the peers of a comparison,
    alone) prints its tables instead of failing on the empty table of hba rows."""
    import argparse
    import json

    from hba_lib import paths

    mod = bench_module("heuristic_attack")
    file = paths.REPO_ROOT / "benchmarks/results/heuristic_movinet_a0_skip10_4v_2000q_seed0.jsonl"
    records = [json.loads(line) for line in file.read_text().splitlines()]
    args = argparse.Namespace(model="movinet_a0", skip_surest=10, seed=0, attack_seed=0,
                              candidates=10, budget=2000, mq_budget=2000, threads=1,
                              device="cpu")  # fmt: skip
    peers = [r for r in records if r["attack"].startswith("ART")]
    results_by = {name: [None] * 4 for name in dict.fromkeys(r["attack"] for r in peers)}
    mod.report(args, results_by, peers, [500, 1000, 2000], 1.0)
    out = capsys.readouterr().out
    assert "(no hba rows in this run)" in out
    assert "| ART Sign-OPT (ART's random start) | 2.00 | 1.97 | 1.96 | 7.613 |" in out


def test_benchmark_attack_seed_names_its_own_records(capsys, bench_module) -> None:
    """``--attack-seed``: another draw of the attacks' probes on the same videos writes its own
    records file (a resumed run must not take seed 0's rows as its own) and says so in the
    report's header; the default (the video seed) keeps the file names and header of before."""
    import argparse
    import json

    from hba_lib import paths

    mod = bench_module("heuristic_attack")
    base = dict(model="lrcn", split="test", skip_surest=0, videos=20, budget=10000, seed=0,
                slice="")  # fmt: skip
    same = mod.default_out(argparse.Namespace(**base, attack_seed=0))
    other = mod.default_out(argparse.Namespace(**base, attack_seed=2))
    assert same.name == "heuristic_lrcn_20v_10000q_seed0.jsonl"
    assert other.name == "heuristic_lrcn_20v_10000q_seed0_attackseed2.jsonl"
    val = mod.default_out(argparse.Namespace(**{**base, "split": "val"}, attack_seed=0))
    assert val.name == "heuristic_lrcn_val_20v_10000q_seed0.jsonl"
    file = paths.REPO_ROOT / "benchmarks/results/heuristic_lrcn_20v_10000q_seed0.jsonl"
    peers = [r for r in map(json.loads, file.read_text().splitlines()) if r["attack"][:3] == "ART"]
    results_by = {name: [None] * 20 for name in dict.fromkeys(r["attack"] for r in peers)}
    args = argparse.Namespace(model="lrcn", split="test", skip_surest=0, seed=0, attack_seed=2,
                              candidates=10, budget=10000, mq_budget=50000, threads=1,
                              device="cpu")  # fmt: skip
    mod.report(args, results_by, peers, [2000, 5000, 10000], 1.0)
    assert "synthetic test set, 20 correctly classified videos (seed 0, attack seed 2)," in (
        capsys.readouterr().out
    )
    args.attack_seed = 0
    mod.report(args, results_by, peers, [2000, 5000, 10000], 1.0)
    assert "videos (seed 0), 10 candidates" in capsys.readouterr().out


def test_median_intervals_pair_the_videos_and_count_a_failure(
    tmp_path, capsys, bench_module
) -> None:
    """``benchmarks/median_intervals.py``: a row at exactly 0.4 x the peer's MAP and 0.6 x its L2
    on every video keeps those ratios in every paired resample (goal holds in 100 %); an unpaired
    resampling would scatter them. One video not fooled: the goal holds only in the resamples
    that leave that video out, about (1 - 1/n)^n of them. At the last budget a row is read at
    the video it returned, one video for both metrics, even where its trace saw a closer one
    (a narrowed support); a run past the budget (to a stopping rule) at its best within it."""
    import json

    mod = bench_module("median_intervals")
    n = 20
    rng = np.random.default_rng(1)
    peer = rng.lognormal(0.0, 1.0, size=n)  # very unequal videos: unpaired ratios would move
    lines = []
    for v in range(n):
        p = peer[v]
        for name, m, l2, ok, ret, queries in [
            ("ART HopSkipJump (same start)", p, p, True, (p, p), 100),
            ("ART Sign-OPT (ART's random start)", 3 * p, 3 * p, True, (3 * p, 3 * p), 100),
            ("steady", 0.4 * p, 0.6 * p, True, (0.4 * p, 0.6 * p), 100),
            ("one miss", 0.4 * p, 0.6 * p, v != 7, (0.4 * p, 0.6 * p), 100),
            ("narrowed", 0.4 * p, 0.6 * p, True, (0.4 * p, 0.9 * p), 100),  # saw a closer one
            ("past the budget", 0.4 * p, 0.6 * p, True, (0.1 * p, 0.1 * p), 500),
        ]:
            lines.append(json.dumps({"attack": name, "video": v, "attacked": True, "success": ok,
                                     "map_at": [9.0, m], "l2_at": [9.0, l2], "map": ret[0],
                                     "distance": ret[1], "queries": queries}))  # fmt: skip
    file = tmp_path / "records_100q_seed0.jsonl"
    file.write_text("\n".join(lines) + "\n")
    assert mod.budget_of(file) == 100
    assert mod.main([str(file), "--draws", "4000"]) == 0
    out = capsys.readouterr().out
    assert "better peer in MAP: ART HopSkipJump" in out
    assert "| steady | 0.40 | 0.40-0.40 | 0.60 | 0.60-0.60 | 100 % |" in out
    assert "| narrowed | 0.40 | 0.40-0.40 | 0.90 | 0.90-0.90 | 0 % |" in out
    assert "| past the budget | 0.40 | 0.40-0.40 | 0.60 | 0.60-0.60 | 100 % |" in out
    miss = next(line for line in out.splitlines() if line.startswith("| one miss |"))
    holds = float(miss.split("|")[-2].strip(" %")) / 100
    assert abs(holds - (1 - 1 / n) ** n) < 0.03, miss
    assert mod.main([str(file), "--rows", "nobody"]) == 2
    screen = tmp_path / "screen.jsonl"  # a screen's one row beside the peers' records
    screen.write_text("".join(line + "\n" for line in lines if '"steady"' in line))
    assert mod.main([str(file), "--also", f"{screen}=again", "--rows", "again"]) == 0
    assert "| again | 0.40 | 0.40-0.40 | 0.60 | 0.60-0.60 | 100 % |" in capsys.readouterr().out
    assert mod.main([str(file), "--also", str(screen)]) == 2  # no label: says so
    assert mod.main([str(file), "--also", f"{file}=all"]) == 2  # more than one row
    unnamed = tmp_path / "records.jsonl"
    unnamed.write_text(file.read_text())
    assert mod.main([str(unnamed)]) == 2  # no budget in its name: says so, gives up
    assert "give --budget" in capsys.readouterr().err
    assert mod.main([str(unnamed), "--budget", "100", "--rows", "steady"]) == 0
    # records that name their checkpoints (written since 2026-12-06) carry their own budget,
    # whatever the file's name; records that disagree are a clear error
    named = [{**json.loads(line), "budgets": [50, 100]} for line in lines]
    unnamed.write_text("\n".join(map(json.dumps, named)) + "\n")
    assert mod.budget_of(unnamed, named) == 100
    assert mod.main([str(unnamed), "--rows", "narrowed"]) == 0
    assert "| narrowed | 0.40 | 0.40-0.40 | 0.90 | 0.90-0.90 | 0 % |" in capsys.readouterr().out
    assert mod.main([str(unnamed), "--budget", "200"]) == 2  # --budget against the records'
    assert "the records name [100]" in capsys.readouterr().err
    named[0]["budgets"] = [50, 200]
    unnamed.write_text("\n".join(map(json.dumps, named)) + "\n")
    assert mod.main([str(unnamed)]) == 2
    assert "different checkpoints" in capsys.readouterr().err


def test_median_intervals_per_video_choice_between_two_rows(tmp_path, capsys, bench_module) -> None:
    """``median_intervals.py --pair A,B``: on each video the row ahead at the first checkpoint
    is picked and read at the last (the order flips on videos 2 and 3: picked wrong there), the
    per-video better of the two is the pick that knows the outcome; medians over the peer's."""
    import json

    mod = bench_module("median_intervals")
    # per video: (A first, A last, B first, B last); the peer's L2 is 1 on every video
    rows = [(1, 1, 2, 2), (2, 2, 1, 1), (1, 3, 2, 2), (2, 1, 1, 4), (1, 1, 1, 5)]
    lines = []
    for v, (a0, a1, b0, b1) in enumerate(rows):
        for name, first, last in [
            ("A", a0, a1),
            ("B", b0, b1),
            ("ART HopSkipJump (same start)", 1, 1),
        ]:
            lines.append(json.dumps({"attack": name, "video": v, "attacked": True, "success": True,
                                     "map_at": [first, last], "l2_at": [first, last], "map": last,
                                     "distance": last, "queries": 100, "budgets": [50, 100]}))  # fmt: skip
    file = tmp_path / "records.jsonl"
    file.write_text("\n".join(lines) + "\n")
    records = [json.loads(line) for line in lines]
    c = mod.pair_choice(records, "A", "B", 100)
    # A last 1 2 3 1 1 -> 1; B 2 1 2 4 5 -> 2; better of the two 1 1 2 1 1 -> 1;
    # ahead first (ties to A): A B A B A -> 1 1 3 4 1 -> 1; order kept on videos 0, 1, 4
    assert c == {"n": 5, "agree": 3, "a": 1.0, "b": 2.0, "best": 1.0, "early": 1.0}
    records_b_first = [r for r in records if r["attack"] != "A" or r["video"] != 4]
    assert mod.pair_choice(records_b_first, "A", "B", 100)["n"] == 4  # shared videos only
    assert mod.main([str(file), "--rows", "A", "--pair", "A,B", "--draws", "100"]) == 0
    assert "ahead at the first checkpoint 1.00" in capsys.readouterr().out
    assert mod.main([str(file), "--rows", "A", "--pair", "A,nobody"]) == 2
    assert "no row 'nobody'" in capsys.readouterr().err
    assert mod.main([str(file), "--rows", "A", "--pair", "A"]) == 2


def test_compare_records_counts_identical_videos_and_the_ratios(
    tmp_path, capsys, bench_module
) -> None:
    """``benchmarks/compare_records.py``: a rerun's row is identical on a video only if its
    queries, MAP and L2 all agree (one query more is not identical, though the L2 is); the
    per-video L2 ratios are the rerun's over the first's; rows or videos only one file has are
    left out; a missing file or no shared row is a clear error (exit 2)."""
    import json

    mod = bench_module("compare_records")

    def rec(name, v, q, l2):
        return json.dumps({"attack": name, "video": v, "queries": q, "map": 1.0, "distance": l2})

    first = [
        rec("A", 0, 100, 1.0),
        rec("A", 1, 100, 2.0),
        rec("A", 2, 100, 4.0),
        rec("B", 0, 9, 1.0),
    ]
    again = [rec("A", 0, 100, 1.0), rec("A", 1, 101, 2.0), rec("A", 2, 100, 6.0), rec("A", 3, 1, 9.0),
             rec("C", 0, 9, 1.0)]  # fmt: skip
    f1, f2 = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    f1.write_text("\n".join(first) + "\n")
    f2.write_text("\n".join(again) + "\n")
    (row,) = mod.compare(mod.read(f1), mod.read(f2))
    assert row["row"] == "A" and row["videos"] == 3 and row["identical"] == 1
    assert row["median_first"] == 2.0 and row["median_rerun"] == 2.0
    assert (row["ratio_median"], row["ratio_min"], row["ratio_max"]) == (1.0, 1.0, 1.5)
    assert mod.main([str(f1), str(f2)]) == 0
    assert "| A | 3 | 1 | 2.000 | 2.000 | 1.000 (1.00-1.50) |" in capsys.readouterr().out
    assert mod.main([str(f1), str(tmp_path / "nowhere.jsonl")]) == 2
    f2.write_text(rec("C", 0, 9, 1.0) + "\n")
    assert mod.main([str(f1), str(f2)]) == 2
    assert "no row" in capsys.readouterr().err


def test_benchmark_records_name_their_budget(bench_module) -> None:
    """``heuristic_attack.py``'s records carry their checkpoints, so a records file's budget is
    read from the records (``median_intervals.budget_of``), not parsed from its name alone, and
    a record reads at its returned video at the last one (``metrics.final_pair``)."""
    from types import SimpleNamespace

    mod = bench_module("heuristic_attack")
    res = SimpleNamespace(success=True, attacked=True, queries=90, queries_by_phase={},
                          map=0.5, map_star=0.5, sparsity=0.1, distance=0.9, linf=2.0,
                          stop_reason="budget", wall_time=1.0, trace=[])  # fmt: skip
    rec = mod.row("a row", 3, res, [50, 100])
    assert rec["budgets"] == [50, 100] and rec["map_at"] == [math.inf, 0.5]
    assert bench_module("median_intervals").budget_of("records.jsonl", [rec]) == 100
    assert metrics.final_pair(rec, rec["budgets"][-1]) == (0.5, 0.9)


def test_benchmark_report_with_hba_rows_judges_the_goal(capsys, bench_module) -> None:
    """``heuristic_attack.py``'s report from the records of a run with hba rows and both peers
    (the held-out real clips, read back as a resumed run reads them) prints the verdict its
    committed printout shows, and flips it when one video of a row is not fooled: the goal
    needs FR 100 %."""
    import argparse
    import json

    from hba_lib import paths

    mod = bench_module("heuristic_attack")
    file = paths.REPO_ROOT / "benchmarks/results/heuristic_movinet_a0_skip10_4v_2000q_seed0.jsonl"
    records = [json.loads(line) for line in file.read_text().splitlines()]
    args = argparse.Namespace(model="movinet_a0", skip_surest=10, seed=0, attack_seed=0,
                              candidates=10, budget=2000, mq_budget=2000, threads=1,
                              device="cpu")  # fmt: skip
    chosen = "temporal [whole-video MAP] / hsja@dct:4+top:0.3:0.7"
    other = "temporal+spatial [whole-video MAP] / hsja@dct:4+top:0.3:0.7"
    third = "temporal+spatial [whole-video MAP] / hsja@dct:4+top:0.3:0.5"

    def report(recs: list[dict]) -> str:
        results_by: dict = {}
        for r in recs:
            results_by.setdefault(r["attack"], []).append(mod._Recorded(r))
        mod.report(args, results_by, recs, [500, 1000, 2000], 1.0)
        return capsys.readouterr().out

    out = report(records)
    assert f"Goal (the better peer in each metric): MET by {chosen}, {other}, {third}\n" in out
    assert f"- {chosen}: MAP 0.28 (0.14 x), L2 3.323 (0.45 x), FR 100 %: MAP ok, L2 ok" in out
    missed = [dict(r) for r in records]
    first = next(r for r in missed if r["attack"] == chosen)
    first["success"] = False  # its final check failed: not fooled at the last budget
    out = report(missed)
    assert f"Goal (the better peer in each metric): MET by {other}, {third}\n" in out
    assert f"- {chosen}: " in out and "FR 75 %" in out


def test_choose_optimizer_reads_each_row_at_its_returned_video(bench_module) -> None:
    """``benchmarks/choose_optimizer.py``'s medians are the verdict's: a run's returned video
    (one video for both metrics), not the best of each metric its trace saw; a failed final
    check counts as not fooled (inf, and FR below 100 %)."""
    mod = bench_module("choose_optimizer")
    recs = [{"attacked": True, "success": True, "queries": 100, "map_at": [9.0, 1.0],
             "l2_at": [9.0, 2.0], "map": 1.5, "distance": 3.0} for _ in range(3)]  # fmt: skip
    assert mod.medians(recs) == (1.5, 3.0, 100.0)
    recs[0] = {**recs[0], "success": False}
    m, l2, fr = mod.medians(recs)
    assert (m, l2) == (1.5, 3.0) and abs(fr - 200 / 3) < 1e-9
    recs[1] = {**recs[1], "success": False}
    assert mod.medians(recs)[:2] == (math.inf, math.inf)
