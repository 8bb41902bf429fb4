"""The paper's metrics: FR, MQ, MAP, MAP*, sparsity S, plus query traces and a results table.

Conventions (``docs/algorithm.md``, "Metrics"; ``docs/glossary.md``):

- FR: the share of attacked videos whose final ``x_adv`` the oracle's final check found
  adversarial. Videos the model already misclassifies are not attacked and not counted.
- MQ: the median of the total queries spent per attacked video, **failures included** at the
  number of queries they spent (usually the whole budget), so a failure never lowers MQ.
  ``median_queries(..., successes_only=True)`` gives the median over successes alone.
- MAP: mean ``|x_adv - x|`` over all values of the video, on the 0-255 scale.
- MAP*: the same mean over the masked (perturbed) region only (MAP* = MAP without a mask).
- S: ``1 - (1/T) * sum_t phi_t``, ``phi_t`` the fraction of frame t's pixels inside the mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hba_lib.oracle.distances import (  # noqa: F401 - the per-video metrics, re-exported
    frame_fractions,
    l2_distance,
    linf_distance,
    map_star,
    mean_absolute_perturbation,
    sparsity,
)

# -- one perturbation: defined in ``hba_lib.oracle.distances``, re-exported here ----------------------


# -- aggregates over attack results ---------------------------------------------------------------
def _attacked(results: Iterable[Any]) -> list[Any]:
    return [r for r in results if getattr(r, "attacked", True)]


def fooling_rate(results: Iterable[Any]) -> float:
    """FR: share of attacked videos whose final check was adversarial (NaN if none attacked)."""
    rs = _attacked(results)
    return float(np.mean([bool(r.success) for r in rs])) if rs else float("nan")


def median_queries(results: Iterable[Any], successes_only: bool = False) -> float:
    """MQ: median total queries over attacked videos, failures counted at what they spent."""
    rs = [r for r in _attacked(results) if r.success or not successes_only]
    return float(np.median([r.queries for r in rs])) if rs else float("nan")


def mean_map(results: Iterable[Any], star: bool = False) -> float:
    """Mean MAP (or MAP*) over the successful attacks (0-255); NaN if none succeeded."""
    rs = [r for r in _attacked(results) if r.success]
    vals = [r.map_star if star else r.map for r in rs]
    return float(np.mean(vals)) if vals else float("nan")


def elapsed_time(results: Iterable[Any]) -> float:
    """Wall time the attacks took together: the length of the union of their running intervals.

    Attacks run one after another add up; attacks run together (``run_many``'s lockstep) count
    once. Results without a start time (``started is None``) add their ``wall_time``.
    """
    spans, total = [], 0.0
    for r in results:
        if getattr(r, "started", None) is None:
            total += float(r.wall_time)
        else:
            spans.append((float(r.started), float(r.started) + float(r.wall_time)))
    end = -np.inf
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def results_table(
    results_by_attack: Mapping[str, Sequence[Any]],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
):
    """A pandas table, one row per attack: videos, FR %, MQ, MQ (init / opt), MAP, MAP*, S %, the
    mean L2 (``L2``, [0, 1] units) and L-inf (``Linf``, 0-255) of the returned perturbations
    beside MAP (MAP rewards sparsity by construction; the peers minimise L2), and ``time s``,
    the wall time of the attack's videos together (:func:`elapsed_time`)."""
    import pandas as pd

    rows = []
    for name, results in results_by_attack.items():
        rs = _attacked(results)
        init = [r.queries_by_phase.get("init", 0) for r in rs]
        opt = [r.queries_by_phase.get("optimisation", 0) for r in rs]
        rows.append(
            {
                "attack": name,
                "videos": len(rs),
                "FR %": 100.0 * fooling_rate(rs),
                "MQ": median_queries(rs),
                "MQ init": float(np.median(init)) if rs else float("nan"),
                "MQ opt": float(np.median(opt)) if rs else float("nan"),
                "MAP": mean_map(rs),
                "MAP*": mean_map(rs, star=True),
                "S %": 100.0 * float(np.mean([r.sparsity for r in rs])) if rs else float("nan"),
                "L2": _mean(getattr(r, "distance", float("nan")) for r in rs),
                "Linf": _mean(getattr(r, "linf", float("nan")) for r in rs),
                "time s": elapsed_time(rs),
                **(dict(extra[name]) if extra and name in extra else {}),
            }
        )
    return pd.DataFrame(rows).set_index("attack")


def _mean(values: Iterable[float]) -> float:
    v = [float(x) for x in values]
    return float(np.mean(v)) if v else float("nan")


# -- query traces ----------------------------------------------------------------------------------
def best_at(trace: Sequence[Any], budgets: Sequence[int], field: str = "distance") -> np.ndarray:
    """For each budget b: the best ``field`` (``distance``, ``map`` or ``l2``) reached within b
    queries.

    ``trace`` rows have ``.queries`` and the field; before the first row the value is ``inf``.
    """
    q = np.array([row.queries for row in trace], dtype=np.int64)
    v = np.minimum.accumulate(np.array([getattr(row, field) for row in trace], dtype=np.float64))
    out = np.full(len(budgets), np.inf)
    for j, b in enumerate(budgets):
        k = np.searchsorted(q, b, side="right")
        if k > 0:
            out[j] = v[k - 1]
    return out


def best_within(result: Any, budgets: Sequence[int], field: str = "map") -> np.ndarray:
    """For each budget b: the best ``map`` or ``l2`` one attack reached within b queries, from
    its trace **and its returned video**.

    The trace records the moves; the returned video can be closer than the last of them (a stop
    that cut a search short keeps the closest adversarial video the oracle answered, which no
    move recorded), so it counts from ``result.queries`` on, when the attack succeeded.
    ``inf`` before the first adversarial point.
    """
    if field not in ("map", "l2"):
        raise ValueError(f"field {field!r}: 'map' or 'l2' (the returned video has no g)")
    trace = getattr(result, "trace", None) or []
    out = best_at(trace, budgets, field=field) if trace else np.full(len(budgets), np.inf)
    if result.success:
        final = float(result.map if field == "map" else result.distance)
        reached = np.asarray(budgets) >= result.queries
        out[reached] = np.minimum(out[reached], final)
    return out


def final_pair(result: Any, budget: float) -> tuple[float, float]:
    """One attack's ``(MAP, L2)`` at its last budget, as a verdict reads it, from an attack
    result or from a benchmark record (``benchmarks/heuristic_attack.py``'s JSON lines:
    ``attacked``, ``success``, ``queries``, ``map``, ``distance`` and the trace's ``map_at`` /
    ``l2_at`` at the checkpoints, the last one ``budget``):

    - ``inf`` where the final check failed (not fooled);
    - the **returned video's** where the attack ended within ``budget``: one video for both
      metrics (with a narrowed support the returned video can be farther in L2 than one the
      trace saw before narrowing, so the best of each metric, ``map_at`` and ``l2_at``, may come
      from two different videos, neither of which the attack returned);
    - else (a run to its stopping rule past ``budget``) the best within the budget
      (:func:`best_within`).
    """
    if isinstance(result, Mapping):
        attacked, success = result["attacked"], result["success"]
        queries, map_, distance = result["queries"], result["map"], result["distance"]
    else:
        attacked, success = getattr(result, "attacked", True), result.success
        queries, map_, distance = result.queries, result.map, result.distance
    if attacked and not success:
        return math.inf, math.inf
    if success and int(queries) <= budget:
        return float(map_), float(distance)
    if isinstance(result, Mapping):
        return float(result["map_at"][-1]), float(result["l2_at"][-1])
    best = [float(best_within(result, [budget], f)[0]) for f in ("map", "l2")]
    return best[0], best[1]


def success_curve(
    results: Iterable[Any], budgets: Sequence[int], max_map: float | None = None
) -> np.ndarray:
    """Share of attacked videos with an adversarial video (MAP <= ``max_map``) within each budget.

    Only results whose final check succeeded count (the trace of a failed attack never counts).
    """
    rs = _attacked(results)
    if not rs:
        return np.full(len(budgets), np.nan)
    hits = np.zeros(len(budgets))
    for r in rs:
        if not r.success:
            continue
        best = best_within(r, budgets, field="map")
        hits += np.isfinite(best) & (best <= (np.inf if max_map is None else max_map))
    return hits / len(rs)


# -- MAP against L2 --------------------------------------------------------------------------------
def support_share(x: Any, x_adv: Any) -> float:
    """rho: the share of the video's values that ``x_adv`` changes (0: none, 1: all)."""
    import torch

    diff = torch.as_tensor(x_adv).float() - torch.as_tensor(x).float()
    return float((diff != 0).float().mean())


def l2_from_map(map_value: float, numel: int, rho: float) -> float:
    """``sqrt(N) * MAP / (255 * sqrt(rho))``: the L2 ([0, 1] units) of a perturbation of MAP
    ``map_value`` (0-255) over ``N = numel`` values, spread evenly over a share ``rho`` of them;
    by Cauchy-Schwarz the smallest L2 any perturbation of that MAP and support can have."""
    if not 0.0 < rho <= 1.0:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    return float(np.sqrt(numel) * map_value / (255.0 * np.sqrt(rho)))
