"""Forward throughput (clips/s) of every target model, at batch 1 and at its best batch size.

    python benchmarks/bench_models.py                       # CPU, all models
    python benchmarks/bench_models.py --device cuda         # GPU (fp32, and AMP with --amp)
    python benchmarks/bench_models.py --models c3d_small lrcn_small --size 32

The small models run at 16x32x32 and the paper-scale ones at 16x112x112 unless ``--size``
says otherwise; on the CPU the big models try only small batches for a few iterations.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from hba_lib.models import MODEL_NAMES, build_model, count_parameters

SMALL = ("c3d_small", "lrcn_small")
BATCHES_SMALL = (1, 8, 32, 64, 128, 256)
BATCHES_BIG_CPU = (1, 4)
BATCHES_BIG_GPU = (1, 8, 32, 64, 128)


def throughput(model: torch.nn.Module, x: torch.Tensor, seconds: float, amp: bool) -> float:
    """Clips per second of ``model(x)``: one warm-up call, then calls until ``seconds`` pass."""
    cuda = x.device.type == "cuda"
    with torch.inference_mode(), torch.autocast(x.device.type, enabled=amp and cuda):
        model(x)
        if cuda:
            torch.cuda.synchronize()
        n, t0 = 0, time.perf_counter()
        while True:
            model(x)
            n += 1
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return n * x.shape[0] / elapsed


def main(argv: Sequence[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    p.add_argument("--size", type=int, default=None, help="frame size (default: 32 small, 112 big)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true", help="fp16 autocast on CUDA")
    p.add_argument("--batches", type=int, nargs="+", default=None)
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    name = torch.cuda.get_device_name(0) if a.device == "cuda" else f"CPU, {a.threads} threads"
    print(f"device: {name}; torch {torch.__version__}; amp {a.amp and a.device == 'cuda'}")
    print("| model | params | input | batch-1 clips/s | best clips/s | best batch |")
    print("|---|---|---|---|---|---|")
    rows = []
    for m in a.models:
        small = m in SMALL
        size = a.size or (32 if small else 112)
        if m == "lrcn" and size < 75:
            print(f"| {m} | - | {size}px | skipped: Inception-v3 needs >= 75 px frames | | |")
            continue
        torch.manual_seed(0)
        model = build_model(m, 12).to(dev).eval()
        batches = a.batches or (
            BATCHES_SMALL if small else BATCHES_BIG_GPU if a.device == "cuda" else BATCHES_BIG_CPU
        )
        rates = {}
        for bs in batches:
            x = torch.rand(bs, 3, a.frames, size, size, device=dev)
            try:
                rates[bs] = throughput(
                    model, x, a.seconds if small or a.device == "cuda" else 0.0, a.amp
                )
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
        best = max(rates, key=rates.get)
        row = {
            "model": m,
            "params": count_parameters(model),
            "size": size,
            "batch1": rates.get(1, float("nan")),
            "best": rates[best],
            "best_batch": best,
        }
        rows.append(row)
        print(
            f"| {m} | {row['params'] / 1e6:.2f} M | {a.frames}x{size}x{size} | "
            f"{row['batch1']:.1f} | {row['best']:.1f} | {best} |",
            flush=True,
        )
        del model
    return rows


if __name__ == "__main__":
    main()
