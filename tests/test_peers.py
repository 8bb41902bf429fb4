"""ART peers through the counting oracle (skipped without ART, the optional extra ``peers``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

pytest.importorskip("art", reason="ART (optional extra 'peers') is not installed")

from hba_lib.attacks.peers import hop_skip_jump, sign_opt_untargeted  # noqa: E402
from hba_lib.oracle import Oracle  # noqa: E402

torch.set_num_threads(1)
SHAPE = (3, 2, 6, 6)


class CountingToy(nn.Module):
    """Three classes by a fixed random nonlinear score; counts every clip it evaluates."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("a", torch.randn(3, math.prod(SHAPE), generator=g))
        self.register_buffer("c", torch.randn(3, math.prod(SHAPE), generator=g))
        self.clips = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clips += x.shape[0]
        v = x.flatten(1).unsqueeze(1) - 0.5
        return (torch.tanh(3 * v * self.a) * self.c).sum(-1)


def setup():
    model = CountingToy()
    pool = torch.rand((30, *SHAPE), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = model(pool).argmax(1)
    model.clips = 0
    x, y = pool[0], int(labels[0])
    return model, x, y, pool[1:][labels[1:] != y][:5]


@pytest.mark.parametrize("budget", [150, 400])
def test_sign_opt_counts_every_clip_and_keeps_the_budget(budget: int) -> None:
    model, x, y, _ = setup()
    oracle = Oracle(model, budget=budget)
    res = sign_opt_untargeted(oracle, x, y, nb_classes=3, seed=0, num_trial=10, k=20)
    assert model.clips == oracle.used == res.queries <= budget
    if res.success:
        assert res.label != y and res.distance > 0
    else:
        assert res.stop_reason in ("budget_exhausted", "art_finished")


def test_hop_skip_jump_from_the_same_start() -> None:
    model, x, y, cands = setup()
    oracle = Oracle(model, budget=600)
    res = hop_skip_jump(oracle, x, y, nb_classes=3, candidates=cands, max_iter=3,
                        max_eval=50, init_eval=10)  # fmt: skip
    assert model.clips == oracle.used == res.queries <= 600
    assert res.success and res.label != y
    assert res.info["start_queries"] > 0
    assert res.distance <= res.info["start_distance"] + 1e-4  # it never moves away from its start
    # its trace: the start's rows, then each closer adversarial clip ART queried, on one clock
    qs, ds = [r.queries for r in res.trace], [r.distance for r in res.trace]
    assert qs == sorted(qs) and 0 < qs[0] <= qs[-1] <= res.queries
    assert all(b <= a + 1e-5 for a, b in zip(ds, ds[1:]))
    assert ds[0] == pytest.approx(res.info["start_distance"], rel=1e-5)


@pytest.mark.parametrize("peer", ["sign-opt", "hsj"])
def test_a_peer_leaves_numpy_global_generator_as_it_found_it(peer: str) -> None:
    """ART draws from numpy's global generator; a peer seeds it for its run and puts the caller's
    state back: the caller's next draw is what it would have been, and the peer's result depends
    on its own seed, not on what the caller drew before."""
    import numpy as np

    def run(seed: int):
        model, x, y, cands = setup()
        oracle = Oracle(model, budget=300)
        if peer == "sign-opt":
            return sign_opt_untargeted(oracle, x, y, nb_classes=3, seed=seed, num_trial=10, k=20)
        return hop_skip_jump(oracle, x, y, nb_classes=3, candidates=cands, seed=seed,
                             max_iter=3, max_eval=50, init_eval=10)  # fmt: skip

    np.random.seed(123)  # noqa: NPY002 - the caller's own use of the global generator
    expected = np.random.rand(3)  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    first = run(0)
    assert np.array_equal(np.random.rand(3), expected)  # noqa: NPY002 - as if never called
    np.random.rand(7)  # noqa: NPY002 - the caller draws more before the next run
    again = run(0)
    assert again.queries == first.queries and torch.equal(again.x_adv, first.x_adv)


def test_hop_skip_jump_mask_keeps_pixels() -> None:
    model, x, y, cands = setup()
    mask = torch.zeros(1, *SHAPE[1:])
    mask[:, 1, 1:5, 1:5] = 1
    res = hop_skip_jump(Oracle(model, budget=500), x, y, nb_classes=3, candidates=cands,
                        mask=mask, max_iter=2, max_eval=30, init_eval=10)  # fmt: skip
    outside = mask.expand(SHAPE) == 0
    assert res.success and res.label != y
    assert torch.allclose(res.x_adv[outside], x[outside], atol=1e-6)
    assert res.sparsity == pytest.approx(1 - 0.5 * 16 / 36) and res.map_star > res.map


def test_returned_clean_video_is_a_failure_not_a_success() -> None:
    model, x, y, _ = setup()
    oracle = Oracle(model, budget=100)
    res = sign_opt_untargeted(oracle, x, y, nb_classes=3, num_trial=0)  # no start: ART gives x back
    assert not res.success and res.info.get("returned_clean_video")
    assert torch.equal(res.x_adv, x) and res.map == 0.0
    assert model.clips == oracle.used == res.queries
