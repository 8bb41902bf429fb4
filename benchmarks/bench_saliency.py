"""Saliency speed: ms per 16-frame video, torch spectral residual vs OpenCV's, at 32 and 112 px.

Prints one line per (size, backend): ms per video for one video per call and, for torch, for a
batch of videos per call; and how many of OpenCV's selected pixels (phi 0.6) the torch mask
shares. Synthetic clips; one CPU thread unless ``--threads``.

    .venv/bin/python benchmarks/bench_saliency.py
    .venv/bin/python benchmarks/bench_saliency.py --device cuda --batch 64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import torch

from hba_lib.data import get_dataset
from hba_lib.data.video import to_model_layout
from hba_lib.heuristics.saliency import mask_overlap, saliency_maps, saliency_mask


def ms_per_call(fn: Callable[[], object], repeats: int, sync: bool) -> float:
    """Median wall-clock milliseconds of ``fn()`` over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000.0 * sorted(times)[len(times) // 2]


def main() -> None:
    """Time both backends and print ms per 16-frame video."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 112])
    p.add_argument("--batch", type=int, default=12, help="videos per batched torch call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    sync = args.device.startswith("cuda")
    print(f"device {args.device}, torch threads {args.threads}, OpenCV {cv2.__version__}")
    for size in args.sizes:
        ds = get_dataset("synthetic", "test", size=size, n_per_class=max(1, -(-args.batch // 12)))
        videos = to_model_layout(ds.videos[: args.batch]).to(args.device)
        one = videos[0]
        t_cv = ms_per_call(lambda v=one: saliency_maps(v, backend="opencv"), args.repeats, sync)
        t_one = ms_per_call(lambda v=one: saliency_maps(v), args.repeats, sync)
        t_batch = ms_per_call(lambda v=videos: saliency_maps(v), args.repeats, sync) / len(videos)
        agree = mask_overlap(
            saliency_mask(videos, 0.6, backend="opencv").cpu(), saliency_mask(videos, 0.6).cpu()
        )
        print(
            f"{size:>4} px  opencv {t_cv:7.2f} ms/video | torch {t_one:7.2f} ms/video (1 per call), "
            f"{t_batch:7.2f} ms/video ({len(videos)} per call) | mask agreement phi 0.6 {agree:.4%}"
        )


if __name__ == "__main__":
    main()
