"""Shared command line of data_scripts/ucf101.py and data_scripts/hmdb51.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a clone without `pip install -e .`
    sys.path.insert(0, str(REPO))

TITLES = {"ucf101": "UCF-101", "hmdb51": "HMDB-51"}


def main(name: str, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run download / extract / build-cache / all for data set ``name``."""
    from hba_lib.data import real_datasets as rd

    title = TITLES[name]
    p = argparse.ArgumentParser(
        prog=f"python data_scripts/{name}.py",
        description=f"{title}: official archives -> extracted videos -> 16-frame snippet cache.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"data root (default: ${rd.LAYOUTS[name].env} or {rd.default_root(name)})",
    )
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument("--fold", type=int, default=1, choices=(1, 2, 3), help="official split")
    cache.add_argument(
        "--split", default="both", choices=("train", "test", "both"), help="which videos"
    )
    cache.add_argument("--size", type=int, default=112, help="crop size in pixels (112)")
    cache.add_argument("--frames", type=int, default=16, help="frames per snippet (16)")
    cache.add_argument("--workers", type=int, default=None, help="decoding processes (all cores)")
    cache.add_argument(
        "--min-frames",
        type=int,
        default=None,
        help="exclude clips with fewer intact frames (default: --frames; 0 loops short clips)",
    )
    sub.add_parser("download", parents=[common], help="download the official archives (resumes)")
    ext = sub.add_parser("extract", parents=[common], help="extract the archives safely")
    ext.add_argument("--keep-inner", action="store_true", help="keep HMDB-51's per-class rars")
    sub.add_parser("build-cache", parents=[common, cache], help="decode + cache the snippets")
    sub.add_parser("all", parents=[common, cache], help="download, extract and build-cache")
    args = p.parse_args(argv)
    root = args.root if args.root is not None else rd.default_root(name)
    progress = not args.quiet

    if args.cmd in ("download", "all"):
        for path in rd.download_data(name, root, progress=progress):
            print(f"ok {path}")
    if args.cmd in ("extract", "all"):
        rd.extract_data(
            name, root, progress=progress, keep_inner=getattr(args, "keep_inner", False)
        )
        print(f"extracted into {root}")
    if args.cmd in ("build-cache", "all"):
        splits = ("train", "test") if args.split == "both" else (args.split,)
        n_excluded = 0
        for split in splits:
            try:
                report = rd.build_cache(
                    name, root, split, args.fold, args.size, args.frames, args.workers,
                    progress, min_frames=args.min_frames,
                )  # fmt: skip
            except KeyboardInterrupt as e:  # Ctrl-C: say what was kept, no traceback
                msg = str(e) or "interrupted; run the same command again to resume"
                print(f"\n{msg}", file=sys.stderr)
                return 130
            n_excluded += len(report.excluded)
            if not progress:
                print(report.summary())
        if n_excluded:
            print(f"WARNING: {n_excluded} videos excluded; see report.txt in each cache folder")
    return 0
