"""Metrics on hand-computed cases: MAP, MAP*, S, FR, MQ (failures included), traces, table."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hba_lib import metrics
from hba_lib.attacks import TraceRow


def test_map_and_map_star_on_the_0_255_scale() -> None:
    x = torch.zeros(3, 2, 2, 2)
    x_adv = x.clone()
    x_adv[:, 0, 0, 0] = 10 / 255  # 3 of 24 values moved by 10
    assert metrics.mean_absolute_perturbation(x, x_adv) == pytest.approx(10 * 3 / 24)
    mask = torch.zeros(1, 2, 2, 2)
    mask[:, 0, 0, :] = 1  # 2 pixels x 3 channels = 6 values, 3 of them moved by 10
    assert metrics.map_star(x, x_adv, mask) == pytest.approx(5.0)
    assert metrics.map_star(x, x_adv, None) == pytest.approx(1.25)
    assert metrics.l2_distance(x, x_adv) == pytest.approx(math.sqrt(3) * 10 / 255)


def test_sparsity_counts_dropped_frames_and_pixels() -> None:
    mask = torch.zeros(3, 4, 2, 5)  # T = 4 frames of 10 pixels
    mask[:, 0] = 1  # frame 0 whole: phi = 1
    mask[:, 1, 0, :] = 1  # frame 1 half: phi = 0.5; frames 2, 3 dropped: phi = 0
    assert metrics.frame_fractions(mask).tolist() == [1.0, 0.5, 0.0, 0.0]
    assert metrics.sparsity(mask) == pytest.approx(1 - 1.5 / 4)
    assert metrics.sparsity(None) == 0.0
    with pytest.raises(ValueError, match="mask"):
        metrics.frame_fractions(torch.ones(5, 5))


def fake(success: bool, queries: int, map_: float = 1.0, attacked: bool = True, **kw):
    return SimpleNamespace(
        success=success, queries=queries, map=map_, map_star=2 * map_, attacked=attacked,
        sparsity=0.25, wall_time=1.5, queries_by_phase={"init": 10, "optimisation": queries - 10},
        trace=kw.get("trace", []), distance=kw.get("distance", 0.5), linf=kw.get("linf", 8.0),
    )  # fmt: skip


def test_fooling_rate_and_median_queries_count_failures() -> None:
    rs = [fake(True, 100), fake(True, 300), fake(False, 1000), fake(True, 50, attacked=False)]
    assert metrics.fooling_rate(rs) == pytest.approx(2 / 3)  # the unattacked one is left out
    assert metrics.median_queries(rs) == 300  # median of 100, 300, 1000 (failure included)
    assert metrics.median_queries(rs, successes_only=True) == 200
    assert metrics.mean_map([fake(True, 1, 2.0), fake(False, 1, 9.0)]) == 2.0
    assert math.isnan(metrics.fooling_rate([]))


def test_best_at_and_success_curve() -> None:
    trace = [TraceRow(10, 5.0, 40.0), TraceRow(20, 3.0, 20.0), TraceRow(35, 4.0, 30.0)]
    got = metrics.best_at(trace, [5, 10, 25, 100])
    assert got[0] == np.inf and got[1:].tolist() == [5.0, 3.0, 3.0]
    ok = fake(True, 35, trace=trace)
    bad = fake(False, 35, trace=trace)  # a failed attack never counts, whatever its trace
    curve = metrics.success_curve([ok, bad], [5, 10, 25], max_map=25.0)
    assert curve.tolist() == [0.0, 0.0, 0.5]
    assert metrics.success_curve([ok, bad], [5, 10]).tolist() == [0.0, 0.5]


def test_best_within_counts_the_returned_video_from_its_query_on() -> None:
    """A stop that cut a search short returns a video closer than the trace's last move: it
    counts from ``result.queries`` on, and only when the attack succeeded."""
    trace = [
        TraceRow(10, 5.0, 40.0, 6.0),
        TraceRow(20, 3.0, 20.0, 4.0),
        TraceRow(35, 4.0, 30.0, 5.0),
    ]
    budgets = [5, 35, 40, 100]
    closer = fake(True, 40, map_=12.0, trace=trace, distance=2.5)
    assert metrics.best_within(closer, budgets).tolist() == [np.inf, 20.0, 12.0, 12.0]
    assert metrics.best_within(closer, budgets, "l2").tolist() == [np.inf, 4.0, 2.5, 2.5]
    failed = fake(False, 40, map_=12.0, trace=trace)  # no success: the trace alone
    assert metrics.best_within(failed, budgets).tolist() == [np.inf, 20.0, 20.0, 20.0]
    farther = fake(True, 40, map_=25.0, trace=trace)  # never worse than the trace
    assert metrics.best_within(farther, budgets).tolist() == [np.inf, 20.0, 20.0, 20.0]
    untraced = fake(True, 40, map_=12.0)  # a result without a trace: its one point
    assert metrics.best_within(untraced, budgets).tolist() == [np.inf, np.inf, 12.0, 12.0]
    assert metrics.success_curve([closer], budgets, max_map=15.0).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="'map' or 'l2'"):
        metrics.best_within(closer, budgets, "distance")


def test_final_pair_reads_one_video_for_both_metrics() -> None:
    """At the last budget a record (or a result) is read at the video the attack returned, MAP and L2 of the
    same video, even where its trace saw a closer one in L2 before a narrowed support; a run past
    the budget (the paper's stopping rule) at the best within the budget; a failed final check
    as not fooled, whatever its trace saw."""
    rec = {"attacked": True, "success": True, "queries": 100, "map": 0.4, "distance": 0.9,
           "map_at": [9.0, 0.4], "l2_at": [9.0, 0.6]}  # fmt: skip
    assert metrics.final_pair(rec, 100) == (0.4, 0.9)  # not (0.4, 0.6): two different videos
    assert metrics.final_pair({**rec, "queries": 101}, 100) == (0.4, 0.6)  # past the budget
    assert metrics.final_pair({**rec, "success": False}, 100) == (np.inf, np.inf)
    unattacked = {**rec, "attacked": False, "success": False, "queries": 0}
    assert metrics.final_pair(unattacked, 100) == (0.4, 0.6)  # nothing attacked: its trace
    # the same readings from an attack's result (a notebook's table): its trace saw L2 0.6 at
    # MAP 0.4 (query 60), then narrowed and returned MAP 0.3 at L2 0.9 (query 100)
    trace = [TraceRow(60, 0.0, 0.4, 0.6), TraceRow(100, 0.0, 0.3, 0.9)]
    narrowed = fake(True, 100, map_=0.3, trace=trace, distance=0.9)
    assert metrics.final_pair(narrowed, 100) == (0.3, 0.9)
    assert metrics.final_pair(narrowed, 80) == (0.4, 0.6)  # past that budget: best within it
    assert metrics.final_pair(fake(False, 100, trace=trace), 100) == (np.inf, np.inf)


def test_results_table_one_row_per_attack() -> None:
    table = metrics.results_table(
        {
            "A": [fake(True, 100, distance=1.0), fake(False, 200, distance=2.0, linf=4.0)],
            "B": [fake(True, 40)],
        },
        extra={"B": {"note": "x"}},
    )
    assert list(table.index) == ["A", "B"]
    assert table.loc["A", "FR %"] == 50.0 and table.loc["A", "MQ"] == 150.0
    assert table.loc["A", "MQ init"] == 10.0 and table.loc["B", "MQ opt"] == 30.0
    assert table.loc["A", "MAP"] == 1.0 and table.loc["A", "MAP*"] == 2.0
    assert table.loc["A", "L2"] == 1.5 and table.loc["A", "Linf"] == 6.0
    assert table.loc["B", "L2"] == 0.5 and table.loc["B", "Linf"] == 8.0
    assert table.loc["B", "note"] == "x" and table.loc["A", "time s"] == 3.0


def test_time_counts_videos_run_together_once() -> None:
    a, b, c = fake(True, 10), fake(True, 10), fake(True, 10)
    a.started, a.wall_time = 100.0, 10.0  # a and b ran together (lockstep)
    b.started, b.wall_time = 101.0, 9.0
    c.started, c.wall_time = 200.0, 2.0  # c ran later
    assert metrics.elapsed_time([a, b, c]) == 12.0
    assert metrics.results_table({"A": [a, b, c]}).loc["A", "time s"] == 12.0


def test_l2_from_map_is_the_evenly_spread_l2_and_a_lower_bound() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, 8, 8, generator=g) * 0.5 + 0.25
    n = x.numel()
    even = x.clone()
    even.view(-1)[: n // 10] += 0.05  # 10 % of the values, all by the same amount
    rho = metrics.support_share(x, even)
    assert rho == pytest.approx((n // 10) / n)
    l2 = float((even - x).norm())
    assert metrics.l2_from_map(
        metrics.mean_absolute_perturbation(x, even), n, rho
    ) == pytest.approx(l2, rel=1e-4)
    uneven = x.clone()
    uneven.view(-1)[: n // 10] += 0.1 * torch.rand(n // 10, generator=g)
    bound = metrics.l2_from_map(metrics.mean_absolute_perturbation(x, uneven), n,
                                metrics.support_share(x, uneven))  # fmt: skip
    assert bound <= float((uneven - x).norm()) * (1 + 1e-5)
    with pytest.raises(ValueError, match="rho"):
        metrics.l2_from_map(1.0, n, 0.0)
