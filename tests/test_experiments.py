"""Sweeps and the results store: resumable after SIGKILL, half-written rows rerun, Ray = local,
a failing video recorded and isolated, adversarial videos saved on request."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from hba_lib import paths
from hba_lib.experiments import (
    Job,
    expand,
    job_inputs,
    job_key,
    load_adversarial,
    load_results,
    run_sweep,
    store_status,
    sweep_from_dict,
)
from hba_lib.experiments.summary import summary_table
from hba_lib.models import load_default_model

torch.set_num_threads(1)  # 2 shared cores; the sweeps below also run with one thread

SWEEP = {
    "name": "tiny",
    "model": "c3d",
    "dataset": {"name": "synthetic", "split": "test", "size": 32},
    "videos": {"n": 4, "seed": 0},
    "goal": "untargeted",
    "seeds": [0],
    "num_candidates": 4,
    "attacks": {"opt-200": {"attack": "opt", "query_budget": 200}},
}
VOLATILE = ["wall_time", "started", "finished", "worker"]  # differ between two runs


def _table(store: Path) -> pd.DataFrame:
    return load_results(store).drop(columns=VOLATILE)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tiny sweep run once, uninterrupted, one job per chunk."""
    store = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    report = run_sweep(sweep_from_dict(SWEEP), store, chunk_size=1, progress=False)
    assert report.ran == 4 and report.failed == 0
    return store


# -- sweep description ----------------------------------------------------------------------------
def test_job_key_is_canonical_and_sweep_checks_fields() -> None:
    a = Job("c3d", "synthetic", "test", 3, "opt", "opt", {"q": 5, "query_budget": 9})
    b = Job("c3d", "synthetic", "test", 3, "opt", "opt", {"query_budget": 9, "q": 5})
    assert job_key(a) == job_key(b)
    assert job_key(a) != job_key(Job(**{**a.to_dict(), "seed": 1}))
    with pytest.raises(ValueError, match="unknown sweep fields"):
        sweep_from_dict({**SWEEP, "budget": 3})
    with pytest.raises(ValueError, match="seeds"):
        sweep_from_dict({**SWEEP, "attacks": {"x": {"attack": "opt", "seed": 1}}})
    jobs = expand(sweep_from_dict({**SWEEP, "videos": [5, 7], "seeds": [0, 1],
                                   "goal": ["untargeted", "targeted"]}))  # fmt: skip
    assert len(jobs) == 8 and len({job_key(j) for j in jobs}) == 8


def test_job_inputs_depend_only_on_dataset_video_and_seed() -> None:
    job = Job("c3d", "synthetic", "test", 17, "a", "opt", {"q": 5}, seed=3, num_candidates=4,
              dataset_kwargs={"size": 32})  # fmt: skip
    other = Job(**{**job.to_dict(), "attack": "b", "params": {"q": 9}})
    i1, i2 = job_inputs(job), job_inputs(other)
    assert i1.candidate_indices == i2.candidate_indices and torch.equal(
        i1.candidates, i2.candidates
    )
    assert job_inputs(Job(**{**job.to_dict(), "seed": 4})).candidate_indices != i1.candidate_indices
    targeted = job_inputs(Job(**{**job.to_dict(), "goal": "targeted"}))
    assert targeted.target is not None and targeted.target != targeted.label
    labels = [int(i) % 12 for i in targeted.candidate_indices]  # synthetic labels: index % 12
    assert set(labels) == {targeted.target}
    assert all(int(i) % 12 != i1.label for i in i1.candidate_indices)


# -- resumable: a real SIGKILL, then a rerun ------------------------------------------------------
def test_sigkill_mid_sweep_then_rerun_gives_the_uninterrupted_rows(tmp_path, reference) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    store = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(paths.REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    cmd = [sys.executable, "-m", "hba_lib.experiments", "run", "--sweep", str(sweep_file),
           "--store", str(store), "--chunk-size", "1", "--threads", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists() and store_status(store)["done"] >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"sweep ended before the kill: {proc.communicate()[0]!r}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    status = store_status(store)
    assert 1 <= status["done"] < 4, status  # killed part-way
    report = run_sweep(store=store, sweep=sweep_file, chunk_size=1, progress=False)
    assert report.skipped == status["done"] and report.ran == 4 - status["done"]
    assert store_status(store) == {"done": 4, "failed": 0, "running": 0, "corrupt": 0}
    pd.testing.assert_frame_equal(_table(store), _table(reference))


# -- half-written rows ----------------------------------------------------------------------------
def test_half_written_rows_are_detected_rerun_and_never_loaded(tmp_path, reference) -> None:
    store = tmp_path / "torn.sqlite"
    store.write_bytes(reference.read_bytes())
    keys = load_results(store)["key"].tolist()
    con = sqlite3.connect(store)
    with con:  # a torn payload, a changed value, a job started and never finished
        con.execute("UPDATE results SET payload = substr(payload, 1, 100) WHERE key = ?", keys[:1])
        con.execute("UPDATE results SET payload = replace(payload, '\"success\":true', "
                    "'\"success\":false') WHERE key = ?", keys[1:2])  # fmt: skip
        con.execute("UPDATE results SET status = 'running', payload = NULL, checksum = NULL, "
                    "finished = NULL WHERE key = ?", keys[2:3])  # fmt: skip
    con.close()
    assert store_status(store) == {"done": 1, "failed": 0, "running": 1, "corrupt": 2}
    with pytest.warns(UserWarning, match="1 unfinished and 2 corrupt"):
        partial = load_results(store)
    assert partial["key"].tolist() == keys[3:]
    report = run_sweep(sweep_from_dict(SWEEP), store, chunk_size=1, progress=False)
    assert (report.skipped, report.ran) == (1, 3)
    pd.testing.assert_frame_equal(_table(store), _table(reference))


# -- Ray backend = local backend ------------------------------------------------------------------
def test_ray_and_local_backends_give_identical_tables(tmp_path, reference) -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")  # 2 busy cores: a slow start
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        store = tmp_path / "ray.sqlite"
        report = run_sweep(sweep_from_dict(SWEEP), store, backend="ray", workers=2,
                           chunk_size=1, progress=False)  # fmt: skip
    finally:
        ray.shutdown()
    assert report.ran == 4 and report.failed == 0
    pd.testing.assert_frame_equal(_table(store), _table(reference))


# -- a failing video ------------------------------------------------------------------------------
class NaNOnVideo(nn.Module):
    """The default C3D, but NaN logits for any query within L2 1.0 of one video."""

    def __init__(self, model: nn.Module, video: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("video", video)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        near = (x - self.video).flatten(1).norm(dim=1) < 1.0
        return self.model(x).masked_fill(near[:, None], float("nan"))


def nan_c3d(bad_video: int) -> nn.Module:
    """Model factory for a sweep: ``NaNOnVideo`` on video ``bad_video`` of the 32 px test set."""
    job = Job("c3d", "synthetic", "test", bad_video, "-", "-", dataset_kwargs={"size": 32})
    return NaNOnVideo(load_default_model("c3d"), job_inputs(job).x)


def test_nan_video_is_recorded_failed_and_the_others_finish(tmp_path) -> None:
    from hba_lib.experiments.sweep import load_dataset

    ds = load_dataset("synthetic", "test", {"size": 32})
    same_class = np.flatnonzero(np.asarray(ds.labels) == 6)[:6].tolist()  # never a candidate
    x = torch.stack([job_inputs(Job("c3d", "synthetic", "test", int(i), "-", "-",
                                    dataset_kwargs={"size": 32})).x for i in same_class])  # fmt: skip
    with torch.inference_mode():
        ok = load_default_model("c3d")(x).argmax(1).eq(6).tolist()
    videos = [i for i, good in zip(same_class, ok) if good][:3]
    assert len(videos) == 3
    sweep = sweep_from_dict({**SWEEP, "videos": videos, "model": f"{__name__}:nan_c3d",
                             "model_kwargs": {"bad_video": videos[1]}})  # fmt: skip
    store = tmp_path / "nan.sqlite"
    report = run_sweep(sweep, store, chunk_size=4, progress=False)  # one chunk: it raises
    assert (report.ran, report.failed) == (3, 1)
    df = load_results(store).set_index("video")
    assert df.loc[videos[1], "status"] == "failed"
    assert "NonFiniteOutputError" in df.loc[videos[1], "error"]
    assert "NaN" in df.loc[videos[1], "error"]
    assert (df.loc[[videos[0], videos[2]], "status"] == "done").all()
    assert df.loc[[videos[0], videos[2]], "queries"].gt(0).all()
    assert run_sweep(sweep, store, progress=False).ran == 0  # failures are kept...
    assert run_sweep(sweep, store, retry_failed=True, progress=False).ran == 1  # ...unless retried
    table = summary_table(load_results(store))
    assert table["videos"].iloc[0] == 2 and table["failed"].iloc[0] == 1


# -- adversarial videos ---------------------------------------------------------------------------
def test_adversarial_videos_are_saved_compressed_on_request(tmp_path) -> None:
    sweep = sweep_from_dict({**SWEEP, "videos": [18],
                             "attacks": {"opt-60": {"attack": "opt", "query_budget": 60}}})  # fmt: skip
    store = tmp_path / "adv.sqlite"
    run_sweep(sweep, store, save_adversarial=True, progress=False)
    row = load_results(store).iloc[0]
    x_adv = load_adversarial(store, row["key"])
    x = job_inputs(expand(sweep)[0]).x
    assert x_adv.shape == x.shape
    assert float(torch.linalg.vector_norm(x_adv - x)) == pytest.approx(row["distance"], rel=1e-3)
    saved = store.with_name(store.name + ".adv") / row["adv_file"]
    assert saved.stat().st_size < x.numel() * 4  # smaller than x_adv in float32


def test_an_adversarial_video_cut_mid_write_leaves_the_old_file_and_no_stray(
    tmp_path, monkeypatch
) -> None:
    """A write that fails halfway (disk full, a kill) must not leave a half file under the
    video's name nor a temporary file beside it; the file saved before stays whole."""
    from hba_lib.experiments import store as st

    store = tmp_path / "cut.sqlite"
    x = torch.rand(3, 4, 8, 8)
    st.save_adversarial(store, "k", x, (x + 0.01).clamp(0, 1))
    before = st.load_adversarial(store, "k")

    def half_then_fail(f, **arrays) -> None:
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st.np, "savez_compressed", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        st.save_adversarial(store, "k", x, (x - 0.02).clamp(0, 1))
    with pytest.raises(OSError, match="No space left"):
        st.save_adversarial(store, "new", x, x)
    folder = st.adversarial_dir(store)
    assert sorted(p.name for p in folder.iterdir()) == ["k.npz"]
    assert torch.equal(st.load_adversarial(store, "k"), before)


def test_cli_show_prints_status_and_the_metrics_table(reference, capsys) -> None:
    from hba_lib.experiments.__main__ import main

    assert main(["show", "--store", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "'done': 4" in out and "FR %" in out and "opt-200" in out
