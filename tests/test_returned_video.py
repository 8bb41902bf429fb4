"""Issue 16 (7): the returned video is one the model answered.

``x_adv`` must be bit for bit a clip the oracle evaluated and the model answered adversarial
(or the clean video), on every stopping path. An int8 model's decision can flip between two
videos that differ in the last bits (``x + g * theta`` rebuilt vs. the clip queried); the model
here makes that flip likely: near its boundary the class depends on a hash of the exact float32
bits. It logs every clip it evaluates with its answer.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hba_lib.attacks import HopSkipJump, OptAttack, SemicircleBoundary, SignOPT, make_attack
from hba_lib.oracle import Oracle, OracleUnavailable

torch.set_num_threads(1)
SHAPE = (3, 4, 8, 8)
T = SHAPE[1]
BAND = 1.0  # the width (in score units) of the band where the last bits decide the class


class LastBitModel(nn.Module):
    """Class 1 when ``w . x`` (float64) passes ``b`` plus a hash of x's float32 bits in
    ``[-BAND/2, BAND/2]``, else class 0 (class 2 never wins); logs ``(clip, class)`` for every clip it evaluates.
    ``nan_at``: NaN logits for that clip number (1-based) when set; ``gone_at``: from the batch
    holding that clip number on, it answers nothing (:class:`OracleUnavailable`, a server gone)."""

    def __init__(
        self, w: torch.Tensor, b: float, nan_at: int | None = None, gone_at: int | None = None
    ) -> None:
        super().__init__()
        self.register_buffer("w", w.double().flatten())
        gen = torch.Generator().manual_seed(7)
        self.register_buffer("mult", torch.randint(1, 2**20, (w.numel(),), generator=gen))
        self.b, self.nan_at, self.gone_at = b, nan_at, gone_at
        self.log: list[tuple[torch.Tensor, int]] = []

    def bit_hash(self, x: torch.Tensor) -> torch.Tensor:
        bits = x.float().contiguous().view(torch.int32).flatten(1).long()
        return ((bits * self.mult).sum(1) % 1_000_003).double() / 1_000_003 - 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gone_at is not None and len(self.log) + len(x) >= self.gone_at:
            self.gone_at = 0  # and stays away
            raise OracleUnavailable("the model went away")
        margin = (x.double().flatten(1) * self.w).sum(1) - self.b - BAND * self.bit_hash(x)
        zero = torch.zeros_like(margin)
        logits = torch.stack([zero, margin, zero - 1], 1).float()  # 3 classes (ART wants > 2)
        first = len(self.log)
        self.log += [(c.clone(), int(m > 0)) for c, m in zip(x, margin)]
        if self.nan_at is not None and first < self.nan_at <= len(self.log):
            logits[self.nan_at - first - 1] = math.nan
        return logits


def setup(nan_at: int | None = None, gone_at: int | None = None):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(SHAPE, generator=g)
    x = 0.4 + 0.05 * torch.rand(SHAPE, generator=g)
    b = float((w.double() * x.double()).sum()) + 2.0  # x is 2 below the boundary: class 0
    cands = (0.4 + 0.2 * torch.rand((6, *SHAPE), generator=g) + 0.03 * torch.sign(w)).clamp(0, 1)
    model = LastBitModel(w, b, nan_at)
    with torch.no_grad():
        assert int(model(x[None]).argmax()) == 0
        assert int(model(cands).argmax(1).sum()) >= 2, "the setup needs adversarial candidates"
    model.log, model.gone_at = [], gone_at
    return model, x, cands


def assert_answered(res, model: LastBitModel, x: torch.Tensor, what: str) -> None:
    """``res.x_adv`` is the clean video (a failure) or a logged clip answered adversarial; the
    final check, when there is one, was on exactly that clip."""
    if torch.equal(res.x_adv, x):
        assert not res.success, what
        return
    answered = [c for c, y in model.log if y == 1 and torch.equal(c, res.x_adv)]
    assert answered, f"{what}: x_adv is no clip the model answered adversarial"
    if res.label is not None:  # the final check: the last clip evaluated, that very tensor
        assert torch.equal(model.log[-1][0], res.x_adv) and res.success and res.label == 1, what
    assert res.distance == pytest.approx(float((res.x_adv - x).norm()), abs=1e-6), what


ATTACKS = {
    "opt": lambda **kw: OptAttack(q=4, **kw),
    "sign-opt": lambda **kw: SignOPT(q=12, **kw),
    "temporal/opt": lambda **kw: make_attack("temporal", omega=1e9, q=4, **kw),
    "temporal+spatial/sign-opt": lambda **kw: make_attack(
        "temporal+spatial", optimizer="sign-opt", omega=1e9, phi=0.5, q=12, **kw
    ),
    "hsja": lambda **kw: HopSkipJump(q=6, max_q=12, **kw),
    "cgba": lambda **kw: SemicircleBoundary(q=6, max_q=12, **kw),
    "temporal+spatial/hsja@dct:2": lambda **kw: make_attack(
        "temporal+spatial", optimizer="hsja@dct:2", omega=1e9, phi=0.5, q=6, max_q=12, **kw
    ),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_x_adv_is_a_clip_the_model_answered_adversarial(name: str) -> None:
    model, x, cands = setup()
    reasons = set()
    runs = [dict(query_budget=b, max_iter=1000) for b in range(4, 90, 5)]
    runs += [dict(max_iter=0), dict(max_iter=1), dict(max_iter=3), dict(max_iter=40)]
    for kw in runs:
        model.log = []
        res = ATTACKS[name](**kw).run(Oracle(model, num_frames=T), x, 0, candidates=cands)
        assert_answered(res, model, x, f"{name} {kw} ({res.stop_reason})")
        assert len(model.log) == res.queries
        reasons.add(res.stop_reason)
    assert {"budget_exhausted", "max_iter"} <= reasons, reasons


@pytest.mark.parametrize("name", list(ATTACKS))
def test_no_initial_direction_and_nonfinite_paths(name: str) -> None:
    model, x, cands = setup()
    same = x + 0.02 * torch.rand((3, *SHAPE), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not model(same).argmax(1).any()  # no candidate of another class
    model.log = []
    res = ATTACKS[name]().run(Oracle(model, num_frames=T), x, 0, candidates=same)
    assert res.stop_reason == "no_initial_direction" and torch.equal(res.x_adv, x)
    assert not res.success
    for nan_at in (12, 30, 60):  # a NaN answer ends the video; what it kept is still answered
        model, x, cands = setup(nan_at=nan_at)
        res = ATTACKS[name](max_iter=50).run_many(
            Oracle(model, num_frames=T), x[None], [0], candidates=[cands], progress=False
        )[0]
        assert res.stop_reason == "nonfinite_output", res.stop_reason
        assert_answered(res, model, x, f"{name} NaN at {nan_at}")


def test_an_init_point_never_queried_is_returned_only_if_the_check_says_adversarial() -> None:
    """``init=(theta, g)``: ``x + g * theta`` was never queried; the final check decides, and
    when it answers "not adversarial" the clean video comes back, not that point."""
    model, x, _ = setup()
    theta = torch.sign(model.w.float()).view(SHAPE)
    theta = theta / theta.norm()
    g0 = 2.0 / float((model.w.float().view(SHAPE) * theta).sum())  # on the boundary (no band)
    outcomes = set()
    for k in range(-10, 11):
        model.log = []
        attack = OptAttack(max_iter=0)
        res = attack.run(Oracle(model, num_frames=T), x, 0, init=(theta, g0 * (1 + 0.002 * k)))
        assert res.queries == 2  # the clean check and the final check
        assert_answered(res, model, x, f"init g0 * (1 + 0.002 * {k})")
        outcomes.add(res.success)
        if not res.success:
            assert torch.equal(res.x_adv, x) and "unqueried_point_not_adversarial" in res.info
    assert outcomes == {True, False}


@pytest.mark.parametrize("peer", ["sign-opt", "hop-skip-jump"])
def test_peers_return_a_clip_the_model_answered(peer: str) -> None:
    pytest.importorskip("art", reason="ART (optional extra 'peers') is not installed")
    from hba_lib.attacks.peers import hop_skip_jump, sign_opt_untargeted

    model, x, cands = setup()
    reasons = set()
    for budget in (30, 60, 120, 400):
        model.log = []
        oracle = Oracle(model, budget=budget, num_frames=T)
        if peer == "sign-opt":
            res = sign_opt_untargeted(oracle, x, 0, nb_classes=3, num_trial=10, k=20)
        else:
            res = hop_skip_jump(oracle, x, 0, nb_classes=3, candidates=cands, max_iter=3,
                                max_eval=30, init_eval=10)  # fmt: skip
        assert_answered(res, model, x, f"{peer} budget {budget} ({res.stop_reason})")
        assert len(model.log) == oracle.used == res.queries
        reasons.add(res.stop_reason)
    assert "budget_exhausted" in reasons, reasons


def _peer(name: str):
    pytest.importorskip("art", reason="ART (optional extra 'peers') is not installed")
    from hba_lib.attacks.peers import hop_skip_jump, sign_opt_untargeted

    if name == "sign-opt":
        return lambda oracle, x, cands: sign_opt_untargeted(
            oracle, x, 0, nb_classes=3, num_trial=10, k=20
        )
    return lambda oracle, x, cands: hop_skip_jump(
        oracle, x, 0, nb_classes=3, candidates=cands, max_iter=3, max_eval=30, init_eval=10
    )


@pytest.mark.parametrize("name", [*ATTACKS, "peer sign-opt", "peer hop-skip-jump"])
def test_an_oracle_that_goes_away_leaves_the_same_verdict_in_every_attack(name: str) -> None:
    """A served model that stops answering (:class:`OracleUnavailable`) ends hba's attacks and
    the ART peers alike: ``oracle_unavailable``, and with no final check possible, ``success``
    is the earlier answer on that very tensor (one rule: ``unchecked_success``)."""
    if name.startswith("peer "):
        run = _peer(name.removeprefix("peer "))
    else:
        run = lambda oracle, x, cands: ATTACKS[name](max_iter=1000).run(  # noqa: E731
            oracle, x, 0, candidates=cands
        )
    earlier = 0
    for gone_at in (3, 25, 60, 150):
        model, x, cands = setup(gone_at=gone_at)
        oracle = Oracle(model, num_frames=T)
        res = run(oracle, x, cands)
        what = f"{name} gone at {gone_at}"
        if oracle.used < gone_at:  # it ended before the model went away
            continue
        assert res.stop_reason == "oracle_unavailable", (what, res.stop_reason)
        assert "OracleUnavailable" in res.info["error"], what
        assert_answered(res, model, x, what)
        if not torch.equal(res.x_adv, x):
            assert res.label is None and "final_check_failed" in res.info, what
            assert res.success and res.info["success_from_earlier_answer"], what
            earlier += 1
        else:
            assert not res.success, what
    assert earlier >= 2, f"{name}: the model went away too early to test the verdict"
