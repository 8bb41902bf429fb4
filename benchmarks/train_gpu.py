"""Train the paper-scale C3D (3D-ResNeXt-101) and LRCN (Inception-v3 + LSTM) on synthetic data.

One command, time-capped, for a lent GPU (mixed precision on CUDA); prints test accuracy,
the shuffled-frame control and seconds per epoch for each model::

    python benchmarks/train_gpu.py --size 112 --epochs 8 --max-minutes 4

Falls back to smaller batches (then 3D-ResNeXt-50) when the GPU runs out of memory.
``--tiny`` runs a miniature configuration on the CPU (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hba_lib import paths
from hba_lib.models.train import accuracy_report, load_datasets, train

# model -> list of (build name, model kwargs, batch size, lr) to try in order, largest first.
FULL = {
    "c3d": [("c3d", {}, 32, 1e-3), ("c3d", {}, 16, 1e-3), ("resnext3d", {"depth": 50}, 16, 1e-3)],
    "lrcn": [
        ("lrcn", {}, 16, 1e-3),
        ("lrcn", {}, 8, 1e-3),
        ("lrcn", {"backbone": "resnet18"}, 16, 1e-3),
    ],
}
TINY = {
    "c3d": [("resnext3d", {"layers": [1, 1, 1, 1], "width": 16, "cardinality": 8}, 8, 3e-3)],
    "lrcn": [("lrcn", {"backbone": "small", "hidden": 16}, 8, 3e-3)],
}


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def run_one(
    name: str,
    options: list[tuple[str, dict, int, float]],
    common: dict[str, Any],
    run_root: Path,
    progress: bool,
) -> dict[str, Any]:
    """Train the first of ``options`` that fits in memory; return its summary row."""
    last_err: BaseException | None = None
    for build, kw, bs, lr in options:
        tag = f"{build}_{'_'.join(f'{k}{v}' for k, v in kw.items()) or 'default'}_bs{bs}"
        run_dir = run_root / f"{tag}_{common['size']}px"
        try:
            t0 = time.perf_counter()
            res = train(
                build,
                "synthetic",
                run_dir=run_dir,
                resume=False,
                batch_size=bs,
                lr=lr,
                model_kwargs=kw,
                progress=progress,
                **common,
            )
            wall = time.perf_counter() - t0
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not _is_oom(err):
                raise
            print(f"{tag}: out of memory, trying a smaller configuration")
            last_err = err
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        rep = accuracy_report(res.model, load_datasets(res.config)[1], seed=res.config.seed)
        secs = [h["epoch_seconds"] for h in res.history]
        peak = torch.cuda.max_memory_allocated() / 2**30 if res.device.startswith("cuda") else 0.0
        return {
            "model": name,
            "built": build,
            "kwargs": kw,
            "batch_size": bs,
            "device": res.device,
            "epochs": len(res.history),
            "test_acc": rep["test_acc"],
            "shuffled_acc": rep["shuffled_acc"],
            "seconds_per_epoch": sum(secs) / len(secs),
            "first_epoch_seconds": secs[0],
            "wall_seconds": wall,
            "peak_gib": peak,
            "history_test_acc": [round(h["test_acc"], 4) for h in res.history],
        }
    raise RuntimeError(f"{name}: no configuration fitted in memory") from last_err


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["c3d", "lrcn"], choices=["c3d", "lrcn"])
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-minutes", type=float, default=4.0, help="per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--test-n-per-class", type=int, default=None)
    p.add_argument("--run-root", default=str(paths.RUNS / "train_gpu"))
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--tiny", action="store_true", help="miniature CPU configuration (tests)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.tiny:
        a.size, a.n_per_class, a.test_n_per_class = 16, a.n_per_class or 1, a.test_n_per_class or 1
    torch.set_num_threads(
        min(torch.get_num_threads(), 2)
        if not torch.cuda.is_available()
        else torch.get_num_threads()
    )
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"device: {dev}; torch {torch.__version__}; synthetic {a.size}x{a.size}, seed {a.seed}")
    common = {
        "epochs": a.epochs,
        "seed": a.seed,
        "size": a.size,
        "n_per_class": a.n_per_class,
        "test_n_per_class": a.test_n_per_class,
        "max_minutes": a.max_minutes,
        "warmup_epochs": 0.5 if not a.tiny else 0.0,
    }
    table = TINY if a.tiny else FULL
    rows = []
    for name in a.models:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        row = run_one(name, table[name], common, Path(a.run_root), progress=not a.quiet)
        rows.append(row)
        print(
            f"{name} ({row['built']} {row['kwargs']}, batch {row['batch_size']}): "
            f"test acc {row['test_acc']:.4f}, shuffled frames {row['shuffled_acc']:.4f}, "
            f"{row['seconds_per_epoch']:.1f} s/epoch (first {row['first_epoch_seconds']:.1f} s), "
            f"{row['epochs']} epochs, peak {row['peak_gib']:.1f} GiB"
        )
    print("\n| model | built | batch | epochs | test acc | shuffled acc | s/epoch | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['built']} {r['kwargs'] or ''} | {r['batch_size']} | {r['epochs']} "
            f"| {r['test_acc']:.4f} | {r['shuffled_acc']:.4f} | {r['seconds_per_epoch']:.1f} "
            f"| {r['peak_gib']:.1f} |"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
