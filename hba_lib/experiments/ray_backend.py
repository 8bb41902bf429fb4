"""The Ray backend: a sweep's chunks as Ray tasks; the driver commits rows as tasks finish.

Needs the optional extra ``ray`` (``pip install -e '.[ray]'``). A task gets its jobs'
descriptions only; it rebuilds the inputs and loads the model once per worker process (the
caches in ``sweep``). A Ray runtime already started (``ray.init``) is used as it is; otherwise
one is started for the sweep (with the driver's ``hba_lib`` folder first on the workers'
``PYTHONPATH``) and shut down after. Workers must import the same ``hba_lib`` as the driver
(an editable install, or ``PYTHONPATH`` inherited from the driver); a task that did not is an
error naming both paths.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

import hba_lib
from hba_lib.experiments import store as st
from hba_lib.experiments.jobs import failed_record, run_jobs
from hba_lib.experiments.sweep import Job, job_key


def _task(
    jobs: list[Job], device: str | None, threads: int, keep_adversarial: bool
) -> tuple[str, list[dict]]:
    """Body of one Ray task: run a chunk of jobs in this worker; also say which hba_lib ran."""
    torch.set_num_threads(threads)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return hba_lib.__file__, run_jobs(jobs, dev, keep_adversarial)


def _pythonpath() -> str:
    root = str(Path(hba_lib.__file__).resolve().parent.parent)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return os.pathsep.join([root, *rest])


def run_ray(
    todo: Sequence[list[Job]],
    con: Any,
    *,
    workers: int = 1,
    num_cpus: float = 1,
    num_gpus: float = 0,
    device: str | None = None,
    keep_adversarial: bool = False,
) -> Iterator[tuple[dict, float]]:
    """Run chunks as Ray tasks, ``workers`` in flight; yield ``(record, started)`` as they finish.

    Each chunk is marked started in the store when its task is submitted.
    """
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the ray backend needs the 'ray' extra: pip install -e '.[ray]'") from exc
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}},
        )
    remote = ray.remote(_task).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
    threads = max(1, int(num_cpus))
    queue = list(todo)
    in_flight: dict[Any, tuple[float, list[Job]]] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                chunk = queue.pop(0)
                st.mark_started(con, [job_key(j) for j in chunk])
                ref = remote.remote(chunk, device, threads, keep_adversarial)
                in_flight[ref] = (time.time(), chunk)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                started, chunk = in_flight.pop(ref)
                try:
                    where, records = ray.get(ref)
                    if where != hba_lib.__file__:
                        raise RuntimeError(
                            f"a Ray worker imported {where}, the driver {hba_lib.__file__}: "
                            "put the same hba_lib on the workers' PYTHONPATH"
                        )
                except ray.exceptions.RayError as exc:  # the worker died: record, go on
                    wall = time.time() - started
                    records = [failed_record(j, job_key(j), exc, wall) for j in chunk]
                for rec in records:
                    yield rec, started
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
