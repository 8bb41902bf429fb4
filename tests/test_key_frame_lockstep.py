"""Algorithm 2's key-frame searches in lockstep: the same queries and results as one after
another, fewer oracle calls, the budget held to the query (``queries.together``,
``heuristic.key_frames_in_lockstep``, ``heuristic.FrameGroups``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hba_lib.attacks import drive, make_attack
from hba_lib.attacks.heuristic import FrameGroups
from hba_lib.heuristics.key_frames import (
    bisection_queries,
    initial_search_queries,
    key_frame_query_bound,
    select_key_frames,
)
from hba_lib.oracle import BudgetExhausted, Oracle
from hba_lib.oracle.closest import Closest
from hba_lib.oracle.goals import Targeted, Untargeted
from hba_lib.oracle.queries import (
    bisect,
    local_search,
    search_process,
    targeted_initial_search,
    together,
    untargeted_initial_search,
)

torch.set_num_threads(1)
SHAPE = (3, 6, 8, 8)  # [C, T, H, W]


class Toy3(nn.Module):
    """Three classes with a curved boundary; per-video arithmetic (a batch answers each video
    as alone), and a count of the clips it sees."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = math.prod(SHAPE)
        self.register_buffer("a", torch.randn(3, d, generator=g, dtype=torch.float64))
        self.register_buffer("c", torch.randn(3, d, generator=g, dtype=torch.float64))
        self.clips = self.forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clips += x.shape[0]
        self.forwards += 1
        v = x.double().flatten(1).unsqueeze(1) - 0.5
        return (torch.tanh(3 * v * self.a) * self.c).sum(-1).float()


class Linear(nn.Module):
    """Class 1 iff the mean pixel exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.double().flatten(1).mean(1) - 0.5
        return torch.stack([-s, s], 1).float() * 100


def toy_setup(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    model = Toy3(seed)
    pool = torch.rand((60, *SHAPE), generator=g)
    with torch.no_grad():
        labels = model(pool).argmax(1)
    model.clips = 0
    return model, pool, labels


def searches(n: int = 3):
    """``n`` local searches for g along the all-ones direction from x = 0.2 (g = 0.3 * 24)."""
    x = torch.full(SHAPE, 0.2)
    theta = torch.ones(SHAPE) / math.sqrt(math.prod(SHAPE))
    return x, [
        search_process(x, theta, local_search(lam0, 1e-3, 100.0, grow=1.1, shrink=0.9), Untargeted(0))
        for lam0 in (2.0, 9.0, 30.0)[:n]
    ]  # fmt: skip


# -- the helper ----------------------------------------------------------------------------------
def test_together_answers_each_process_as_alone_in_fewer_calls() -> None:
    alone = []
    for proc in searches()[1]:
        oracle = Oracle(Linear())
        alone.append((drive(proc, oracle), oracle.used, oracle.calls))
    oracle = Oracle(Linear())
    finished = []
    values = drive(together(searches()[1], done=lambda i, v: finished.append(i)), oracle)
    assert values == [v for v, _, _ in alone]  # exactly the values they reach alone
    assert all(math.isclose(v, 0.3 * math.prod(SHAPE) ** 0.5, rel_tol=1e-3) for v in values)
    assert oracle.used == sum(u for _, u, _ in alone)  # exactly their queries
    assert oracle.calls == max(c for _, _, c in alone)  # one call a step for all
    assert sorted(finished) == [0, 1, 2]


def test_together_asks_again_for_fewer_when_the_budget_does_not_fit() -> None:
    total = 0
    for proc in searches()[1]:
        oracle = Oracle(Linear())
        drive(proc, oracle)
        total += oracle.used
    for budget in (7, 17, total - 1):
        oracle = Oracle(Linear(), budget=budget)
        with pytest.raises(BudgetExhausted):
            drive(together(searches()[1]), oracle)
        assert oracle.used == budget  # the last query the budget allows is spent, no more
    oracle = Oracle(Linear(), budget=total)
    drive(together(searches()[1]), oracle)
    assert oracle.used == total


# -- the replay of what AttackState.see keeps ----------------------------------------------------
def test_frame_groups_replay_equals_offering_every_point_in_order() -> None:
    """FrameGroups must leave a Closest as offering every recorded point, in order, would:
    under any mask made of the spatial mask with frames dropped, from any prior state."""
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(SHAPE, generator=g)
    spatial = (torch.rand((1, *SHAPE[1:]), generator=g) < 0.6).float()
    goal = Untargeted(0)
    batches = []
    for _ in range(12):
        n = int(torch.randint(1, 5, (1,), generator=g))
        frames = torch.rand((n, 1, SHAPE[1], 1, 1), generator=g) < 0.5
        delta = 0.2 * torch.randn((n, *SHAPE), generator=g) * frames
        inside = torch.rand((n, 1, 1, 1, 1), generator=g) < 0.8  # some leave the spatial mask
        pts = x + delta * torch.where(inside, spatial, torch.ones_like(spatial))
        labels = torch.randint(0, 2, (n,), generator=g)  # 1: adversarial
        batches.append((pts, labels))
    groups = FrameGroups(x, spatial, goal)
    for pts, labels in batches:
        groups.add(pts, labels)
    assert groups.queries == sum(p.shape[0] for p, _ in batches)
    prior = x + 0.05 * spatial  # a video kept before, inside every mask below
    for drop in ([], [0], [1, 4], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]):
        mask = spatial.clone()
        mask[:, drop] = 0
        for start in (None, prior):
            want, got = Closest(x, mask), Closest(x, mask)
            if start is not None:
                want.offer(start.unsqueeze(0))
                got.offer(start.unsqueeze(0))
            for pts, labels in batches:  # what AttackState.see does, request by request
                adv = goal.is_adversarial(labels)
                want.offer(pts[adv].clamp(0.0, 1.0))
            groups.offer_to(got)
            assert got.distance == want.distance
            assert (got.video is None) == (want.video is None)
            assert got.video is None or torch.equal(got.video, want.video)


def test_frame_groups_replay_keeps_the_first_of_equals() -> None:
    """Points at exactly the same distance (k pixels moved by 0.25 each): the first offered
    wins, in a group and across groups, as Closest does."""
    g = torch.Generator().manual_seed(1)
    x = torch.full(SHAPE, 0.5)
    spatial = torch.ones((1, *SHAPE[1:]))
    goal = Untargeted(0)
    groups, want = FrameGroups(x, spatial, goal), Closest(x, spatial)
    for _ in range(6):
        pts = x.repeat(3, 1, 1, 1, 1)
        for p in pts:
            frames = torch.randperm(SHAPE[1], generator=g)[:2]  # two frames: few groups
            flat = p[:, frames].flatten()
            flat[torch.randperm(flat.numel(), generator=g)[:8]] += 0.25
            p[:, frames] = flat.view(SHAPE[0], 2, *SHAPE[2:])
        labels = torch.ones(3, dtype=torch.long)
        groups.add(pts, labels)
        want.offer(pts.clamp(0.0, 1.0))
    got = Closest(x, spatial)
    groups.offer_to(got)
    assert got.distance == want.distance == pytest.approx(0.25 * math.sqrt(8))
    assert torch.equal(got.video, want.video)


# -- the attack ----------------------------------------------------------------------------------
def run_both(targeted: bool, optimizer: str, budget: int | None = None, video: int = 0):
    model, pool, labels = toy_setup()
    x, label = pool[video], int(labels[video])
    target = (label + 1) % 3 if targeted else None
    want = labels[10:] == target if targeted else labels[10:] != label
    cands = pool[10:][want][:6]
    far = torch.linalg.vector_norm((cands - x).flatten(1), dim=1).argsort(descending=True)
    cands = cands[far]  # the farthest first: later candidates tend to beat them (survivors)
    out = {}
    for lockstep in (True, False):
        attack = make_attack("temporal+spatial", targeted=targeted, optimizer=optimizer,
                             omega=0.5 if not targeted else 5.0, phi=0.5, q=6, max_iter=4,
                             query_budget=budget, seed=3, lockstep=lockstep,
                             batch_key_frames=True)  # fmt: skip
        oracle = Oracle(model)
        model.clips = 0
        res = attack.run(oracle, x, label, target, candidates=cands)
        out[lockstep] = (res, oracle, model.clips)
    return out


@pytest.mark.parametrize("optimizer", ["opt", "sign-opt"])
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("video", [0, 1, 5])
def test_key_frame_searches_in_lockstep_equal_one_after_another(targeted, optimizer, video) -> None:
    out = run_both(targeted, optimizer, video=video)
    (res, oracle, clips), (seq, seq_oracle, seq_clips) = out[True], out[False]
    info, seq_info = res.info["key_frames"], seq.info["key_frames"]
    if len(seq_info["survivors"]) < 2:
        pytest.skip("one survivor: nothing runs in lockstep")
    assert res.success and seq.success
    assert res.queries == seq.queries == oracle.used == clips == seq_clips
    assert res.queries_by_phase == seq.queries_by_phase
    assert torch.equal(res.x_adv, seq.x_adv)
    assert torch.equal(res.mask, seq.mask)
    assert res.trace == seq.trace
    assert info == seq_info  # survivors, key frames, every trial, start queries
    assert (res.iterations, res.stop_reason, res.distance) == (
        seq.iterations, seq.stop_reason, seq.distance)  # fmt: skip
    # the survivors' searches shared oracle calls
    assert oracle.calls < seq_oracle.calls


def test_auto_by_default_so_a_cut_stage_stays_one_after_another() -> None:
    """Where a budget cuts the key-frame stage, full lockstep and one after another differ (the
    default LRCN, a test video with three survivors, 600 queries): the default, ``"auto"``,
    keeps the order the committed tables were measured in."""
    from hba_lib.attacks import attack_set
    from hba_lib.data.synthetic import SyntheticActions
    from hba_lib.models import load_default_model

    model = load_default_model("lrcn")
    chosen = attack_set(SyntheticActions(split="test"), model, 1, 5, seed=0)
    x, y, cands = chosen.xs[0], chosen.labels[0], chosen.candidates[0]
    kw = dict(optimizer="opt", query_budget=600, seed=0, max_iter=3)
    assert make_attack("temporal", **kw).heuristics.batch_key_frames == "auto"
    default = make_attack("temporal", **kw).run(Oracle(model), x, y, candidates=cands)
    one_by_one = make_attack("temporal", lockstep=False, **kw).run(Oracle(model), x, y,
                                                                   candidates=cands)  # fmt: skip
    batched = make_attack("temporal", batch_key_frames=True, **kw).run(Oracle(model), x, y,
                                                                       candidates=cands)  # fmt: skip
    assert len(default.info["key_frames"]["survivors"]) >= 2
    sequential = make_attack("temporal", batch_key_frames=False, **kw).run(Oracle(model), x, y,
                                                                           candidates=cands)  # fmt: skip
    assert default.queries == one_by_one.queries and torch.equal(default.x_adv, one_by_one.x_adv)
    assert default.queries == sequential.queries and torch.equal(default.x_adv, sequential.x_adv)
    assert default.info["key_frames"] == sequential.info["key_frames"]
    assert not torch.equal(batched.x_adv, one_by_one.x_adv)  # what the option changes here


def test_some_videos_have_several_survivors() -> None:
    """The equality test above compares something: several survivors on most of its videos."""
    many = 0
    for video in (0, 1, 5):
        for targeted in (False, True):
            seq = run_both(targeted, "opt", video=video)[False][0]
            many += len(seq.info["key_frames"]["survivors"]) >= 2
    assert many >= 5


@pytest.mark.parametrize("targeted", [False, True])
def test_a_budget_that_cuts_the_key_frame_searches_holds_and_counts_everything(targeted) -> None:
    model, pool, labels = toy_setup()
    full = run_both(targeted, "opt")[True][0]
    init = full.queries_by_phase["init"]
    for budget in range(40, init + 10, max(1, init // 12)):
        res, oracle, clips = run_both(targeted, "opt", budget=budget)[True]
        assert res.queries == oracle.used == clips <= budget  # exact, and each one counted
        assert res.queries_by_phase == oracle.counts
        assert budget - res.queries < 20  # a refused step is asked again for fewer
        if res.success:  # x_adv is a video the model answered adversarial
            with torch.no_grad():
                label = int(model(res.x_adv.unsqueeze(0)).argmax(1))
            assert label != int(labels[0]) if not targeted else label == (int(labels[0]) + 1) % 3
    # in run_many too, every video on its own budget
    xs, ys = pool[:3], [int(v) for v in labels[:3]]
    cands = [pool[10:][labels[10:] != y][:6] for y in ys]
    attack = make_attack("temporal+spatial", omega=0.5, phi=0.5, q=6, max_iter=4, seed=3,
                         query_budget=init // 2, batch_key_frames=True)  # fmt: skip
    base = Oracle(model)
    model.clips = 0
    many = attack.run_many(base, xs, ys, candidates=cands, progress=False)
    assert sum(r.queries for r in many) == base.used == model.clips
    assert all(r.queries <= init // 2 for r in many)


# -- "auto": overlapped where bounds prove it, identical to one after another --------------------
def toy_case(video: int, targeted: bool):
    model, pool, labels = toy_setup()
    x, label = pool[video], int(labels[video])
    target = (label + 1) % 3 if targeted else None
    want = labels[10:] == target if targeted else labels[10:] != label
    cands = pool[10:][want][:6]
    far = torch.linalg.vector_norm((cands - x).flatten(1), dim=1).argsort(descending=True)
    return model, x, label, target, cands[far]


def toy_attack(targeted: bool, batch, budget: int | None, trial: str = "check", **kw):
    return make_attack("temporal+spatial", targeted=targeted, optimizer="opt",
                       omega=0.5 if not targeted else 5.0, phi=0.5, q=6, max_iter=4,
                       query_budget=budget, seed=3, batch_key_frames=batch, trial=trial, **kw)  # fmt: skip


def assert_same(a, b) -> None:
    assert a.queries == b.queries
    assert a.queries_by_phase == b.queries_by_phase
    assert torch.equal(a.x_adv, b.x_adv)
    assert (a.mask is None) == (b.mask is None) and (a.mask is None or torch.equal(a.mask, b.mask))
    assert a.trace == b.trace
    assert a.info["key_frames"] == b.info["key_frames"]
    assert (a.success, a.iterations, a.stop_reason, a.distance) == (
        b.success, b.iterations, b.stop_reason, b.distance)  # fmt: skip


def auto_against_sequential(model, x, label, target, cands, targeted, budget) -> bool:
    """Run the toy attack with ``"auto"`` and one after another at ``budget``; check they agree
    bit for bit, on the same queries, ``"auto"`` in no more oracle calls; whether it took fewer."""
    seq_oracle, auto_oracle = Oracle(model), Oracle(model)
    seq = toy_attack(targeted, False, budget).run(seq_oracle, x, label, target, candidates=cands)
    auto = toy_attack(targeted, "auto", budget).run(auto_oracle, x, label, target,
                                                    candidates=cands)  # fmt: skip
    assert_same(auto, seq)
    assert auto_oracle.used == seq_oracle.used == auto.queries
    assert auto_oracle.calls <= seq_oracle.calls
    return auto_oracle.calls < seq_oracle.calls


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("video", [0, 1, 5])
def test_auto_equals_one_after_another_at_every_budget(targeted, video) -> None:
    """Bit for bit the sequential result, at budgets that cut the candidates' searches, the
    key-frame searches and the optimisation, and with none; fewer oracle calls where it can."""
    model, x, label, target, cands = toy_case(video, targeted)
    full = toy_attack(targeted, False, None).run(Oracle(model), x, label, target, candidates=cands)
    init = full.queries_by_phase["init"]
    budgets = sorted({*range(8, init + 40, max(1, init // 15)), init - 1, init, init + 1, None},
                     key=lambda b: math.inf if b is None else b)  # fmt: skip
    overlapped = 0
    for budget in budgets:
        overlapped += auto_against_sequential(model, x, label, target, cands, targeted, budget)
    if len(full.info["key_frames"]["survivors"]) >= 1:
        assert overlapped > 0  # it did overlap somewhere


@pytest.mark.parametrize("targeted", [False, True])
def test_auto_holds_the_oracles_own_budget_as_its_limit(targeted) -> None:
    """No ``query_budget``, a budgeted oracle: ``run`` proves the overlap against the oracle's
    budget, so the result is still the sequential one, budget by budget."""
    model, x, label, target, cands = toy_case(1, targeted)
    full = toy_attack(targeted, False, None).run(Oracle(model), x, label, target, candidates=cands)
    init = full.queries_by_phase["init"]
    for budget in range(10, init + 20, max(1, init // 10)):
        seq = toy_attack(targeted, False, None).run(Oracle(model, budget=budget), x, label, target,
                                                    candidates=cands)  # fmt: skip
        auto = toy_attack(targeted, "auto", None).run(Oracle(model, budget=budget), x, label,
                                                      target, candidates=cands)  # fmt: skip
        assert_same(auto, seq)


def test_auto_in_run_many_equals_one_after_another() -> None:
    """Several videos in lockstep, untargeted and targeted, at budgets that cut the key-frame
    stage: every video's result is the sequential one; and a shared budget that may bind
    (not known per video) keeps the stage one after another."""
    model, pool, labels = toy_setup()
    xs, ys = pool[:6], [int(v) for v in labels[:6]]
    cands = [pool[10:][labels[10:] != y][:6] for y in ys]
    for budget in (60, 140, 260, None):
        base_s, base_a = Oracle(model), Oracle(model)
        seq = toy_attack(False, False, budget).run_many(base_s, xs, ys, candidates=cands,
                                                        progress=False)  # fmt: skip
        auto = toy_attack(False, "auto", budget).run_many(base_a, xs, ys, candidates=cands,
                                                          progress=False)  # fmt: skip
        for a, b in zip(auto, seq):
            assert_same(a, b)
        assert base_a.used == base_s.used and base_a.calls <= base_s.calls
    targets = [(y + 1) % 3 for y in ys]
    tcands = [pool[10:][labels[10:] == t][:6] for t in targets]
    seq = toy_attack(True, False, 300).run_many(Oracle(model), xs, ys, targets, tcands,
                                                progress=False)  # fmt: skip
    auto = toy_attack(True, "auto", 300).run_many(Oracle(model), xs, ys, targets, tcands,
                                                  progress=False)  # fmt: skip
    for a, b in zip(auto, seq):
        assert_same(a, b)
    shared = Oracle(model, budget=500)  # 6 videos x 200 > 500: it may bind, so one after another
    auto = toy_attack(False, "auto", 200).run_many(shared, xs, ys, candidates=cands,
                                                   progress=False)  # fmt: skip
    seq = toy_attack(False, False, 200).run_many(Oracle(model, budget=500), xs, ys,
                                                 candidates=cands, progress=False)  # fmt: skip
    for a, b in zip(auto, seq):
        assert_same(a, b)


def test_auto_without_a_known_oracle_budget_runs_one_after_another() -> None:
    """A process driven by hand, not told what its oracle may answer: one after another (the
    same oracle calls as ``batch_key_frames=False``)."""
    model, x, label, target, cands = toy_case(0, False)
    calls = []
    for batch in ("auto", False):
        oracle = Oracle(model)
        drive(toy_attack(False, batch, None).process(x, Untargeted(label), cands), oracle)
        calls.append(oracle.calls)
    assert calls[0] == calls[1]
    oracle = Oracle(model)
    drive(toy_attack(False, "auto", None).process(x, Untargeted(label), cands,
                                                  oracle_remaining=math.inf), oracle)  # fmt: skip
    assert oracle.calls < calls[1]


def test_batch_key_frames_values() -> None:
    with pytest.raises(ValueError, match="batch_key_frames"):
        make_attack("temporal", batch_key_frames="yes")
    assert make_attack("temporal+spatial").heuristics.batch_key_frames == "auto"


# -- the bounds the overlap rests on -------------------------------------------------------------
def test_bisection_bound_holds() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        scale = 10 ** float(torch.randint(-2, 4, (1,), generator=g))
        width = float(torch.rand(1, generator=g)) * scale
        tol = 10 ** -float(torch.randint(1, 5, (1,), generator=g))
        lo = float(torch.rand(1, generator=g)) * 100
        flips = torch.rand(200, generator=g) < 0.5
        search, n = bisect(lo, lo + width, tol), 0
        try:
            next(search)
            while True:
                n += 1
                search.send(bool(flips[n % 200]))
        except StopIteration:
            pass
        assert n <= bisection_queries(width, tol)
    assert bisection_queries(0.5, 1.0) == 0 and bisection_queries(math.inf, 1.0) == math.inf


@pytest.mark.parametrize("targeted", [False, True])
def test_initial_search_bound_holds_whatever_best(targeted) -> None:
    """The candidates' boundary searches (any pruning bound ``best``) ask no more than
    ``initial_search_queries``."""
    model, pool, labels = toy_setup()
    x, label = pool[0], int(labels[0])
    goal = Targeted(label, (label + 1) % 3) if targeted else Untargeted(label)
    half = (torch.rand((1, *SHAPE[1:]), generator=torch.Generator().manual_seed(2)) < 0.5).float()
    cap = math.sqrt(x.numel())
    checked = 0
    for c in pool[10:30]:
        for mask in (None, half):
            p = (c - x) if mask is None else (c - x) * mask
            lam0 = float(torch.linalg.vector_norm(p))
            theta = p / lam0
            bound = initial_search_queries(lam0, 1e-3, targeted, cap, mask is None, 1.05, 100,
                                           lam_max=cap)  # fmt: skip
            for best in (math.inf, lam0 * 0.3, lam0 * 1.5, cap):
                if targeted:
                    search = targeted_initial_search(lam0, 1e-3, cap, mask is None, 1.05, 100, best)
                else:
                    search = untargeted_initial_search(lam0, best, 1e-3, mask is None)
                oracle = Oracle(model)
                drive(search_process(x, theta, search, goal), oracle)
                assert oracle.used <= bound
                checked += 1
    assert checked == 160


@pytest.mark.parametrize("trial", ["check", "grow"])
@pytest.mark.parametrize("targeted", [False, True])
def test_key_frame_bound_holds(targeted, trial) -> None:
    """Algorithm 1 asks no more than ``key_frame_query_bound`` on toy cases: any omega (inf:
    every deletion that stays adversarial), masked or not, ``g`` given or searched."""
    model, pool, labels = toy_setup()
    g = torch.Generator().manual_seed(4)
    cap, tightest, n = math.sqrt(math.prod(SHAPE)), math.inf, 0
    for video in (0, 1, 2, 5):
        x, label = pool[video], int(labels[video])
        goal = Targeted(label, (label + 1) % 3) if targeted else Untargeted(label)
        adv = goal.is_adversarial(labels[10:])
        for c in pool[10:][adv][:3]:
            for omega in (0.0, 5.0, math.inf):
                some = (torch.rand((1, *SHAPE[1:]), generator=g) < 0.6).float()
                mask = None if omega == 5.0 else some
                for initial in (None, "given"):
                    p = (c - x) if mask is None else (c - x) * mask
                    g0 = None
                    if initial is not None:
                        lam0 = float(torch.linalg.vector_norm(p))
                        s = untargeted_initial_search(lam0, math.inf, 1e-3, mask is None)
                        g0 = drive(search_process(x, p / lam0, s, goal), Oracle(model))
                        if not math.isfinite(g0):
                            continue
                    oracle = Oracle(model)
                    found = drive(select_key_frames(x, c, goal, omega, mask, 1e-3, cap, "paper",
                                                    1.05, 100, trial, initial_g=g0), oracle)  # fmt: skip
                    bound = key_frame_query_bound(p, 1e-3, targeted, cap, trial, 1.05, 100,
                                                  initial_search=g0 is None,
                                                  known_adversarial=mask is None)  # fmt: skip
                    assert oracle.used == found.queries <= bound
                    tightest = min(tightest, bound / max(found.queries, 1))
                    n += 1
    assert n >= 12
    assert tightest < 3  # not vacuous


def test_run_many_width_refills_and_changes_no_result() -> None:
    """At most ``width`` videos in lockstep, the next starting as one ends: every video's
    result is the one it gets with all videos at once."""
    model, pool, labels = toy_setup()
    xs, ys = pool[:5], [int(v) for v in labels[:5]]
    cands = [pool[10:][labels[10:] != y][:6] for y in ys]
    out = {}
    for width in (None, 2, 1):
        base = Oracle(model)
        model.clips = model.forwards = 0
        res = toy_attack(False, "auto", 150).run_many(base, xs, ys, candidates=cands,
                                                      progress=False, width=width)  # fmt: skip
        out[width] = (res, model.forwards)
        assert sum(r.queries for r in res) == base.used == model.clips
    for width in (2, 1):
        for a, b in zip(out[width][0], out[None][0]):
            assert_same(a, b)
    assert out[None][1] < out[2][1] < out[1][1]  # fewer videos a step: more forwards
    with pytest.raises(ValueError, match="width"):
        toy_attack(False, "auto", 150).run_many(Oracle(model), xs, ys, candidates=cands,
                                                progress=False, width=0)  # fmt: skip


class _Logged(Oracle):
    """An oracle that also keeps every clip it was asked, for comparing query sets."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.asked: list[bytes] = []

    def __call__(self, videos, phase="optimisation", reserve=0):
        self.asked.extend(v.numpy().tobytes() for v in videos.reshape(-1, *SHAPE))
        return super().__call__(videos, phase, reserve)


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("acceptance", ["paper", "whole_video", "adversarial_once_under_omega"])
def test_overlapped_trials_ask_the_same_queries_in_fewer_requests(targeted, acceptance) -> None:
    """Algorithm 1's trials overlapped (``overlap``: a trial starts once every trial before it
    has a certain outcome): the same queries (the same clips, as a multiset), the same answers,
    the same key-frame search bit for bit (mask, direction, g, MAP, every trial, the closest
    video), in fewer requests; with ``overlap`` false, the requests of one after another."""
    model, pool, labels = toy_setup()
    g = torch.Generator().manual_seed(7)
    cap = math.sqrt(math.prod(SHAPE))
    fewer = cases = 0

    def compare(x, c, goal, omega, mask) -> tuple[bool, list[float]]:
        runs = []
        for overlap in (None, lambda: False, lambda: True):
            oracle = _Logged(model)
            found = drive(select_key_frames(x, c, goal, omega, mask, 1e-3, cap, acceptance,
                                            overlap=overlap), oracle)  # fmt: skip
            runs.append((found, oracle))
        (a, oa), (b, ob), (o, oo) = runs
        for found, oracle in ((b, ob), (o, oo)):
            assert found.as_dict() == a.as_dict()
            assert torch.equal(found.mask, a.mask)
            assert (found.theta is None) == (a.theta is None)
            assert found.theta is None or torch.equal(found.theta, a.theta)
            assert (found.x_adv is None) == (a.x_adv is None)
            assert found.x_adv is None or torch.equal(found.x_adv, a.x_adv)
            assert oracle.used == oa.used == a.queries
            assert sorted(oracle.asked) == sorted(oa.asked)
        assert ob.asked == oa.asked and ob.calls == oa.calls  # overlap false: sequential
        assert oo.calls <= oa.calls
        return oo.calls < oa.calls, [t.map for t in a.trials if math.isfinite(t.map)]

    for video in (0, 1, 2, 5):
        x, label = pool[video], int(labels[video])
        goal = Targeted(label, (label + 1) % 3) if targeted else Untargeted(label)
        for c in pool[10:][goal.is_adversarial(labels[10:])][:3]:
            for omega in (0.0, 0.5, 5.0, math.inf):
                mask = (torch.rand((1, *SHAPE[1:]), generator=g) < 0.7).float()
                overlapped, maps = compare(x, c, goal, omega, mask)
                fewer, cases = fewer + overlapped, cases + 1
                # omega at a trial's exact MAP, and just above it: outcomes on the edge, and
                # accepted trials whose MAP the next trials' outcomes must not depend on
                for edge in maps[:2] if omega == 0.5 else []:
                    for near in (edge, edge * 1.01):
                        overlapped, _ = compare(x, c, goal, near, mask)
                        fewer, cases = fewer + overlapped, cases + 1
    assert cases >= 40 and fewer >= cases // 4  # it overlapped, and often


def test_the_attack_overlaps_trials_only_where_nothing_can_cut_them(monkeypatch) -> None:
    """In ``HeuristicAttack`` (``batch_key_frames="auto"``) the trials overlap when the budget
    cannot cut the search: the same result as with no overlap at all, in fewer oracle calls;
    at budgets that cut the key-frame stage the result is still the sequential one (the tests
    above), because a search that may be cut runs its trials one after another."""
    import hba_lib.attacks.heuristic as heuristic

    model, x, label, target, cands = toy_case(1, False)
    calls = {}
    results = {}
    plain = heuristic.select_key_frames

    def one_after_another(*args, overlap=None, **kwargs):
        return plain(*args, overlap=None, **kwargs)

    for allowed in (True, False):
        if not allowed:
            monkeypatch.setattr(heuristic, "select_key_frames", one_after_another)
        oracle = Oracle(model)
        results[allowed] = toy_attack(False, "auto", 400).run(oracle, x, label, target,
                                                               candidates=cands)  # fmt: skip
        calls[allowed] = oracle.calls
    assert_same(results[True], results[False])
    assert calls[True] < calls[False]


@pytest.mark.parametrize("video,targeted", [(1, False), (0, True)])
def test_overlap_is_safe_with_tight_bounds(monkeypatch, video, targeted) -> None:
    """The test that lets a search overlap its trials must count what the searches before it
    may still ask: with every key-frame search's bound made exact (the queries it asks one
    after another), searches run ahead of their turn right up to the budget, and at every
    budget, one query at a time, the result is still the sequential one. (With the real, loose
    bounds a search rarely runs ahead where a budget could then cut it.)"""
    import hba_lib.attacks.heuristic as heuristic

    model, x, label, target, cands = toy_case(video, targeted)
    full = toy_attack(targeted, False, None).run(Oracle(model), x, label, target,
                                                 candidates=cands)  # fmt: skip
    kf = full.info["key_frames"]
    spatial = toy_attack(targeted, False, None).spatial_mask(x)
    exact = {}
    for i, search in zip(kf["candidates"], kf["searches"]):
        p = cands[i] - x if spatial is None else (cands[i] - x) * spatial
        exact[p.numpy().tobytes()] = search["queries"]
    assert len(exact) >= 2  # at least two survivors: one can run ahead of the other

    def tight(p, *args, **kwargs):
        return exact.get(p.numpy().tobytes(), math.inf)

    monkeypatch.setattr(heuristic, "key_frame_query_bound", tight)
    init = full.queries_by_phase["init"]
    start = init - sum(exact.values()) - 5
    ran_ahead = 0
    for budget in range(max(start, 8), init + 3):
        ran_ahead += auto_against_sequential(model, x, label, target, cands, targeted, budget)
    assert ran_ahead > 0
