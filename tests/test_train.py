"""Training: seeded, checkpointed every epoch, resumable to the same result; evaluation; Table 1."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from torch import nn

from hba_lib import paths, viz
from hba_lib.data.synthetic import SyntheticActions
from hba_lib.models import build_model, load_model_checkpoint
from hba_lib.models.train import (
    CHECKPOINT_NAME,
    TrainingInterrupted,
    evaluate,
    export_default,
    save_table1,
    table1,
    train,
)

torch.set_num_threads(2)

TINY = {"channels": [4, 8], "strides": [[1, 2, 2], 2]}
OPTS = {"epochs": 2, "batch_size": 8, "lr": 1e-2, "size": 16, "model_kwargs": TINY}


@pytest.fixture(scope="module")
def tiny_data():
    train_set = SyntheticActions("train", size=16, n_per_class=2, seed=3, cache=False)
    test_set = SyntheticActions("test", size=16, n_per_class=1, seed=3, cache=False)
    return train_set, test_set


def _run(run_dir, data, **kw):
    return train(
        "c3d_small",
        "synthetic",
        run_dir=run_dir,
        datasets=data,
        progress=False,
        verbose=False,
        **{**OPTS, **kw},
    )


def test_resume_after_interrupted_epoch_matches_uninterrupted_run(tmp_path, tiny_data):
    full = _run(tmp_path / "full", tiny_data)
    steps_per_epoch = math.ceil(len(tiny_data[0]) / OPTS["batch_size"])
    assert len(full.history) == 2

    # crash two steps into epoch 2: the epoch-1 checkpoint is on disk, epoch 2 is lost
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path / "cut", tiny_data, stop_after_steps=steps_per_epoch + 2)
    ckpt = torch.load(tmp_path / "cut" / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["step"] == steps_per_epoch
    assert len(ckpt["history"]) == 1

    resumed = _run(tmp_path / "cut", tiny_data)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    for h1, h2 in zip(full.history, resumed.history):
        for k in ("train_loss", "train_acc", "test_acc", "lr"):
            assert h1[k] == h2[k], k
    # the epoch-2 weights really moved away from the epoch-1 checkpoint
    assert not torch.equal(ckpt["model"]["net.fc.weight"], b["net.fc.weight"])


def test_seed_fixes_a_run_and_another_seed_changes_it(tmp_path, tiny_data):
    r1 = _run(tmp_path / "a", tiny_data, epochs=1)
    r2 = _run(tmp_path / "b", tiny_data, epochs=1)
    r3 = _run(tmp_path / "c", tiny_data, epochs=1, seed=1)
    w = "net.fc.weight"
    assert torch.equal(r1.model.state_dict()[w], r2.model.state_dict()[w])
    assert not torch.equal(r1.model.state_dict()[w], r3.model.state_dict()[w])


def test_checkpoint_is_weights_only_and_rebuilds_the_model(tmp_path, tiny_data):
    res = _run(tmp_path / "run", tiny_data, epochs=1)
    ckpt = torch.load(res.checkpoint, map_location="cpu", weights_only=True)
    assert {"spec", "model", "optimizer", "epoch", "history", "config"} <= set(ckpt)
    model = load_model_checkpoint(res.checkpoint)
    assert not model.training
    x = torch.rand(3, 3, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), res.model(x))
    # a different config refuses to resume from this run directory
    with pytest.raises(ValueError, match="different configuration"):
        _run(tmp_path / "run", tiny_data, epochs=1, lr=0.5)
    with pytest.raises(TypeError, match="unknown training options"):
        _run(tmp_path / "run2", tiny_data, learning_rate=0.1)
    with pytest.raises(FileNotFoundError):
        load_model_checkpoint(tmp_path / "missing.pt")


def test_export_default_records_how_and_how_well(tmp_path, tiny_data):
    res = _run(tmp_path / "run", tiny_data, epochs=1)
    pt = export_default(
        res, "tiny", tiny_data[1], command="python -m hba_lib.models.train --x", folder=tmp_path
    )
    import json

    info = json.loads(pt.with_suffix(".json").read_text())
    assert info["command"] == "python -m hba_lib.models.train --x" and info["seed"] == 0
    assert info["test_acc"] == evaluate(load_model_checkpoint(pt), tiny_data[1])
    assert info["data"]["n_test"] == len(tiny_data[1])


class _OrderModel(nn.Module):
    """Predicts class 0 when frame brightness rises over time, class 1 otherwise."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.spec = {"name": "order", "num_classes": 2, "kwargs": {}}

    def forward(self, x):
        m = x.mean(dim=(1, 3, 4))
        rising = (m[:, 1:] >= m[:, :-1]).all(1)
        return torch.stack([rising.float(), (~rising).float()], 1) + self.w


class _Ramps(torch.utils.data.Dataset):
    """Clips whose frame t has brightness t/15: temporal order is the only signal."""

    classes = ["rising", "other"]

    def __init__(self, n=20):
        ramp = (np.arange(16) * 17).astype(np.uint8)
        self.videos = np.broadcast_to(ramp[None, :, None, None, None], (n, 16, 4, 4, 3)).copy()
        self.labels = np.zeros(n, np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        raise AssertionError("evaluation must use the in-memory fast path")


def test_shuffled_frame_control_destroys_temporal_order():
    model, data = _OrderModel(), _Ramps()
    assert evaluate(model, data) == 1.0
    assert evaluate(model, data, shuffle_frames=True, seed=0) == 0.0
    df = table1({"order": model}, {"ramps": data})
    assert df.loc[0, "accuracy_%"] == 100.0 and df.loc[0, "shuffled_frames_%"] == 0.0
    assert df.loc[0, "chance_%"] == 50.0


def test_table1_rows_match_evaluate_and_are_saved(tmp_path, tiny_data):
    torch.manual_seed(0)
    model = build_model("c3d_small", 12, **TINY).eval()
    other = build_model("c3d_small", 5, **TINY).eval()  # wrong class count: skipped
    df = table1({"c3d_small": model, "five": other}, {"synthetic": tiny_data[1]})
    assert list(df["model"]) == ["c3d_small"]
    assert df.loc[0, "accuracy_%"] == round(100 * evaluate(model, tiny_data[1]), 2)
    md, csv = save_table1(df, "table1_test", folder=tmp_path)
    assert "| c3d_small | synthetic |" in md.read_text()
    assert csv.read_text().splitlines()[0].startswith("model,dataset,n_test,accuracy_%")
    import matplotlib.pyplot as plt

    plt.close(viz.plot_table1(df))


def test_evaluate_rejects_empty_data():
    model = build_model("c3d_small", 2, **TINY)
    empty = _Ramps(0)
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, empty)


def test_gpu_training_script_runs_a_tiny_config_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "train_gpu", paths.REPO_ROOT / "benchmarks" / "train_gpu.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--tiny", "--epochs", "1", "--run-root", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert [r["model"] for r in rows] == ["c3d", "lrcn"]
    for r in rows:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["seconds_per_epoch"] > 0
    assert "s/epoch" in out


def test_train_leaves_torch_global_generator_as_it_found_it(tmp_path, tiny_data):
    """train() seeds torch's global generator (initialisation, dropout): the caller's next draw
    is what it would have been without the call, and the run is still the same run."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = _run(tmp_path / "a", tiny_data, epochs=1)
    assert torch.equal(torch.rand(3), expected)
    torch.rand(5)  # the caller draws more before the next run
    again = _run(tmp_path / "b", tiny_data, epochs=1)
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_train_restores_cudnn_benchmark(tmp_path, tiny_data):
    """Issue 9 (6): train() set cudnn.benchmark = True on CUDA and never put it back, which made
    every later attack (batches of a new size at every step) re-tune cuDNN: 8.6x slower."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        if torch.cuda.is_available():
            _run(tmp_path / "run", tiny_data, epochs=1, device="cuda")
        else:  # the CUDA branch sets the flag, then moving the model to "cuda" fails
            with pytest.raises((RuntimeError, AssertionError)):
                _run(tmp_path / "run", tiny_data, epochs=1, device="cuda")
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


def test_train_forks_only_the_generator_of_the_device_it_uses(monkeypatch):
    """The generators ``train()`` puts back are its own device's: on the CPU none of CUDA's (on
    a machine with GPUs, forking every GPU's generator initialises CUDA on each, which a forked
    worker cannot), on a GPU that GPU's alone, however the device is passed."""
    import inspect

    from hba_lib.models import train as train_mod

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    sig = inspect.signature(train_mod.train.__wrapped__)
    assert train_mod._cuda_devices(sig, (), {"device": "cpu"}) == []
    assert train_mod._cuda_devices(sig, (), {"device": torch.device("cpu")}) == []
    assert train_mod._cuda_devices(sig, (), {"device": "cuda:1"}) == [1]
    assert train_mod._cuda_devices(sig, (), {"device": "cuda"}) == [2]
    assert train_mod._cuda_devices(sig, (), {}) == [2]  # the default: CUDA where there is one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_mod._cuda_devices(sig, (), {}) == []
