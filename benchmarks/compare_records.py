"""Did a rerun reproduce a benchmark's records? Row by row, video by video (nothing attacked).

``heuristic_attack.py`` writes one JSON line per video and row. A rerun of the same command
(another day, another machine, the same code) writes another file. For every row of the rerun
that the first file also has, on the videos both have: how many videos are **identical** (the
same queries, MAP and L2 to the last bit), the median L2 of each, and the per-video ratio of
the rerun's L2 to the first's (median, min, max). A hard-label attack branches on answers at the
boundary, so a last-bit difference anywhere (a model's sums, a prior's map) can send a video
down another path; the ratios say how far that moves a video and a median::

    .venv/bin/python benchmarks/compare_records.py benchmarks/results/heuristic_c3d_20v_10000q_seed0.jsonl \\
        benchmarks/results/heuristic_c3d_20v_10000q_seed0_rerun.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FIELDS = ("queries", "map", "distance")


def read(path: Path) -> dict[str, dict[int, dict]]:
    """``{row: {video: record}}`` of a records file (a clear ``ValueError`` if it is missing)."""
    if not Path(path).is_file():
        raise ValueError(f"no records at {path}")
    out: dict[str, dict[int, dict]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out.setdefault(r["attack"], {})[int(r["video"])] = r
    return out


def compare(first: dict[str, dict[int, dict]], rerun: dict[str, dict[int, dict]]) -> list[dict]:
    """One dict a row both have: ``row``, ``videos``, ``identical``, ``median_first``,
    ``median_rerun`` (L2) and the per-video L2 ratios' ``ratio_median``, ``ratio_min``,
    ``ratio_max`` (rerun over first)."""
    rows = []
    for name, new in rerun.items():
        old = first.get(name, {})
        videos = sorted(set(new) & set(old))
        if not videos:
            continue
        a = np.array([old[v]["distance"] for v in videos], dtype=float)
        b = np.array([new[v]["distance"] for v in videos], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = b / a
        same = sum(all(old[v][f] == new[v][f] for f in FIELDS) for v in videos)
        rows.append({
            "row": name, "videos": len(videos), "identical": same,
            "median_first": float(np.median(a)), "median_rerun": float(np.median(b)),
            "ratio_median": float(np.median(ratio)), "ratio_min": float(np.min(ratio)),
            "ratio_max": float(np.max(ratio)),
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("first", type=Path, help="the records a printout was made from")
    p.add_argument("reruns", type=Path, nargs="+", help="records of the same command, run again")
    args = p.parse_args(argv)
    try:
        first = read(args.first)
        rerun: dict[str, dict[int, dict]] = {}
        for path in args.reruns:
            for name, recs in read(path).items():
                rerun.setdefault(name, {}).update(recs)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = compare(first, rerun)
    if not rows:
        print(f"no row of {[str(p) for p in args.reruns]} is in {args.first}", file=sys.stderr)
        return 2
    print(f"{args.first.name} against {', '.join(p.name for p in args.reruns)}: L2 at the "
          f"returned video; identical: the same queries, MAP and L2\n")  # fmt: skip
    print("| row | videos | identical | median L2 first | median L2 rerun | per-video L2 ratio, "
          "median (min-max) |\n|---|---:|---:|---:|---:|---|")  # fmt: skip
    for r in rows:
        print(f"| {r['row']} | {r['videos']} | {r['identical']} | {r['median_first']:.3f} | "
              f"{r['median_rerun']:.3f} | {r['ratio_median']:.3f} ({r['ratio_min']:.2f}-"
              f"{r['ratio_max']:.2f}) |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
