"""How sure is a verdict on 20 (or 6) videos? Paired bootstrap intervals of issue 22's ratios.

``heuristic_attack.py`` judges a row by the ratio of its median MAP and median L2 to the better
peer's, over one set of videos. A median of 20 values is set by the 10th and 11th; where the
videos fall into an easy and a hard group (LRCN: ART HopSkipJump's 11 easiest end below 0.7,
its 9 hardest above 1.9) the median sits in the gap, and a verdict can turn on one video. This
script reads the per-video records (nothing is attacked again) and resamples the *videos* with
replacement, the same videos for the row and the peers (paired), 10,000 times (seed 0):

- the ratio of medians for MAP and for L2 at the last budget, with its 5th and 95th percentiles;
- the share of resamples in which the goal holds (MAP ratio <= 0.5 and L2 ratio <= 0.8, every
  resampled video fooled).

With ``--pair A,B`` it also asks whether choosing between two rows *per video* would pay
(:func:`pair_choice`): how often the rows' order in L2 at the first checkpoint is their order at
the last, and the median L2 (over the better peer's) of each row, of the per-video better of
the two (a choice that knows the outcome, free), and of the row that was ahead at the first
checkpoint, read at its own last budget (a bound on a race of the two: a real one would also
pay for the loser's queries and end with fewer).

The better peer in each metric is the one ``heuristic_attack.py`` picked on all the videos (the
lower median at the last budget), kept fixed; a video a row did not fool (or whose final check
failed) counts as ``inf``, as there. Usage::

    .venv/bin/python benchmarks/median_intervals.py benchmarks/results/heuristic_lrcn_20v_10000q_seed0.jsonl \\
        --rows 'temporal+spatial / hsja+edge:3+top:0.3:0.7,opt / hsja+edge:3+top:0.3:0.7'
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from hba_lib.metrics import final_pair

PEERS = ("ART HopSkipJump (same start)", "ART Sign-OPT (ART's random start)")
GOAL_MAP, GOAL_L2 = 0.5, 0.8


def budget_of(path: Path, records: list[dict] | None = None) -> int:
    """The per-video query budget of a records file: the last of the checkpoints its records
    name (``budgets``, written since 2026-12-06), else the one in its name (``..._10000q_...``).
    """
    named = {tuple(r["budgets"]) for r in records or [] if "budgets" in r}
    if len(named) > 1:
        raise ValueError(f"{Path(path).name}: records with different checkpoints {sorted(named)}")
    if named:
        return int(named.pop()[-1])
    found = re.search(r"_(\d+)q_", Path(path).name)
    if found is None:
        raise ValueError(f"{Path(path).name}: no '_<N>q_' budget in the name; give --budget")
    return int(found.group(1))


def read_records(path: Path, budget: int | None = None) -> tuple[list[dict], int]:
    """A records file's records and the budget to read them at (``budget``, else
    :func:`budget_of`); a clear ``ValueError`` for a missing file, no budget to be found, or a
    ``budget`` the records contradict."""
    if not Path(path).is_file():
        raise ValueError(f"no records at {path}")
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if budget is None:
        return records, budget_of(path, records)
    named = {tuple(r["budgets"])[-1] for r in records if "budgets" in r}
    if named - {budget}:
        raise ValueError(f"--budget {budget}, but the records name {sorted(named)}")
    return records, budget


def last_values(records: list[dict], budget: int) -> dict[str, dict[int, tuple[float, float]]]:
    """``{row: {video: (MAP, L2)}}`` at the last budget (:func:`hba_lib.metrics.final_pair`, as
    the benchmark's verdict reads them)."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for r in records:
        out.setdefault(r["attack"], {})[int(r["video"])] = final_pair(r, budget)
    return out


def pair_choice(records: list[dict], a: str, b: str, budget: int) -> dict:
    """The per-video choice between rows ``a`` and ``b`` (module docstring): ``agree`` (videos
    whose L2 order at the first checkpoint, ``l2_at[0]``, is the order at the last), ``n``, and
    the median last-budget L2 of ``a``, ``b``, ``best`` (per video the lower) and ``early`` (per
    video the row lower at the first checkpoint; ties go to ``a``)."""
    last = last_values(records, budget)
    first = {r["attack"]: {} for r in records}
    for r in records:
        first[r["attack"]][int(r["video"])] = float(r["l2_at"][0])
    for name in (a, b):
        if name not in last:
            raise ValueError(f"no row {name!r} in the records; they have {sorted(last)}")
    videos = sorted(set(last[a]) & set(last[b]))
    if not videos:
        raise ValueError(f"{a!r} and {b!r} share no video")
    la = np.array([last[a][v][1] for v in videos])
    lb = np.array([last[b][v][1] for v in videos])
    ahead = np.array([first[a][v] <= first[b][v] for v in videos])
    return {
        "n": len(videos), "agree": int(((la <= lb) == ahead).sum()),
        "a": float(np.median(la)), "b": float(np.median(lb)),
        "best": float(np.median(np.minimum(la, lb))),
        "early": float(np.median(np.where(ahead, la, lb))),
    }  # fmt: skip


def intervals(row: np.ndarray, peer_map: np.ndarray, peer_l2: np.ndarray, draws: int = 10_000,
              seed: int = 0) -> dict:  # fmt: skip
    """Paired bootstrap of the median ratios; ``row`` is ``[n, 2]`` (MAP, L2), the peers'
    ``[n]``, all over the same videos in the same order."""
    n = len(row)
    idx = np.random.default_rng(seed).integers(0, n, size=(draws, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        r_map = np.median(row[idx, 0], axis=1) / np.median(peer_map[idx], axis=1)
        r_l2 = np.median(row[idx, 1], axis=1) / np.median(peer_l2[idx], axis=1)
    fooled = np.isfinite(row[idx, 1]).all(axis=1)
    holds = (r_map <= GOAL_MAP) & (r_l2 <= GOAL_L2) & fooled
    return {
        "map": float(np.median(row[:, 0]) / np.median(peer_map)),
        "l2": float(np.median(row[:, 1]) / np.median(peer_l2)),
        "map_ci": tuple(float(v) for v in np.nanpercentile(r_map, [5, 95])),
        "l2_ci": tuple(float(v) for v in np.nanpercentile(r_l2, [5, 95])),
        "holds": float(holds.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("records", type=Path, help="a heuristic_attack.py per-video .jsonl file")
    p.add_argument("--rows", default="", help="comma-separated rows (default: every hba row)")
    p.add_argument("--draws", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=None,
                   help="the last budget (default: the records' own, 'budgets', else the file "
                        "name's, '..._<N>q_...'; records that name another: an error)")  # fmt: skip
    p.add_argument("--pair", default="", help="two rows 'A,B': would a per-video choice pay?")
    p.add_argument("--also", action="append", default=[], metavar="FILE=LABEL",
                   help="the one row of another records file (the same videos), as LABEL; "
                        "repeatable (a screen's row beside the peers' records)")  # fmt: skip
    args = p.parse_args(argv)

    try:
        records, budget = read_records(args.records, args.budget)
        for item in args.also:
            path, _, label = item.partition("=")
            more, _ = read_records(Path(path), budget)
            if not label or len({r["attack"] for r in more}) != 1:
                raise ValueError(f"--also {item!r}: need FILE=LABEL, FILE with one row")
            records += [{**r, "attack": label} for r in more]
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    values = last_values(records, budget)
    peers = [k for k in PEERS if k in values]
    if not peers:
        print(f"{args.records} has no ART peer rows to compare with", file=sys.stderr)
        return 2
    videos = sorted(values[peers[0]])
    rows = [r for r in args.rows.split(",") if r] or [k for k in values if not k.startswith("ART")]
    missing = [r for r in rows if r not in values]
    if missing:
        print(
            f"rows not in {args.records.name}: {missing}; it has {sorted(values)}", file=sys.stderr
        )
        return 2

    def column(name: str, k: int) -> np.ndarray:
        if sorted(values[name]) != videos:
            raise SystemExit(f"{name!r} ran on other videos than {peers[0]!r}")
        return np.array([values[name][v][k] for v in videos])

    better_map = min(peers, key=lambda k: np.median(column(k, 0)))
    better_l2 = min(peers, key=lambda k: np.median(column(k, 1)))
    print(f"{args.records.name}: {len(videos)} videos; the better peer in MAP: {better_map} "
          f"(median {np.median(column(better_map, 0)):.3f}), in L2: {better_l2} (median "
          f"{np.median(column(better_l2, 1)):.3f}); paired bootstrap over the videos, "
          f"{args.draws:,} draws, seed {args.seed}\n")  # fmt: skip
    print("| row | MAP ratio | 90 % interval | L2 ratio | 90 % interval | goal holds in |")
    print("|---|---:|---|---:|---|---:|")
    for name in rows:
        row = np.stack([column(name, 0), column(name, 1)], axis=1)
        s = intervals(row, column(better_map, 0), column(better_l2, 1), args.draws, args.seed)
        print(f"| {name} | {s['map']:.2f} | {s['map_ci'][0]:.2f}-{s['map_ci'][1]:.2f} | "
              f"{s['l2']:.2f} | {s['l2_ci'][0]:.2f}-{s['l2_ci'][1]:.2f} | "
              f"{100 * s['holds']:.0f} % |")  # fmt: skip
    if args.pair:
        names = args.pair.split(",")
        if len(names) != 2:
            print(f"--pair takes two rows 'A,B', got {args.pair!r}", file=sys.stderr)
            return 2
        try:
            c = pair_choice(records, *names, budget)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        ref = np.median(column(better_l2, 1))
        print(f"\nPer video, {names[0]} (A) or {names[1]} (B), L2 over {better_l2}'s median: "
              f"A {c['a'] / ref:.2f}, B {c['b'] / ref:.2f}; the better of the two on each video "
              f"(known afterwards) {c['best'] / ref:.2f}; the one ahead at the first checkpoint "
              f"{c['early'] / ref:.2f} (a bound on a race); the order at the first checkpoint "
              f"is the order at {budget:,} on {c['agree']} of {c['n']} videos")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
