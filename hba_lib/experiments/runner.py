"""Run a sweep's missing jobs and commit each job's row to the store as soon as it finishes.

Backends:

- ``local`` (default): one process, one model. Pending jobs are grouped by (model, data set,
  attack configuration, seed, goal) and run ``chunk_size`` videos at a time through the attack's
  ``run_many`` (one joint forward pass per step); each job's row is committed when its chunk
  finishes.
- ``ray``: the same chunks as Ray tasks (``num_cpus`` / ``num_gpus`` each, at most ``workers``
  in flight); a task rebuilds its inputs from the job descriptions and loads the model once per
  worker process; the driver commits each task's rows as it finishes (``ray.wait``).

A job's result does not depend on the jobs run beside it: its inputs and attack seed come from
the job alone. One caveat: a model's float arithmetic can differ by about 1e-6 with the batch
size, and a query that close to the boundary can then be answered differently, so two runs
agree exactly when they use the same ``chunk_size`` and pending set, e.g. ``chunk_size=1``
(every job alone), or with a model whose arithmetic is per clip.

Failures: when a chunk raises (e.g. NaN logits for one video), its jobs are rerun one at a
time; a job that still raises is committed as ``failed`` with its error, and the sweep goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hba_lib.experiments import store as st
from hba_lib.experiments.jobs import chunks, run_jobs
from hba_lib.experiments.sweep import Job, Sweep, expand, job_key, load_sweep

BACKENDS = ("local", "ray")
__all__ = ["BACKENDS", "SweepReport", "chunks", "run_jobs", "run_sweep"]


@dataclass
class SweepReport:
    """What a call to :func:`run_sweep` did: jobs in the sweep, skipped (already done), run."""

    total: int
    skipped: int
    ran: int
    failed: int
    queries: int
    wall_time: float

    def __str__(self) -> str:
        rate = self.queries / self.wall_time if self.wall_time > 0 else math.nan
        return (
            f"{self.total} jobs: {self.skipped} already done, {self.ran} run ({self.failed} "
            f"failed), {self.queries} queries in {self.wall_time:.1f} s ({rate:.0f} queries/s)"
        )


# -- the driver ------------------------------------------------------------------------------------
def _commit(con, store: Path, rec: dict[str, Any], started: float) -> None:
    x, x_adv = rec.pop("_x", None), rec.pop("_x_adv", None)
    rec["adv_file"] = None
    if x_adv is not None:
        rec["adv_file"] = st.save_adversarial(store, rec["key"], x, x_adv)
    rec["started"] = started
    st.commit_record(con, rec)


class _Progress:
    """tqdm over jobs, with queries/s in the postfix (tqdm shows the time left)."""

    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="job", desc=desc, disable=not enabled, smoothing=0.1)
        self.t0 = time.perf_counter()
        self.done = 0
        self.queries = 0
        self.failed = 0

    def update(self, rec: dict[str, Any]) -> None:
        self.done += 1
        self.queries += int(rec.get("queries") or 0)
        self.failed += rec["status"] == "failed"
        rate = self.queries / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{rate:.0f} queries/s, {self.failed} failed", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_sweep(
    sweep: Sweep | str | Path | Sequence[Job],
    store: str | Path,
    backend: str = "local",
    *,
    workers: int = 1,
    chunk_size: int = 8,
    device: str | None = None,
    save_adversarial: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    threads: int | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
) -> SweepReport:
    """Run the jobs of ``sweep`` (a :class:`Sweep`, a YAML path or a job list) missing from
    ``store``, committing each job's row as it finishes; jobs already done are skipped.

    ``chunk_size``: videos per ``run_many`` call (and per Ray task). ``threads``: torch CPU
    threads (local backend). Ray: ``workers`` tasks in flight, each asking ``num_cpus`` /
    ``num_gpus``. ``save_adversarial``: write each ``x_adv`` beside the store. Failed jobs are
    kept unless ``retry_failed``.
    """
    t0 = time.perf_counter()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "local" and workers != 1:
        raise ValueError("the local backend runs in one process: workers must be 1 (or use ray)")
    if isinstance(sweep, (str, Path)):
        sweep = load_sweep(sweep)
    jobs = expand(sweep) if isinstance(sweep, Sweep) else list(sweep)
    store = Path(store)
    con = st.connect(store)
    try:
        done = st.finished_keys(con, retry_failed)
        pending = [j for j in jobs if job_key(j) not in done]
        todo = chunks(pending, chunk_size)
        name = sweep.name if isinstance(sweep, Sweep) else store.stem
        bar = _Progress(len(pending), progress, f"{name} [{backend}]")
        try:
            if backend == "local":
                if threads is not None:
                    torch.set_num_threads(threads)
                dev = device or _default_device()
                for chunk in todo:
                    st.mark_started(con, [job_key(j) for j in chunk])
                    started = time.time()
                    for rec in run_jobs(chunk, dev, save_adversarial):
                        _commit(con, store, rec, started)
                        bar.update(rec)
            else:
                from hba_lib.experiments.ray_backend import run_ray

                for rec, started in run_ray(
                    todo, con, workers=workers, num_cpus=num_cpus, num_gpus=num_gpus,
                    device=device, keep_adversarial=save_adversarial,
                ):  # fmt: skip
                    _commit(con, store, rec, started)
                    bar.update(rec)
        finally:
            bar.close()
    finally:
        con.close()
    return SweepReport(
        total=len(jobs),
        skipped=len(jobs) - len(pending),
        ran=bar.done,
        failed=bar.failed,
        queries=bar.queries,
        wall_time=time.perf_counter() - t0,
    )
