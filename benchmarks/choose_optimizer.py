"""Choose the optimizer (``hsja`` or ``cgba``), mask and probe subspace on *training* videos, by a rule fixed
before any test video is attacked (issue 22: "tune on videos of the training split, never on
the test videos the tables report").

Reads the per-video records of the tuning runs (``heuristic_attack.py --split train``, one
JSON-lines file or a folder of them, both default models), and for every row ``<mask> /
hsja[@subspace]`` or ``<mask> / cgba[@subspace]`` computes, per model, the medians at the last budget of MAP and L2 relative to
the model's ``opt / hsja`` row (HopSkipJump's steps on the whole video from Opt-attack's start:
on the training videos, the stand-in for ART HopSkipJump, the peer the goal names):

    score = max(MAP / (0.5 * MAP_ref), L2 / (0.8 * L2_ref))     (<= 1: the goal's two bars met)

A row counts only with FR 100 % on every model. The chosen row has the smallest score on its
worse model (the goal must hold on both), ties broken by the mean L2 ratio. The subspace for the
rows "with the subspace" is the chosen row's, or, if that is the full space, the subspace of the
best row that has one. Prints the table and, last, one JSON line: the choice.

    .venv/bin/python benchmarks/choose_optimizer.py runs/gpu_opt/tune
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from hba_lib.metrics import final_pair

REFERENCE = "opt / hsja"


def load(paths: list[Path]) -> dict[str, dict[str, list[dict]]]:
    """``{model: {row: [records]}}`` from JSON-lines files named ``<model>_...jsonl``."""
    rows: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    files = [f for p in paths for f in (sorted(p.glob("*.jsonl")) if p.is_dir() else [p])]
    for f in files:
        model = f.name.split("_")[0]
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            rows[model][rec["attack"]].append(rec)
    return rows


def medians(recs: list[dict]) -> tuple[float, float, float]:
    """Median MAP and L2 of the returned videos (not fooled: inf), and FR %: the verdict's
    reading (``hba_lib.metrics.final_pair``; every tuning row runs within its budget)."""
    pairs = np.array([final_pair(r, math.inf) for r in recs], dtype=float)
    fr = 100 * np.mean([bool(r["success"]) and math.isfinite(p[0]) for r, p in zip(recs, pairs)])
    return float(np.median(pairs[:, 0])), float(np.median(pairs[:, 1])), float(fr)


def subspace_of(row: str) -> str:
    opt = row.split(" / ")[-1].partition("+")[0]  # 'hsja@dct:4+edge:3': the subspace 'dct:4'
    return opt.partition("@")[2] or "full"


def optimizer_of(row: str) -> str:
    return row.split(" / ")[-1].partition("+")[0].partition("@")[0]


def choose(rows: dict[str, dict[str, list[dict]]]) -> dict:
    models = sorted(rows)
    names = sorted(set.intersection(*(set(rows[m]) for m in models)))
    names = [n for n in names if n.split(" / ")[-1].startswith(("hsja", "cgba"))]
    table = []
    for name in names:
        per = {}
        for m in models:
            rm, rl, _ = medians(rows[m][REFERENCE])
            mp, l2, fr = medians(rows[m][name])
            per[m] = {"map": mp, "l2": l2, "fr": fr, "map_ratio": mp / rm, "l2_ratio": l2 / rl,
                      "score": max(mp / (0.5 * rm), l2 / (0.8 * rl))}  # fmt: skip
        ok = all(p["fr"] == 100 for p in per.values())
        worst = max(p["score"] for p in per.values()) if ok else math.inf
        mean_l2 = float(np.mean([p["l2_ratio"] for p in per.values()]))
        table.append((worst, mean_l2, name, per))
    table.sort(key=lambda t: (t[0], t[1]))
    print(f"rows scored against '{REFERENCE}' of each model ({', '.join(models)}), videos: "
          + ", ".join(f"{m} {len(rows[m][REFERENCE])}" for m in models))  # fmt: skip
    print("| row | " + " | ".join(f"{m} MAP x | {m} L2 x | {m} FR %" for m in models)
          + " | score (worse model) |")  # fmt: skip
    print("|---|" + "---:|" * (3 * len(models) + 1))
    for worst, _, name, per in table:
        cells = " | ".join(f"{per[m]['map_ratio']:.2f} | {per[m]['l2_ratio']:.2f} | "
                           f"{per[m]['fr']:.0f}" for m in models)  # fmt: skip
        print(f"| {name} | {cells} | {worst:.3f} |")
    best = table[0][2]
    sub = subspace_of(best)
    if sub == "full":
        sub = next((subspace_of(n) for _, _, n, _ in table if subspace_of(n) != "full"), "full")
    mask = best.split(" / ")[0]
    config, _, acceptance = mask.partition(" [")
    variant = f"{config}:whole_video" if acceptance.startswith("whole-video") else f"{config}:paper"
    return {
        "row": best,
        "mask": mask,
        "variant": variant,
        "optimizer": optimizer_of(best),
        "spec": best.split(" / ")[-1],
        "subspace": sub,
        "score": table[0][0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path, help="records (files or folders)")
    args = ap.parse_args(argv)
    rows = load(args.paths)
    if not rows or any(REFERENCE not in r for r in rows.values()):
        print(f"need the '{REFERENCE}' row of every model", file=sys.stderr)
        return 1
    print(json.dumps(choose(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
