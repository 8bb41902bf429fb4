"""One chunk of a sweep's jobs -> one record per job: what the local backend runs in the driver and
the Ray backend in a worker (``hba_lib.experiments.runner`` and ``ray_backend`` both import it;
neither imports the other's internals).

- :func:`chunks` groups jobs that share (model, data set, attack configuration, seed, goal);
- :func:`run_jobs` runs one chunk through the attack's ``run_many``; a chunk that raises is
  rerun one job at a time, and a job that still raises gets a ``failed`` record;
- :func:`failed_record` is the row of a job that could not run (also for a Ray worker that died).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from typing import Any

import torch

from hba_lib.experiments.sweep import (
    Job,
    build_attack,
    canonical_json,
    job_inputs,
    job_key,
    job_oracle,
    load_dataset,
)


def _base_record(job: Job, key: str) -> dict[str, Any]:
    return {"key": key, **job.to_dict()}


def _result_record(job: Job, key: str, inputs: Any, r: Any) -> dict[str, Any]:
    by_phase = dict(r.queries_by_phase)
    return {
        **_base_record(job, key),
        "status": "done",
        "label": inputs.label,
        "target": inputs.target,
        "candidates": inputs.candidate_indices,
        "success": bool(r.success),
        "attacked": bool(r.attacked),
        "stop_reason": r.stop_reason,
        "queries": int(r.queries),
        "queries_init": int(by_phase.get("init", 0)),
        "queries_optimisation": int(by_phase.get("optimisation", 0)),
        "queries_check": int(by_phase.get("check", 0)),
        "map": float(r.map),
        "map_star": float(r.map_star),
        "sparsity": float(r.sparsity),
        "distance": float(r.distance),
        "iterations": int(r.iterations),
        "adv_label": r.label,
        "wall_time": float(r.wall_time),
        "linf": float(r.linf),
        "trace": [[int(t[0]), float(t[1]), float(t[2]), float(t[3])] for t in r.trace],
        "error": None,
    }


def failed_record(job: Job, key: str, exc: BaseException, wall_time: float) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(exc)[-3:])
    return {
        **_base_record(job, key),
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}\n{tb}",
        "wall_time": wall_time,
    }


def _run_together(jobs: Sequence[Job], device: str, keep_adversarial: bool) -> list[dict]:
    """Jobs sharing (model, data set, attack config, seed, goal) through one ``run_many``."""
    first = jobs[0]
    oracle = job_oracle(first.model, first.model_kwargs, device)
    dataset = load_dataset(first.dataset, first.split, first.dataset_kwargs)
    inputs = [job_inputs(j, dataset) for j in jobs]
    attack = build_attack(first)
    t0 = time.perf_counter()
    results = attack.run_many(
        oracle,
        torch.stack([i.x for i in inputs]),
        [i.label for i in inputs],
        targets=[i.target for i in inputs],
        candidates=[i.candidates for i in inputs],
    )
    if len(results) != len(jobs):
        raise RuntimeError(
            f"{attack.name}.run_many returned {len(results)} results for {len(jobs)}"
        )
    records = []
    for job, inp, r in zip(jobs, inputs, results):
        key = job_key(job)
        error = r if isinstance(r, BaseException) else getattr(r, "info", {}).get("error")
        if error is not None:
            exc = error if isinstance(error, BaseException) else RuntimeError(str(error))
            records.append(failed_record(job, key, exc, time.perf_counter() - t0))
            continue
        rec = _result_record(job, key, inp, r)
        if keep_adversarial:
            rec["_x"], rec["_x_adv"] = inp.x, r.x_adv.detach().cpu()
        records.append(rec)
    return records


def run_jobs(
    jobs: Sequence[Job], device: str = "cpu", keep_adversarial: bool = False
) -> list[dict]:
    """Run jobs sharing (model, data set, attack config, seed, goal); one record per job.

    If the chunk raises, its jobs are rerun one at a time; a job that raises alone gets a
    ``failed`` record with the error. ``keep_adversarial`` adds ``_x``/``_x_adv`` tensors.
    """
    if not jobs:
        return []
    t0 = time.perf_counter()
    try:
        return _run_together(jobs, device, keep_adversarial)
    except Exception as exc:  # noqa: BLE001 - recorded, never swallowed silently
        if len(jobs) == 1:
            return [failed_record(jobs[0], job_key(jobs[0]), exc, time.perf_counter() - t0)]
        return [rec for job in jobs for rec in run_jobs([job], device, keep_adversarial)]


def chunks(jobs: Sequence[Job], chunk_size: int) -> list[list[Job]]:
    """Group jobs by (model, data set, attack configuration, seed, goal), then cut chunks."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        gkey = canonical_json(
            [job.model, job.model_kwargs, job.dataset, job.split, job.dataset_kwargs,
             job.attack, job.attack_name, job.params, job.seed, job.goal]
        )  # fmt: skip
        groups.setdefault(gkey, []).append(job)
    return [g[i : i + chunk_size] for g in groups.values() for i in range(0, len(g), chunk_size)]
