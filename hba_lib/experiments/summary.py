"""From a results table (``load_results``) back to the paper's metrics: FR, MQ, MAP, MAP*, S."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hba_lib import metrics
from hba_lib.attacks.common import TraceRow


@dataclass
class StoredResult:
    """The fields of an ``AttackResult`` that ``hba_lib.metrics`` reads, from one stored row."""

    success: bool
    attacked: bool
    queries: int
    queries_by_phase: dict[str, int]
    map: float
    map_star: float
    sparsity: float
    distance: float
    wall_time: float
    stop_reason: str
    trace: list[TraceRow] = field(default_factory=list)
    linf: float = float("nan")


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def to_results(df: Any) -> list[StoredResult]:
    """The finished (``done``) rows of a results table as :class:`StoredResult` objects."""
    rows = df[df["status"] == "done"]
    return [
        StoredResult(
            success=bool(r.success),
            attacked=bool(r.attacked),
            queries=int(r.queries),
            queries_by_phase={
                "init": int(r.queries_init),
                "optimisation": int(r.queries_optimisation),
                "check": int(r.queries_check),
            },
            map=float(r.map),
            map_star=float(r.map_star),
            sparsity=float(r.sparsity),
            distance=float(r.distance),
            linf=_float(getattr(r, "linf", None)),
            wall_time=float(r.wall_time),
            stop_reason=str(r.stop_reason),
            trace=list(r.trace),
        )
        for r in rows.itertuples(index=False)
    ]


def summary_table(df: Any, by: Sequence[str] = ("model", "dataset", "attack", "goal")):
    """``metrics.results_table`` of a results table, one row per group of ``by``, plus failures."""
    groups, failed = {}, {}
    for keys, part in df.groupby(list(by), sort=False):
        name = " / ".join(str(k) for k in (keys if isinstance(keys, tuple) else (keys,)))
        groups[name] = to_results(part)
        failed[name] = {"failed": int((part["status"] == "failed").sum())}
    return metrics.results_table(groups, extra=failed)
