"""Misuse and faults, as a new user meets them (issue 9): the oracle and every attack.

Each row says what must happen: the error (type and message) raised before any query, or the
stop reason, and the exact count the oracle shows. Tiny models, ``[3, 4, 8, 8]`` videos: the
oracle is told ``num_frames=4`` (real use: 16, from the model).
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from hba_lib.attacks import OptAttack, OptAttackConfig
from hba_lib.oracle import BudgetExhausted, NonFiniteOutputError, Oracle, query_jointly

torch.set_num_threads(1)
SHAPE = (3, 4, 8, 8)
T = SHAPE[1]


class Toy3(nn.Module):
    """Three classes, a curved boundary, per-video arithmetic (as in test_opt_attack)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("a", torch.randn(3, math.prod(SHAPE), generator=g).double())
        self.register_buffer("c", torch.randn(3, math.prod(SHAPE), generator=g).double())
        self.seen = 0
        self.clips: list[torch.Tensor] = []
        self.record = False
        self.benchmark_flags: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        self.benchmark_flags.append(torch.backends.cudnn.benchmark)
        if self.record:
            self.clips += list(x.clone())
        v = x.double().flatten(1).unsqueeze(1) - 0.5
        return (torch.tanh(3 * v * self.a) * self.c).sum(-1).float()


class NaNFor(Toy3):
    """NaN logits for clips whose first value is exactly ``marker``, or for the ``nth`` clip."""

    def __init__(self, marker: float | None = None, nth: int | None = None, always=False):
        super().__init__()
        self.marker, self.nth, self.always = marker, nth, always

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.seen
        out = super().forward(x)
        if self.always:
            out[:] = math.nan
        if self.marker is not None:
            out[x.flatten(1)[:, 0] == self.marker] = math.nan
        if self.nth is not None and first < self.nth <= self.seen:
            out[self.nth - first - 1] = math.nan
        return out


def setup(seed: int = 1, n_videos: int = 1):
    model = Toy3()
    g = torch.Generator().manual_seed(seed)
    pool = torch.rand((60, *SHAPE), generator=g)
    with torch.no_grad():
        labels = model(pool).argmax(1)
    model.seen = 0
    xs, ys, cands = pool[:n_videos], [int(v) for v in labels[:n_videos]], []
    for y in ys:
        cands.append(pool[n_videos:][labels[n_videos:] != y][:5])
    return model, xs, ys, cands


def oracle_for(model, budget=None):
    return Oracle(model, budget, num_frames=T)


def attack(**kw) -> OptAttack:
    return OptAttack(OptAttackConfig(**{"max_iter": 3, **kw}))


# -- the table: misuse that must fail before any query ------------------------------------------
def _x():
    return setup()[1][0]


BAD_INPUTS = {
    # name: (x, candidates (None: the good ones), error type, message)
    "uint8 video": (lambda: (_x() * 255).to(torch.uint8), None, TypeError, "float in \\[0, 1\\]"),
    "0-255 float video": (lambda: _x() * 255, None, ValueError, "must lie in \\[0, 1\\]"),
    "layout [T, C, H, W]": (lambda: _x().transpose(0, 1), None, ValueError, "\\[C, T, H, W\\]"),
    "a batch as x": (lambda: _x()[None], None, ValueError, "one video"),
    "2 frames": (lambda: _x()[:, :2], None, ValueError, "T=2 frames.*expects 4"),
    "NaN pixel": (
        lambda: _x().index_put_((torch.tensor(0),), torch.tensor(math.nan)),
        None,
        ValueError,
        "NaN",
    ),  # fmt: skip
    "empty video": (lambda: torch.zeros(3, 4, 0, 8), None, ValueError, "empty"),
    "empty candidates": (_x, lambda: torch.zeros(0, *SHAPE), ValueError, "at least one"),
    "candidates of another shape": (
        _x,
        lambda: torch.rand(2, 3, 4, 8, 9),
        ValueError,
        "shaped like",
    ),
    "uint8 candidates": (_x, lambda: torch.zeros(2, *SHAPE, dtype=torch.uint8), TypeError, "float"),
    "0-255 candidates": (_x, lambda: torch.full((2, *SHAPE), 200.0), ValueError, "\\[0, 1\\]"),
}


@pytest.mark.parametrize("how", ["run", "run_many"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_opt_attack_refuses_bad_input_before_any_query(case, how) -> None:
    if how == "run_many" and case == "a batch as x":
        pytest.skip("a batch is run_many's input")
    make_x, make_c, exc, match = BAD_INPUTS[case]
    model, _, ys, cands = setup()
    x = make_x()
    c = cands[0] if make_c is None else make_c()
    oracle = oracle_for(model)
    with pytest.raises(exc, match=match):
        if how == "run":
            attack().run(oracle, x, ys[0], candidates=c)
        else:
            xs = x[None] if isinstance(x, torch.Tensor) and x.ndim == 4 else x
            attack().run_many(oracle, xs, ys, candidates=[c])
    assert oracle.used == 0 and model.seen == 0


@pytest.mark.parametrize(
    "videos, exc, match",
    [
        (lambda: torch.zeros(1, *SHAPE, dtype=torch.uint8), TypeError, "floating-point"),
        (lambda: torch.rand(1, 4, 3, 8, 8), ValueError, "C in \\(1, 3\\)"),
        (lambda: torch.rand(1, 3, 2, 8, 8), ValueError, "T=4 frames"),
        (lambda: torch.rand(0, *SHAPE), ValueError, "non-empty"),
        (lambda: [0.5], TypeError, "torch.Tensor"),
    ],
    ids=["uint8", "layout", "frames", "empty", "not a tensor"],
)
def test_oracle_refuses_bad_input_without_counting(videos, exc, match) -> None:
    model = Toy3()
    oracle = oracle_for(model)
    with pytest.raises(exc, match=match):
        oracle(videos())
    assert oracle.used == 0 and oracle.calls == 0 and model.seen == 0


def test_oracle_frame_count_default_and_settings() -> None:
    from hba_lib.models import build_model

    big = build_model("c3d_small", 3)
    assert Oracle(big).num_frames == 16  # hba_lib's models: 16 frames
    with pytest.raises(ValueError, match="T=16 frames"):
        Oracle(big)(torch.rand(1, 3, 2, 16, 16))
    assert Oracle(Toy3()).num_frames is None  # a module of your own: say it, or no check
    assert Oracle(big, num_frames=None).num_frames is None
    with pytest.raises(ValueError, match="num_frames"):
        Oracle(Toy3(), num_frames=0)


def test_single_candidate_counts_one_query_on_both_sides() -> None:
    model, xs, ys, cands = setup()
    one, batch = oracle_for(model), oracle_for(Toy3())
    a = attack().run(one, xs[0], ys[0], candidates=cands[0][0])  # [C, T, H, W]
    b = attack().run(batch, xs[0], ys[0], candidates=cands[0][:1])
    assert a.queries == one.used == b.queries == batch.used
    assert a.queries_by_phase == one.counts == b.queries_by_phase
    assert torch.equal(a.x_adv, b.x_adv)


# -- budgets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["oracle", "config"])
@pytest.mark.parametrize("budget, queries", [(0, 0), (1, 0), (2, 1)])
def test_tiny_budgets(where, budget, queries) -> None:
    """0 and 1: the clean check would leave nothing for the final check; 2: the clean check,
    then the 5 candidates do not fit. Nothing adversarial seen: x_adv is x."""
    model, xs, ys, cands = setup()
    oracle = oracle_for(model, budget if where == "oracle" else None)
    att = attack(query_budget=budget if where == "config" else None)
    res = att.run(oracle, xs[0], ys[0], candidates=cands[0])
    assert res.stop_reason == "budget_exhausted" and not res.success
    assert res.queries == oracle.used == model.seen == queries
    assert torch.equal(res.x_adv, xs[0])


def test_negative_budget_is_refused() -> None:
    model, xs, ys, cands = setup()
    with pytest.raises(ValueError, match="budget must be >= 0"):
        Oracle(model, budget=-1)
    oracle = oracle_for(model)
    with pytest.raises(ValueError, match="query_budget must be an int >= 0"):
        attack(query_budget=-1).run(oracle, xs[0], ys[0], candidates=cands[0])
    assert oracle.used == 0


def test_run_many_holds_the_oracle_budget_and_counts_on_it() -> None:
    """Issue 9 (1): run_many ignored the budget of the oracle passed in, which said used == 0."""
    model, xs, ys, cands = setup(n_videos=2)
    oracle = oracle_for(model, budget=57)
    res = attack(max_iter=5).run_many(oracle, xs, ys, candidates=cands)
    assert oracle.used == sum(r.queries for r in res) == model.seen <= 57
    assert oracle.counts == {
        k: sum(r.queries_by_phase[k] for r in res) for k in ("init", "optimisation", "check")
    }
    assert any(r.stop_reason == "budget_exhausted" for r in res)
    # each video's own query_budget still holds inside the shared one
    oracle = oracle_for(Toy3(), budget=1000)
    res = attack(max_iter=50, query_budget=40).run_many(oracle, xs, ys, candidates=cands)
    assert all(r.queries <= 40 for r in res) and oracle.used == sum(r.queries for r in res)


def test_a_fork_cannot_escape_its_parent_budget() -> None:
    model = Toy3()
    oracle = oracle_for(model, budget=3)
    child = oracle.fork()  # no budget of its own
    child(torch.rand(2, *SHAPE))
    assert oracle.used == 2 and oracle.remaining == 1 and child.remaining == 1
    with pytest.raises(BudgetExhausted, match="the oracle it was forked from"):
        child(torch.rand(2, *SHAPE))
    out = query_jointly([(child, torch.rand(1, *SHAPE), "init", 0),
                         (oracle.fork(), torch.rand(1, *SHAPE), "init", 0)])  # fmt: skip
    assert not isinstance(out[0], BudgetExhausted) and isinstance(out[1], BudgetExhausted)
    assert oracle.used == model.seen == 3


def test_budget_and_counters_are_read_only() -> None:
    """Issue 9 (5): ``oracle.budget = None`` gave the code it serves an unlimited budget."""
    oracle = oracle_for(Toy3(), budget=5)
    oracle(torch.rand(2, *SHAPE))
    for name, value in (("budget", None), ("used", 0), ("calls", 0), ("counts", {}),
                        ("remaining", 99), ("device", "cpu"), ("num_frames", None)):  # fmt: skip
        with pytest.raises(AttributeError):
            setattr(oracle, name, value)
    oracle.counts["optimisation"] = 0  # a copy
    assert oracle.budget == 5 and oracle.used == 2 and oracle.calls == 1
    # What the docstring says it does *not* guard against is real: code in the same process
    # that sets out to cheat reaches the model through the evaluator's closure cells.
    model = Toy3()
    cheated = oracle_for(model, budget=1)
    cells = [c.cell_contents for c in object.__getattribute__(cheated, "_evaluate").__closure__]
    assert any(c is model for c in cells)
    assert "*not* a security boundary" in sys.modules["hba_lib.oracle.core"].__doc__


# -- what a cut run keeps ---------------------------------------------------------------------
@pytest.mark.parametrize("masked", [False, True])
def test_a_cut_run_keeps_the_closest_adversarial_clip_it_queried(masked) -> None:
    """Issue 9 (2): a run cut by the budget returned x (or a farther point) although it had
    queried closer adversarial clips."""
    model, xs, ys, cands = setup()
    x, y = xs[0], ys[0]
    mask = None
    if masked:
        mask = torch.zeros(1, *SHAPE[1:])
        mask[:, 1:3, 1:7, 1:7] = 1
    improved = 0
    for budget in range(3, 60, 2):
        model.record, model.clips = True, []
        oracle = oracle_for(model, budget)
        res = attack(max_iter=100).run(oracle, x, y, candidates=cands[0], mask=mask)
        clips = model.clips[:-1] if res.label is not None else model.clips  # less the check
        with torch.no_grad():
            adv = [c for c in clips if int(Toy3()(c[None]).argmax(1)) != y]
        if mask is not None:
            outside = mask.expand(SHAPE) == 0
            adv = [c for c in adv if torch.equal(c[outside], x[outside])]
            assert torch.equal(res.x_adv[outside], x[outside])
        assert res.queries == oracle.used <= budget
        if not adv:
            assert torch.equal(res.x_adv, x) and not res.success
            continue
        closest = min(float((c - x).norm()) for c in adv)
        assert res.distance <= closest + 1e-5, budget
        assert not torch.equal(res.x_adv, x) and res.success and res.label != y
        improved += res.info.get("kept_closest_adversarial_seen", False)
    assert improved  # some cuts did land inside a search


# -- NaN -------------------------------------------------------------------------------------
def test_nan_always() -> None:
    model, xs, ys, cands = setup()
    bad = NaNFor(always=True)
    oracle = oracle_for(bad)
    with pytest.raises(NonFiniteOutputError, match=r"query #1 .*phase 'check'"):
        attack().run(oracle, xs[0], ys[0], candidates=cands[0])
    assert oracle.used == bad.seen == 1
    oracle = oracle_for(NaNFor(always=True))
    res = attack().run_many(oracle, xs, ys, candidates=cands)
    assert res[0].stop_reason == "nonfinite_output" and "query #1" in res[0].info["error"]
    assert res[0].queries == oracle.used == 1 and not res[0].success


def test_nan_for_one_video_ends_that_video_only() -> None:
    """Issue 9 (4): one video's NaN aborted every video and lost all partial results."""
    _, xs, ys, cands = setup(n_videos=3)
    xs = xs.clone()
    xs[1, 0, 0, 0, 0] = 0.125  # the model answers NaN for clips carrying this value
    bad = NaNFor(marker=0.125)
    oracle = oracle_for(bad)
    res = attack(max_iter=4).run_many(oracle, xs, ys, candidates=cands)
    assert res[1].stop_reason == "nonfinite_output" and res[1].queries == 1
    assert "NaN/Inf" in res[1].info["error"] and torch.equal(res[1].x_adv, xs[1])
    for i in (0, 2):
        alone = attack(max_iter=4).run(oracle_for(Toy3()), xs[i], ys[i], candidates=cands[i])
        assert res[i].stop_reason == alone.stop_reason != "nonfinite_output"
        assert torch.equal(res[i].x_adv, alone.x_adv) and res[i].queries == alone.queries
    assert oracle.used == bad.seen == sum(r.queries for r in res)


@pytest.mark.parametrize("nth", [2, 9, 40])
def test_nan_for_one_query(nth) -> None:
    model, xs, ys, cands = setup(n_videos=2)
    bad = NaNFor(nth=nth)
    oracle = oracle_for(bad)
    with pytest.raises(NonFiniteOutputError, match=f"query #{nth} "):
        attack().run(oracle, xs[0], ys[0], candidates=cands[0])
    assert oracle.used == bad.seen >= nth  # the whole batch holding it: the model saw it
    bad = NaNFor(nth=nth)
    oracle = oracle_for(bad)
    res = attack().run_many(oracle, xs, ys, candidates=cands)
    hit = [r for r in res if r.stop_reason == "nonfinite_output"]
    assert len(hit) == 1 and "NaN/Inf" in hit[0].info["error"]
    assert oracle.used == bad.seen == sum(r.queries for r in res)


# -- global state ----------------------------------------------------------------------------
def test_oracle_evaluates_with_cudnn_benchmark_off_and_restores_it() -> None:
    """Issue 9 (6): with cudnn.benchmark on, an attack's ever-changing batch sizes re-tune cuDNN."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        model = Toy3()
        oracle_for(model)(torch.rand(2, *SHAPE))
        assert model.benchmark_flags == [False]
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before


def test_oracle_evaluates_without_tf32_and_restores_the_flags() -> None:
    """Issue 22: TF32 (cuDNN's default on Ampere+) rounds a conv's inputs to ~1e-3, below which
    HopSkipJump's probes live; the oracle turns it off for its forward and restores it."""

    class Flags(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(math.prod(SHAPE), 3)
            self.seen: list[tuple[bool, bool]] = []

        def forward(self, x):
            self.seen.append(
                (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            )
            return self.lin(x.flatten(1))

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    for flags in ((True, True), (True, False), (False, True)):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
        try:
            model = Flags()
            oracle_for(model)(torch.rand(2, *SHAPE))
            assert model.seen == [(False, False)]
            assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


# -- the ART peers ---------------------------------------------------------------------------
peers = pytest.importorskip("hba_lib.attacks.peers")
needs_art = pytest.mark.skipif(not peers.art_available(), reason="ART (extra 'peers') missing")


def _peer(name, oracle, x, y, cands):
    if name == "sign_opt":
        return peers.sign_opt_untargeted(oracle, x, y, 3, num_trial=5, k=5, max_iter=2)
    return peers.hop_skip_jump(
        oracle, x, y, 3, cands, opt_config=OptAttackConfig(max_iter=0), max_iter=2, max_eval=20,
        init_eval=5,
    )  # fmt: skip


@needs_art
@pytest.mark.parametrize("name", ["sign_opt", "hop_skip_jump"])
@pytest.mark.parametrize("case", ["uint8 video", "0-255 float video", "2 frames", "a batch as x",
                                  "empty candidates"])  # fmt: skip
def test_peers_refuse_bad_input_before_any_query(name, case) -> None:
    make_x, make_c, exc, match = BAD_INPUTS[case]
    if name == "sign_opt" and make_c is not None:
        pytest.skip("Sign-OPT takes no candidates")
    model, _, ys, cands = setup()
    oracle = oracle_for(model)
    with pytest.raises(exc, match=match):
        _peer(name, oracle, make_x(), ys[0], cands[0] if make_c is None else make_c())
    assert oracle.used == 0 and model.seen == 0


@needs_art
@pytest.mark.parametrize("name", ["sign_opt", "hop_skip_jump"])
@pytest.mark.parametrize("budget, queries", [(0, 0), (1, 0), (2, 1)])
def test_peers_tiny_budgets(name, budget, queries) -> None:
    model, xs, ys, cands = setup()
    oracle = oracle_for(model, budget)
    res = _peer(name, oracle, xs[0], ys[0], cands[0])
    assert res.stop_reason == "budget_exhausted" and not res.success
    assert res.queries == oracle.used == model.seen == queries


@needs_art
@pytest.mark.parametrize("name", ["sign_opt", "hop_skip_jump"])
def test_peers_nan_always(name) -> None:
    _, xs, ys, cands = setup()
    bad = NaNFor(always=True)
    oracle = oracle_for(bad)
    with pytest.raises(NonFiniteOutputError, match="query #1 "):
        _peer(name, oracle, xs[0], ys[0], cands[0])
    assert oracle.used == bad.seen == 1
