"""The oracle: only (label, probability), exact counts by phase, exact budget, clipping, NaN."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hba_lib.oracle import (
    Answer,
    BudgetExhausted,
    NonFiniteOutputError,
    Oracle,
    query_jointly,
)

torch.set_num_threads(1)  # tiny ops: threads only add overhead
SHAPE = (3, 4, 8, 8)


class MeanThreshold(nn.Module):
    """Two classes: class 1 when the mean pixel value exceeds 0.5 (logit = 20 * (mean - 0.5))."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))
        self.calls = 0
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        s = self.scale * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([torch.zeros_like(s), s], dim=1)


class NaNAfter(nn.Module):
    """Returns NaN logits for every video whose first value exceeds 0.9."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3)
        out[x.flatten(1)[:, 0] > 0.9] = math.nan
        return out


def videos(n: int, value: float) -> torch.Tensor:
    return torch.full((n, *SHAPE), value)


def test_answers_only_label_and_probability() -> None:
    oracle = Oracle(MeanThreshold())
    ans = oracle(torch.cat([videos(2, 0.2), videos(1, 0.8)]))
    assert isinstance(ans, Answer) and ans._fields == ("labels", "probs")
    assert ans.labels.tolist() == [0, 0, 1]
    expected = torch.sigmoid(torch.tensor(20 * 0.3))  # softmax of [0, 6] -> p(class 1)
    assert torch.allclose(ans.probs, torch.stack([expected, expected, expected]))
    assert not ans.labels.requires_grad and not ans.probs.requires_grad
    assert ans.probs.grad_fn is None


def test_counts_every_video_by_phase() -> None:
    oracle = Oracle(MeanThreshold())
    oracle(videos(5, 0.1), "init")
    oracle(videos(3, 0.1))  # optimisation is the default phase
    oracle(videos(1, 0.1)[0], "check")  # a single [C, T, H, W] video counts one
    assert oracle.counts == {"init": 5, "optimisation": 3, "check": 1}
    assert oracle.used == 9 and oracle.calls == 3
    with pytest.raises(ValueError, match="unknown query phase"):
        oracle(videos(1, 0.1), "training")
    assert oracle.used == 9


def test_budget_is_never_exceeded() -> None:
    model = MeanThreshold()
    oracle = Oracle(model, budget=10)
    oracle(videos(6, 0.1))
    with pytest.raises(BudgetExhausted, match="6 of 10 used"):
        oracle(videos(5, 0.1))  # does not fit: nothing evaluated, nothing counted
    assert oracle.used == 6 and model.calls == 1
    oracle(videos(4, 0.1))
    assert oracle.used == 10 and oracle.remaining == 0
    with pytest.raises(BudgetExhausted):
        oracle(videos(1, 0.1))
    assert oracle.used == 10


def test_reserve_keeps_queries_back() -> None:
    oracle = Oracle(MeanThreshold(), budget=3)
    oracle(videos(2, 0.1), reserve=1)
    with pytest.raises(BudgetExhausted, match="1 reserved"):
        oracle(videos(1, 0.1), reserve=1)
    oracle(videos(1, 0.1), "check")
    assert oracle.used == 3


def test_inputs_are_clipped_to_unit_range() -> None:
    oracle = Oracle(MeanThreshold())
    # mean of an unclipped video 1.5 * 0.45 + ... : all values 5.0 -> clipped to 1.0 -> class 1
    # and all values -3 -> clipped to 0 -> class 0 with p = sigmoid(10)
    ans = oracle(torch.cat([videos(1, 5.0), videos(1, -3.0)]))
    assert ans.labels.tolist() == [1, 0]
    assert torch.allclose(ans.probs[0], torch.sigmoid(torch.tensor(10.0)))
    assert torch.allclose(ans.probs[1], torch.sigmoid(torch.tensor(10.0)))


def test_big_batches_are_split() -> None:
    model = MeanThreshold()
    oracle = Oracle(model, max_batch=4)
    ans = oracle(videos(10, 0.7))
    assert model.batch_sizes == [4, 4, 2]
    assert ans.labels.shape == (10,) and oracle.used == 10 and oracle.calls == 1
    model.batch_sizes.clear()
    Oracle(model, max_batch=8)(videos(9, 0.7))
    assert model.batch_sizes == [5, 4]  # as even as the limit allows


def test_nan_output_names_the_query() -> None:
    oracle = Oracle(NaNAfter())
    oracle(videos(3, 0.1), "init")
    batch = videos(4, 0.1)
    batch[2, 0, 0, 0, 0] = 0.95
    with pytest.raises(
        NonFiniteOutputError, match=r"query #6 \(batch item 2, phase 'optimisation'\)"
    ):
        oracle(batch)


def test_bad_input_is_refused() -> None:
    oracle = Oracle(MeanThreshold())
    with pytest.raises(ValueError, match="expected videos"):
        oracle(torch.zeros(2, 5, 4, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        oracle(torch.zeros(1, *SHAPE, dtype=torch.uint8))
    with pytest.raises(TypeError, match="nn.Module"):
        Oracle(lambda x: x)  # type: ignore[arg-type]


def _reachable(obj: object) -> list[object]:
    """Every value reachable from obj through attributes (dir, __dict__, __slots__), depth 3."""
    seen: list[object] = []
    frontier = [obj]
    for _ in range(3):
        nxt = []
        for o in frontier:
            for name in dir(o):
                if name.startswith("__"):
                    continue
                try:
                    v = getattr(o, name)
                except Exception:  # noqa: BLE001 - properties may refuse
                    continue
                if any(v is s for s in seen):
                    continue
                seen.append(v)
                nxt.append(v)
        frontier = nxt
    return seen


def test_model_and_gradients_are_not_reachable() -> None:
    model = MeanThreshold()
    oracle = Oracle(model, budget=5)
    for v in _reachable(oracle) + _reachable(oracle.fork(3)):
        assert not isinstance(v, nn.Module), f"oracle exposes a module: {v!r}"
        assert not isinstance(v, nn.Parameter)
        if isinstance(v, torch.Tensor):
            assert not v.requires_grad
    with pytest.raises(AttributeError):
        oracle.model = model  # type: ignore[attr-defined]  (__slots__: nowhere to hang it)
    # queries run without autograd: no gradient ever reaches the model's parameters
    x = videos(1, 0.6).requires_grad_(True)
    ans = oracle(x)
    assert ans.probs.grad_fn is None and model.scale.grad is None


def test_fork_and_joint_queries_count_per_oracle() -> None:
    model = MeanThreshold()
    base = Oracle(model)
    a, b = base.fork(budget=4), base.fork(budget=2)
    out = query_jointly([(a, videos(3, 0.8), "init", 0), (b, videos(3, 0.1), "init", 0)])
    assert isinstance(out[0], Answer) and out[0].labels.tolist() == [1, 1, 1]
    assert isinstance(out[1], BudgetExhausted)
    assert a.used == 3 and b.used == 0 and base.used == 3  # forks count on their parent
    assert model.batch_sizes == [3]  # one forward pass for the admitted requests
    out = query_jointly([(a, videos(1, 0.8), "check", 0), (b, videos(2, 0.1), "check", 0)])
    assert model.batch_sizes[-1] == 3
    assert out[1].labels.tolist() == [0, 0] and a.used == 4 and b.used == 2
    with pytest.raises(ValueError, match="forked"):
        query_jointly([(a, videos(1, 0.1), "init", 0), (Oracle(model), videos(1, 0.1), "init", 0)])


def test_nan_in_a_joint_query_names_the_request_and_its_query() -> None:
    base = Oracle(NaNAfter())
    a, b = base.fork(), base.fork()
    b(videos(2, 0.1), "init")
    bad = videos(3, 0.1)
    bad[1, 0, 0, 0, 0] = 0.95
    with pytest.raises(NonFiniteOutputError, match=r"query #4 of request 1 \(batch item 1"):
        query_jointly([(a, videos(2, 0.1), "init", 0), (b, bad, "optimisation", 0)])
