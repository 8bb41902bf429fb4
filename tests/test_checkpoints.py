"""The committed default checkpoints load and reach the accuracy their JSON records."""

from __future__ import annotations

import pytest
import torch

from hba_lib.data.synthetic import SyntheticActions
from hba_lib.models import default_checkpoint_info, default_checkpoint_path, load_default_model
from hba_lib.models.train import evaluate

torch.set_num_threads(2)

TARGET = {"c3d": 0.95, "lrcn": 0.90}  # issue #4: synthetic size-32 test accuracy


@pytest.mark.parametrize("name", ["c3d", "lrcn"])
def test_default_checkpoint_reaches_recorded_accuracy(name):
    path = default_checkpoint_path(name)
    assert path.is_file(), f"{path} missing: run the command in its JSON"
    assert path.stat().st_size < 2 * 2**20, "embedded checkpoints must stay small"
    info = default_checkpoint_info(name)
    for key in ("command", "seed", "data", "test_acc", "shuffled_acc", "spec"):
        assert key in info, key
    assert info["command"].startswith("python -m hba_lib.models.train")
    torch.load(path, map_location="cpu", weights_only=True)  # the only loader we allow

    model = load_default_model(name)
    assert not model.training
    data = info["data"]
    test_set = SyntheticActions(
        "test", size=data["size"], n_per_class=data["test_n_per_class"], seed=info["seed"]
    )
    assert len(test_set) == data["n_test"]
    stale = info["data"].get("test_cache_key") not in (None, test_set.config.key())
    hint = " (the synthetic generator changed since: re-run the command in the JSON)" * stale
    acc = evaluate(model, test_set)
    shuffled = evaluate(model, test_set, shuffle_frames=True, seed=info["shuffle_seed"])
    one_clip = 1.0 / len(test_set)  # allow one borderline clip to flip on another CPU
    assert abs(acc - info["test_acc"]) <= one_clip + 1e-9, f"{acc} vs {info['test_acc']}{hint}"
    assert abs(shuffled - info["shuffled_acc"]) <= one_clip + 1e-9, hint
    assert acc >= TARGET[name]
    # the model uses time: shuffling frames costs it at least a third of its accuracy
    assert shuffled < acc - 0.33


def test_default_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="no default checkpoint"):
        load_default_model("i3d")
