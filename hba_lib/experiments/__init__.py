"""Experiments: sweeps of attacks, a resumable results store, and local / Ray backends.

- ``sweep``: the sweep description (YAML format in its docstring), :class:`Job`, job keys,
  each job's self-contained inputs.
- ``store``: the SQLite results store (one checksummed row per job), :func:`load_results`.
- ``runner``: :func:`run_sweep` (local backend, chunked ``run_many``); ``ray_backend``: Ray.
- ``python -m hba_lib.experiments run --sweep sweep.yaml --store runs/sweeps/NAME.sqlite``.
"""

from hba_lib.experiments.runner import BACKENDS, SweepReport, run_jobs, run_sweep
from hba_lib.experiments.store import (
    load_adversarial,
    load_records,
    load_results,
    store_status,
)
from hba_lib.experiments.sweep import (
    Job,
    Sweep,
    expand,
    job_inputs,
    job_key,
    load_sweep,
    sweep_from_dict,
)

__all__ = [
    "BACKENDS",
    "Job",
    "Sweep",
    "SweepReport",
    "expand",
    "job_inputs",
    "job_key",
    "load_adversarial",
    "load_records",
    "load_results",
    "load_sweep",
    "run_jobs",
    "run_sweep",
    "store_status",
    "sweep_from_dict",
]
