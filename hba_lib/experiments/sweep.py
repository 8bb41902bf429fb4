"""Sweeps: videos x attack configurations x seeds (x models x data sets), expanded into jobs.

A sweep is written in YAML (``python -m hba_lib.experiments run --sweep sweep.yaml ...``)::

    name: opt-smoke                  # optional, for display
    model: c3d                       # or a list. "c3d" / "lrcn": the committed default
                                     # checkpoints; "path/to/model.pt": a checkpoint saved by
                                     # hba_lib.models.save_model_checkpoint; "pkg.module:function":
                                     # a factory returning an nn.Module (called with model_kwargs);
                                     # "http://host:port": a served model (python -m hba_lib.serve,
                                     # key from $HBA_SERVE_KEY; list the videos; local backend)
    model_kwargs: {}                 # optional, only for a factory
    dataset:                         # or a list of these
      name: synthetic                # hba_lib.data.get_dataset(name, split, **rest)
      split: test
      size: 32                       # any further keys go to get_dataset
    videos: {n: 8, seed: 0}          # n videos the model classifies correctly (one per class
                                     # first, as attack_set picks them); or a list of indices
    goal: untargeted                 # or targeted, or a list of both
    seeds: [0]                       # one job per seed (attack seed and candidate draw)
    num_candidates: 10               # candidate videos per job (initial directions)
    attacks:                         # config name -> make_attack name and its params
      opt-1000: {attack: opt, query_budget: 1000}
      sign-opt-1000: {attack: opt, optimizer: sign-opt, query_budget: 1000}
      ts-1000: {attack: temporal+spatial, query_budget: 1000}   # Algorithm 2, paper defaults

A :class:`Job` is one attack on one video: everything needed to rebuild its inputs, so a job
runs anywhere (another process, a Ray worker) and gives the same result. Its :func:`job_key`
is the SHA-256 of its canonical JSON: the results store's primary key.

A job's inputs come from :func:`job_inputs`: the clean video, its label, the target class
(targeted goal) and the candidate videos, drawn from the rest of the data set by a generator
seeded with ``(seed, video index, data set)``, so a job's inputs never depend on the other jobs
of the sweep. The attack is ``make_attack(attack_name, seed=seed, **params)`` (see :func:`build_attack`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hba_lib.oracle import Oracle

GOALS = ("untargeted", "targeted")


@dataclass(frozen=True)
class Job:
    """One attack on one video: model, data set, video, attack configuration, goal, seed."""

    model: str
    dataset: str
    split: str
    video: int
    attack: str
    attack_name: str
    params: dict[str, Any] = field(default_factory=dict)
    goal: str = "untargeted"
    seed: int = 0
    num_candidates: int = 10
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON-able values."""
        return asdict(self)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): the same value always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def job_key(job: Job) -> str:
    """Stable key of a job: SHA-256 (hex, 32 chars) of its canonical JSON."""
    return hashlib.sha256(canonical_json(job.to_dict()).encode()).hexdigest()[:32]


def job_from_dict(d: dict[str, Any]) -> Job:
    """Inverse of :meth:`Job.to_dict`."""
    return Job(**d)


@dataclass
class Sweep:
    """A sweep description (see the module docstring for the YAML form)."""

    attacks: dict[str, dict[str, Any]]
    model: list[str] = field(default_factory=lambda: ["c3d"])
    dataset: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "synthetic", "split": "test"}]
    )
    videos: list[int] | dict[str, int] = field(default_factory=lambda: {"n": 4, "seed": 0})
    goal: list[str] = field(default_factory=lambda: ["untargeted"])
    seeds: list[int] = field(default_factory=lambda: [0])
    num_candidates: int = 10
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = "sweep"


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def sweep_from_dict(d: dict[str, Any]) -> Sweep:
    """Build a :class:`Sweep` from its YAML/dict form, checking every field."""
    known = set(Sweep.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown sweep fields {sorted(unknown)}; known: {sorted(known)}")
    if not d.get("attacks"):
        raise ValueError("a sweep needs 'attacks': {config name: {attack: NAME, ...params}}")
    attacks = {}
    for name, cfg in d["attacks"].items():
        cfg = dict(cfg or {})
        if "attack" not in cfg:
            raise ValueError(f"attack config {name!r} needs 'attack' (a make_attack name)")
        for key, where in (("seed", "seeds"), ("targeted", "goal")):
            if key in cfg:
                raise ValueError(
                    f"attack config {name!r}: {key!r} comes from the sweep's {where!r}"
                )
        attacks[str(name)] = cfg
    datasets = []
    for ds in _as_list(d.get("dataset", {"name": "synthetic", "split": "test"})):
        ds = {"name": ds} if isinstance(ds, str) else dict(ds)
        if "name" not in ds:
            raise ValueError(f"dataset entry {ds} needs a 'name'")
        ds.setdefault("split", "test")
        datasets.append(ds)
    goals = [str(g) for g in _as_list(d.get("goal", "untargeted"))]
    for g in goals:
        if g not in GOALS:
            raise ValueError(f"unknown goal {g!r}; choose from {GOALS}")
    videos = d.get("videos", {"n": 4, "seed": 0})
    if isinstance(videos, dict):
        if set(videos) - {"n", "seed"} or "n" not in videos:
            raise ValueError(f"'videos' is a list of indices or {{n: N, seed: S}}, got {videos}")
        videos = {"n": int(videos["n"]), "seed": int(videos.get("seed", 0))}
    else:
        videos = [int(v) for v in _as_list(videos)]
    return Sweep(
        attacks=attacks,
        model=[str(m) for m in _as_list(d.get("model", "c3d"))],
        dataset=datasets,
        videos=videos,
        goal=goals,
        seeds=[int(s) for s in _as_list(d.get("seeds", 0))],
        num_candidates=int(d.get("num_candidates", 10)),
        model_kwargs=dict(d.get("model_kwargs") or {}),
        name=str(d.get("name", "sweep")),
    )


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep from a YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file not found: {path}")
    d = yaml.safe_load(path.read_text())
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a sweep is a YAML mapping, got {type(d).__name__}")
    return sweep_from_dict(d)


def expand(sweep: Sweep) -> list[Job]:
    """Every job of ``sweep``, in a fixed order (model, data set, attack, seed, goal, video).

    ``videos: {n, seed}`` loads each (model, data set) to pick the videos it classifies
    correctly; explicit indices are used as they are.
    """
    jobs = []
    for model in sweep.model:
        for ds in sweep.dataset:
            ds_kwargs = {k: v for k, v in ds.items() if k not in ("name", "split")}
            if isinstance(sweep.videos, dict):
                videos = select_videos(
                    model, sweep.model_kwargs, ds["name"], ds["split"], ds_kwargs,
                    sweep.videos["n"], sweep.videos["seed"],
                )  # fmt: skip
            else:
                videos = sweep.videos
            for attack, cfg in sweep.attacks.items():
                params = {k: v for k, v in cfg.items() if k != "attack"}
                for seed in sweep.seeds:
                    for goal in sweep.goal:
                        for video in videos:
                            jobs.append(
                                Job(
                                    model=model, dataset=ds["name"], split=ds["split"],
                                    video=int(video), attack=attack, attack_name=cfg["attack"],
                                    params=params, goal=goal, seed=seed,
                                    num_candidates=sweep.num_candidates,
                                    model_kwargs=dict(sweep.model_kwargs),
                                    dataset_kwargs=ds_kwargs,
                                )
                            )  # fmt: skip
    keys = [job_key(j) for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep lists the same job twice (duplicate videos or seeds?)")
    return jobs


# -- building a job's pieces (cached per process: a Ray worker loads each model once) ------------
_MODELS: dict[str, torch.nn.Module] = {}
_DATASETS: dict[str, Any] = {}


def load_model(
    spec: str, kwargs: dict[str, Any] | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The model named by ``spec`` (:func:`hba_lib.models.load_model_spec`), cached per process."""
    kwargs = dict(kwargs or {})
    key = canonical_json([spec, kwargs, str(device)])
    if key not in _MODELS:
        from hba_lib.models import load_model_spec

        model = load_model_spec(spec, kwargs, device)
        _MODELS[key] = model
    return _MODELS[key]


def load_dataset(name: str, split: str, kwargs: dict[str, Any] | None = None) -> Any:
    """``get_dataset(name, split, **kwargs)``, cached per process."""
    kwargs = dict(kwargs or {})
    key = canonical_json([name, split, kwargs])
    if key not in _DATASETS:
        from hba_lib.data import get_dataset

        _DATASETS[key] = get_dataset(name, split, **kwargs)
    return _DATASETS[key]


def is_served(spec: str) -> bool:
    """Whether a model spec names a served model (an ``http://`` or ``https://`` URL)."""
    return spec.startswith(("http://", "https://"))


def job_oracle(
    spec: str, kwargs: dict[str, Any] | None = None, device: str | torch.device = "cpu"
) -> Oracle:
    """The oracle a job's attack queries: for a served model a
    :class:`~hba_lib.oracle.remote.RemoteOracle` (the key from ``$HBA_SERVE_KEY``, never
    written in a sweep or its store; one client at a time per served budget, so the local
    backend), else an :class:`~hba_lib.oracle.Oracle` on :func:`load_model`."""
    if is_served(spec):
        from hba_lib.oracle.remote import RemoteOracle

        return RemoteOracle(spec)
    return Oracle(load_model(spec, kwargs, device))


def select_videos(
    model: str,
    model_kwargs: dict[str, Any],
    dataset: str,
    split: str,
    dataset_kwargs: dict[str, Any],
    n: int,
    seed: int = 0,
) -> list[int]:
    """Indices of ``n`` videos the model classifies correctly, picked as ``attack_set`` does."""
    from hba_lib.attacks import attack_set

    if is_served(model):
        raise ValueError(
            f"list the videos to attack on the served model {model} (videos: [i, j, ...]): "
            "picking the ones it classifies correctly needs the model itself"
        )
    net = load_model(model, model_kwargs)
    ds = load_dataset(dataset, split, dataset_kwargs)
    return attack_set(ds, net, n, num_candidates=0, seed=seed).indices


def _dataset_id(job: Job) -> int:
    text = canonical_json([job.dataset, job.split, job.dataset_kwargs])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


@dataclass
class JobInputs:
    """A job's attack inputs: clean video ``x [C, T, H, W]``, label, target, candidates."""

    x: torch.Tensor
    label: int
    target: int | None
    candidates: torch.Tensor
    candidate_indices: list[int]


def job_inputs(job: Job, dataset: Any | None = None) -> JobInputs:
    """Rebuild a job's inputs; the draw depends only on (data set, video index, seed)."""
    from hba_lib.data.video import to_model_layout

    ds = (
        dataset if dataset is not None else load_dataset(job.dataset, job.split, job.dataset_kwargs)
    )
    labels = np.asarray(ds.labels)
    if not 0 <= job.video < len(labels):
        raise IndexError(
            f"video {job.video} out of range for {job.dataset}/{job.split} ({len(labels)})"
        )
    rng = np.random.default_rng([job.seed, job.video, _dataset_id(job)])
    y = int(labels[job.video])
    k = len(getattr(ds, "classes", np.unique(labels)))
    target = None
    if job.goal == "targeted":
        target = int(rng.choice([c for c in range(k) if c != y]))
    others = np.delete(np.arange(len(labels)), job.video)
    pool = others[labels[others] != y] if target is None else others[labels[others] == target]
    if len(pool) == 0:
        raise ValueError(f"no candidate videos for job on video {job.video} (goal {job.goal})")
    pick = np.sort(rng.choice(pool, size=min(job.num_candidates, len(pool)), replace=False))
    return JobInputs(
        x=to_model_layout(np.asarray(ds.videos[job.video])),
        label=y,
        target=target,
        candidates=to_model_layout(np.asarray(ds.videos[pick.tolist()])),
        candidate_indices=[int(i) for i in pick],
    )


def build_attack(job: Job) -> Any:
    """``make_attack(job.attack_name, seed=job.seed, **job.params)`` (and ``targeted=`` for a
    targeted job when ``make_attack`` takes it: presets can differ by goal)."""
    import inspect

    from hba_lib.attacks import make_attack

    params = dict(job.params)
    if "targeted" in inspect.signature(make_attack).parameters:
        params["targeted"] = job.goal == "targeted"
    return make_attack(job.attack_name, seed=job.seed, **params)
