"""Train any target model on any data set; evaluate clip accuracy; build Table 1.

``train("c3d_small", "synthetic", epochs=...)`` runs on the GPU with mixed precision when
one is present, on the CPU otherwise; it checkpoints every epoch to ``run_dir/last.pt``
(loadable with ``torch.load(weights_only=True)``) and resumes from there after an
interruption, reproducing the uninterrupted run exactly: every epoch's shuffle, augmentation
and dropout draw from ``(seed, epoch)`` alone.

Command line (the embedded defaults were made this way, see ``hba_lib/checkpoints/*.json``)::

    python -m hba_lib.models.train --model c3d_small --dataset synthetic --size 32 --epochs 30 \
        --seed 0 --export c3d_small_synthetic
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from hba_lib import paths
from hba_lib.data.video import to_model_layout
from hba_lib.models import build_model, count_parameters, save_model_checkpoint

CHECKPOINT_NAME = "last.pt"
# Paper Table 1 clip accuracy (%), for side-by-side display.
PAPER_TABLE1 = {
    ("c3d", "ucf101"): 85.88,
    ("c3d", "hmdb51"): 59.57,
    ("lrcn", "ucf101"): 64.92,
    ("lrcn", "hmdb51"): 37.42,
}


class TrainingInterrupted(RuntimeError):
    """Raised by ``train(..., stop_after_steps=n)`` to simulate a crash mid-epoch."""


@dataclass
class TrainConfig:
    """Everything that fixes a training run (saved in every checkpoint)."""

    model: str = "c3d_small"
    dataset: str = "synthetic"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    augment_shift: int = 2  # random translation (pixels), the same for all frames of a clip
    seed: int = 0
    size: int = 32
    n_per_class: int | None = None  # train split; None = the data set's default
    test_n_per_class: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    amp: bool | None = None  # None: on for CUDA, off on CPU
    max_minutes: float | None = None  # stop after the epoch that would cross this limit

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the checkpoint it resumes."""
        d = json.loads(json.dumps(asdict(self)))
        for k in ("epochs", "max_minutes"):
            d.pop(k)
        return d


@dataclass
class TrainResult:
    """A finished (or time-capped) run: the model in eval mode and its per-epoch history."""

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, float]]
    checkpoint: Path
    device: str
    classes: list[str]

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_acc"] if self.history else float("nan")


# --------------------------------------------------------------------------- data
def load_datasets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """The (train, test) splits a config names, through ``hba_lib.data.get_dataset``."""
    from hba_lib.data import get_dataset

    kw = dict(config.dataset_kwargs)
    kw.setdefault("size", config.size)
    train_kw, test_kw = dict(kw), dict(kw)
    if config.dataset == "synthetic":
        train_kw["n_per_class"] = config.n_per_class
        test_kw["n_per_class"] = config.test_n_per_class
    elif config.n_per_class is not None or config.test_n_per_class is not None:
        raise ValueError("n_per_class / test_n_per_class apply to the synthetic data set only")
    train_set = get_dataset(config.dataset, "train", **train_kw)
    test_set = get_dataset(config.dataset, "test", **test_kw)
    return train_set, test_set


def _video_source(dataset: Dataset, device: torch.device) -> torch.Tensor | None:
    """The data set's uint8 ``[N, T, H, W, C]`` videos as one tensor when held in memory."""
    videos = getattr(dataset, "videos", None)
    if isinstance(videos, np.ndarray) and videos.dtype == np.uint8 and videos.ndim == 5:
        t = torch.from_numpy(videos)
        return t.to(device) if device.type == "cuda" else t
    return None


def iterate_batches(
    dataset: Dataset,
    indices: Sequence[int] | torch.Tensor,
    batch_size: int,
    device: torch.device,
    source: torch.Tensor | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(video float [B, C, T, H, W] in [0, 1], label [B])`` batches on ``device``."""
    if source is None:
        source = _video_source(dataset, device)
    labels_all = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
    indices = torch.as_tensor(indices, dtype=torch.long)
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        if source is not None:
            x = to_model_layout(source[idx.to(source.device)]).to(device, non_blocking=True)
        else:
            x = torch.stack([dataset[int(i)][0] for i in idx]).to(device)
        yield x, labels_all[idx].to(device)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each clip by a random (dy, dx) in [-max_shift, max_shift], edge-padded."""
    if max_shift <= 0:
        return x
    b, c, t, h, w = x.shape
    pad = F.pad(x.reshape(b, c * t, h, w), [max_shift] * 4, mode="replicate")
    offs = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=generator)
    return torch.stack(
        [pad[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offs.tolist())]
    ).reshape(b, c, t, h, w)


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    shuffle_frames: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Top-1 predictions on every clip; ``shuffle_frames`` permutes each clip's frames in time."""
    device = torch.device(device or next(model.parameters()).device)
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    preds = []
    for x, _ in iterate_batches(dataset, torch.arange(len(dataset)), batch_size, device):
        if shuffle_frames:
            t = x.shape[2]
            perm = torch.stack([torch.randperm(t, generator=gen) for _ in range(len(x))])
            x = torch.stack([x[i][:, perm[i].to(x.device)] for i in range(len(x))])
        with _autocast(device, device.type == "cuda"):
            preds.append(model(x).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    shuffle_frames: bool = False,
    seed: int = 0,
) -> float:
    """Clip accuracy in [0, 1] on ``dataset`` (optionally with frames shuffled in time)."""
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty data set")
    pred = predict(model, dataset, batch_size, device, shuffle_frames, seed)
    return float((pred == np.asarray(dataset.labels)).mean())


def accuracy_report(
    model: nn.Module, dataset: Dataset, batch_size: int = 64, seed: int = 0
) -> dict[str, float]:
    """Clip accuracy and the shuffled-frame control (accuracy with each clip's frames permuted)."""
    return {
        "test_acc": evaluate(model, dataset, batch_size),
        "shuffled_acc": evaluate(model, dataset, batch_size, shuffle_frames=True, seed=seed),
        "n_test": len(dataset),
        "chance": 1.0 / len(getattr(dataset, "classes", [0, 0])),
    }


# --------------------------------------------------------------------------- training
def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(
        device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda"
    )


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    with paths.written_then_renamed(path) as tmp:
        torch.save(obj, tmp)


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<model>_<dataset>_<size>px_seed<seed>`` under the repository."""
    return paths.RUNS / f"{config.model}_{config.dataset}_{config.size}px_seed{config.seed}"


def _cuda_devices(signature: inspect.Signature, args, kwargs) -> list[int]:
    """The CUDA device a ``train`` call will use, as ``fork_rng`` wants it: ``[]`` on the CPU
    (forking every GPU's generator would initialise CUDA on each, which a forked worker cannot)."""
    device = signature.bind(*args, **kwargs).arguments.get("device")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return []
    return [torch.cuda.current_device() if device.index is None else device.index]


def _leaves_no_global_state(fn):
    """Run ``fn`` and put back what it sets globally, however it ends: ``torch.backends.cudnn.
    benchmark`` and torch's global random generators (training seeds them for the weights'
    initialisation and dropout; a caller's next ``torch.rand`` is what it would have been)."""

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        prev = torch.backends.cudnn.benchmark
        try:
            with torch.random.fork_rng(devices=_cuda_devices(signature, args, kwargs)):
                return fn(*args, **kwargs)
        finally:
            torch.backends.cudnn.benchmark = prev

    return wrapper


@_leaves_no_global_state
def train(
    model_name: str = "c3d_small",
    dataset: str = "synthetic",
    *,
    run_dir: str | Path | None = None,
    resume: bool = True,
    device: str | torch.device | None = None,
    progress: bool = True,
    verbose: bool = True,
    datasets: tuple[Dataset, Dataset] | None = None,
    stop_after_steps: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``model_name`` on ``dataset``'s train split; options are :class:`TrainConfig` fields.

    Resumes from ``run_dir/last.pt`` when present (and ``resume``); the checkpoint's config
    must match. ``datasets`` overrides the (train, test) splits; ``stop_after_steps``
    raises :class:`TrainingInterrupted` after that many optimiser steps (for tests).
    """
    from tqdm.auto import tqdm

    unknown = set(options) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown training options {sorted(unknown)}")
    config = TrainConfig(model=model_name, dataset=dataset, **options)
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError(
            f"epochs and batch_size must be >= 1, got {config.epochs}, {config.batch_size}"
        )
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_amp = (device.type == "cuda") if config.amp is None else bool(config.amp)
    if device.type == "cuda":  # fixed shapes: let cuDNN tune (restored on the way out)
        torch.backends.cudnn.benchmark = True
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT_NAME

    train_set, test_set = datasets if datasets is not None else load_datasets(config)
    classes = [str(c) for c in getattr(train_set, "classes", [])]
    num_classes = len(classes) or int(np.max(train_set.labels)) + 1
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes, **config.model_kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda")
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    start_epoch, step, history, elapsed = 0, 0, [], 0.0

    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["config"] != config.identity():
            raise ValueError(
                f"{ckpt_path} was written by a different configuration; use another run_dir or "
                f"resume=False.\n checkpoint: {ckpt['config']}\n requested:  {config.identity()}"
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        history, elapsed = list(ckpt["history"]), float(ckpt["elapsed"])
        if verbose:
            print(f"resuming {ckpt_path} after epoch {start_epoch}")

    source = _video_source(train_set, device)
    labels_all = torch.as_tensor(np.asarray(train_set.labels), dtype=torch.long)
    steps_here = 0
    t_run = time.perf_counter() - elapsed
    for epoch in range(start_epoch, config.epochs):
        if config.max_minutes is not None and history:
            last = history[-1]["epoch_seconds"]
            if time.perf_counter() - t_run + last > 60 * config.max_minutes:
                if verbose:
                    print(f"stopping before epoch {epoch + 1}: --max-minutes {config.max_minutes}")
                break
        t0 = time.perf_counter()
        epoch_seed = config.seed * 100_003 + epoch
        gen = torch.Generator().manual_seed(epoch_seed)
        torch.manual_seed(epoch_seed)  # dropout and any other global draw
        order = torch.randperm(len(train_set), generator=gen)
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"{config.model} epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
        )
        for start in bar:
            idx = order[start : start + config.batch_size]
            if source is not None:
                x = to_model_layout(source[idx.to(source.device)]).to(device, non_blocking=True)
            else:
                x = torch.stack([train_set[int(i)][0] for i in idx]).to(device)
            y = labels_all[idx].to(device)
            x = random_shift(x, config.augment_shift, gen) if config.augment_shift else x
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total_steps, warmup, config.lr)
            with _autocast(device, use_amp):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            steps_here += 1
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            if stop_after_steps is not None and steps_here >= stop_after_steps:
                raise TrainingInterrupted(f"stopped after {steps_here} steps (epoch {epoch + 1})")
        train_seconds = time.perf_counter() - t0
        test_acc = evaluate(model, test_set, max(64, config.batch_size), device)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss_sum / seen,
                "train_acc": correct / seen,
                "test_acc": test_acc,
                "epoch_seconds": train_seconds,
                "lr": opt.param_groups[0]["lr"],
            }
        )
        if verbose:
            print(
                f"epoch {epoch + 1}/{config.epochs}: loss {loss_sum / seen:.4f} "
                f"train {correct / seen:.3f} test {test_acc:.3f} ({train_seconds:.1f} s)"
            )
        _save_atomic(
            {
                "spec": model.spec,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "history": history,
                "elapsed": time.perf_counter() - t_run,
                "config": config.identity(),
                "classes": classes,
            },
            ckpt_path,
        )
    model.eval()
    return TrainResult(model, config, history, ckpt_path, str(device), classes)


# --------------------------------------------------------------------------- export, Table 1
def export_default(
    result: TrainResult,
    stem: str,
    test_set: Dataset | None = None,
    command: str | None = None,
    folder: Path | None = None,
) -> Path:
    """Write ``<stem>.pt`` (weights + spec) and ``<stem>.json`` (how it was made, what it scores)."""
    folder = Path(folder) if folder is not None else paths.CHECKPOINTS
    if test_set is None:
        test_set = load_datasets(result.config)[1]
    model = result.model.cpu().eval()
    report = accuracy_report(model, test_set, seed=result.config.seed)
    pt = save_model_checkpoint(model, folder / f"{stem}.pt", classes=result.classes)
    record = {
        "model": result.config.model,
        "spec": model.spec,
        "parameters": count_parameters(model),
        "command": command or "python -m hba_lib.models.train " + shlex.join(sys.argv[1:]),
        "seed": result.config.seed,
        "train_config": asdict(result.config),
        "data": {
            "dataset": result.config.dataset,
            "size": result.config.size,
            "train_n_per_class": result.config.n_per_class,
            "test_n_per_class": result.config.test_n_per_class,
            "n_test": len(test_set),
            "test_cache_key": _data_key(test_set),
        },
        "test_acc": report["test_acc"],
        "shuffled_acc": report["shuffled_acc"],
        "shuffle_seed": result.config.seed,
        "epochs_trained": len(result.history),
        "history": [{k: round(v, 5) for k, v in h.items()} for h in result.history],
        "train_seconds": sum(h["epoch_seconds"] for h in result.history),
        "device": result.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    pt.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return pt


def _data_key(dataset: Dataset) -> str | None:
    """The synthetic split's cache key (changes with the generator version), else None."""
    config = getattr(dataset, "config", None)
    return config.key() if hasattr(config, "key") else None


def table1(
    models: dict[str, nn.Module],
    datasets: dict[str, Dataset],
    seed: int = 0,
    batch_size: int = 64,
) -> Any:
    """Table 1: clip accuracy (%) of each model on each data set's test split + shuffled control.

    ``models`` maps a row name ("c3d", "lrcn", ...) to a model; a model whose output size
    differs from a data set's class count is skipped for that data set.
    """
    import pandas as pd

    rows = []
    for mname, model in models.items():
        for dname, ds in datasets.items():
            k = len(getattr(ds, "classes", [])) or int(np.max(ds.labels)) + 1
            if model.spec["num_classes"] != k:
                continue
            rep = accuracy_report(model, ds, batch_size, seed)
            spec_name = model.spec["name"]
            family = "lrcn" if spec_name.startswith("lrcn") else spec_name[:3]  # c3d, res, r3d...
            family = "c3d" if family == "res" else family
            rows.append(
                {
                    "model": mname,
                    "dataset": dname,
                    "n_test": rep["n_test"],
                    "accuracy_%": round(100 * rep["test_acc"], 2),
                    "shuffled_frames_%": round(100 * rep["shuffled_acc"], 2),
                    "chance_%": round(100 * rep["chance"], 2),
                    "paper_%": PAPER_TABLE1.get((family, dname), float("nan")),
                }
            )
    return pd.DataFrame(rows)


def save_table1(df: Any, name: str = "table1", folder: Path | None = None) -> tuple[Path, Path]:
    """Print Table 1 and save it as ``<name>.md`` and ``<name>.csv`` in ``folder`` or this run's
    output folder (``figures/`` for the default run only, see ``hba_lib.paths.output_dir``)."""
    folder = paths.ensure_dir(Path(folder) if folder is not None else paths.output_dir())
    md = _markdown(df)
    print(md)
    (folder / f"{name}.md").write_text(md + "\n")
    df.to_csv(folder / f"{name}.csv", index=False)
    return folder / f"{name}.md", folder / f"{name}.csv"


def _markdown(df: Any) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> TrainResult:
    """``python -m hba_lib.models.train``: train one model, optionally export it as a default."""
    p = argparse.ArgumentParser(
        prog="python -m hba_lib.models.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="c3d_small")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--test-n-per-class", type=int, default=None)
    p.add_argument("--model-kw", type=json.loads, default={}, help="JSON, e.g. '{\"depth\": 50}'")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument(
        "--export",
        default=None,
        metavar="STEM",
        help="also write hba_lib/checkpoints/STEM.pt + STEM.json",
    )
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    result = train(
        a.model,
        a.dataset,
        run_dir=a.run_dir,
        resume=not a.no_resume,
        device=a.device,
        progress=not a.quiet,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        seed=a.seed,
        size=a.size,
        n_per_class=a.n_per_class,
        test_n_per_class=a.test_n_per_class,
        model_kwargs=a.model_kw,
        max_minutes=a.max_minutes,
    )
    print(f"{a.model}: test accuracy {result.test_accuracy:.4f} after {len(result.history)} epochs")
    if a.export:
        cmd = "python -m hba_lib.models.train " + shlex.join(
            list(argv if argv is not None else sys.argv[1:])
        )
        pt = export_default(result, a.export, command=cmd)
        info = json.loads(pt.with_suffix(".json").read_text())
        print(
            f"exported {pt}: test {info['test_acc']:.4f}, shuffled frames {info['shuffled_acc']:.4f}"
        )
    return result


if __name__ == "__main__":
    main()
