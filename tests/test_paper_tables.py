"""The paper's Tables 2-6 as data, the grid / Table 6 layouts, and make demo's final table."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from hba_lib import demo, paths
from hba_lib.attacks.common import TraceRow
from hba_lib.experiments import paper_tables as pt


def test_tables_agree_where_the_paper_repeats_a_row():
    assert pt.TABLE2_OMEGA_UNTARGETED[3.0] == pt.TABLE3_PHI_UNTARGETED[1.0]
    t4, t5 = pt.TABLE4_OMEGA_TARGETED[30.0], pt.TABLE5_PHI_TARGETED[1.0]
    assert t4[2:] == t5[2:] and abs(t4[1] - t5[1]) <= 0.5
    assert pt.TABLE2_OMEGA_UNTARGETED[math.inf][4] == 83.75  # the text: "as low as 83.75 %"
    assert pt.TABLE3_PHI_UNTARGETED[0.2][4] == 85.00  # "as high as 85.00 %"
    for rows in pt.TABLE6.values():
        mq, m, ms, s = rows["opt"]
        assert m == ms and s == 0.0  # no mask: MAP = MAP*, S = 0
        for config in ("temporal", "temporal+spatial"):
            assert rows[config][1] <= rows[config][2]  # MAP <= MAP*
    assert pt.TABLE6[("c3d", "ucf101", "untargeted")]["temporal+spatial"][0] == 12940.0


def test_grid_points_and_attacks():
    pts = pt.grid_points("untargeted", [0, 3, "inf"], [0.4, 1.0], 3)
    assert pts[2] == ("omega", math.inf, 1.0) and pts[-1] == ("phi", 3.0, 1.0)
    attacks = pt.grid_attacks(pts, 1000, "sign-opt")
    assert len(attacks) == 4  # omega 3 / phi 1 is in both grids: one configuration
    assert attacks["omega=inf, phi=1"] == {"attack": "temporal+spatial", "omega": math.inf,
                                           "phi": 1.0, "query_budget": 1000,
                                           "optimizer": "sign-opt"}  # fmt: skip
    with pytest.raises(ValueError, match="omega"):
        pt.grid_points("untargeted", [-1], [], 3)
    with pytest.raises(ValueError, match="phi"):
        pt.grid_points("untargeted", [], [0.0], 3)
    with pytest.raises(ValueError, match="goal"):
        pt.grid_points("both", [], [], 3)


def _row(attack, goal, video, success=True, map_=2.0, model="c3d", params=None):
    return {"status": "done", "model": model, "dataset": "synthetic", "attack": attack,
            "goal": goal, "video": video, "success": success, "attacked": True, "queries": 900,
            "queries_init": 300, "queries_optimisation": 590, "queries_check": 10, "map": map_,
            "map_star": 2 * map_, "sparsity": 0.5, "distance": 1.0, "wall_time": 1.0,
            "stop_reason": "budget_exhausted", "trace": [TraceRow(900, 1.0, map_)],
            "params": params or {"query_budget": 1000}}  # fmt: skip


def test_grid_table_sets_the_paper_beside_each_point():
    pts = pt.grid_points("untargeted", [3, "inf"], [0.6], 3)
    df = pd.DataFrame([_row(pt.grid_name(w, p), "untargeted", v) for _, w, p in pts
                       for v in (0, 1)])  # fmt: skip
    t = pt.grid_table(df, "untargeted", "omega", pts)
    assert list(t["omega"]) == ["3", "inf"] and list(t["videos"]) == [2, 2]
    assert t.loc[1, "paper S %"] == 83.75 and t.loc[0, "MQ"] == 900 and t.loc[0, "MQ init"] == 300
    t = pt.grid_table(df, "untargeted", "phi", pts)
    assert t.loc[0, "paper MQ"] == 14125.0


def test_table6_layout_markdown_and_csv(tmp_path):
    df = pd.DataFrame([_row(c, g, v, success=v == 0) for g in ("targeted", "untargeted")
                       for c in pt.CONFIGS for v in (0, 1)])  # fmt: skip
    t = pt.table6(df)
    assert list(t["goal"])[:3] == ["untargeted"] * 3  # untargeted first, as in the paper
    assert list(t["attack"])[:3] == ["Opt-attack", "+Temporal", "+Temporal+Spatial"]
    assert set(t["FR %"]) == {50.0} and t.loc[0, "paper row"] == "C3D UCF-101"
    assert t.loc[3, "paper MQ"] == 207944.5 and t.loc[0, "budget"] == 1000
    csv, md = pt.save_table(t, "08_table6", folder=tmp_path)
    assert pd.read_csv(csv).shape == t.shape
    text = md.read_text()
    assert text.startswith("| model / data | goal |") and "207,944.5" in text
    assert demo.final_table(tmp_path) == text and demo.final_table(tmp_path / "none") is None


def test_paper_row_falls_back_to_ucf101():
    assert pt.paper_row("lrcn", "synthetic", "targeted")[0] == "LRCN UCF-101"
    assert pt.paper_row("lrcn", "hmdb51", "untargeted")[1]["opt"][0] == 18655.0


def test_demo_clears_only_results_stores(tmp_path):
    (tmp_path / "07_grid_search.sqlite").write_text("x")
    (tmp_path / "08_result_tables.sqlite.adv").mkdir()
    (tmp_path / "08_result_tables.sqlite.adv" / "a.npz").write_text("x")
    (tmp_path / "08_table6.md").write_text("| a |")
    gone = demo.clear_stores(tmp_path)
    assert len(gone) == 2 and [p.name for p in tmp_path.iterdir()] == ["08_table6.md"]


def test_paper_table6_sweeps_load():
    from hba_lib import paths
    from hba_lib.experiments import load_sweep

    files = sorted((paths.PARAMS / "sweeps" / "paper_table6").glob("*.yaml"))
    assert len(files) == 4
    for f in files:
        sweep = load_sweep(f)
        budget = 100000 if sweep.goal == ["untargeted"] else 500000
        assert set(sweep.attacks) == set(pt.CONFIGS), f.name
        assert {a["query_budget"] for a in sweep.attacks.values()} == {budget}, f.name
        assert [pt.paper_row(m, sweep.dataset[0]["name"], sweep.goal[0])[0][:4] for m in
                sweep.model] == ["C3D ", "LRCN"]  # fmt: skip


def test_demo_leaves_out_notebook_09_unless_asked(tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    ran = []
    monkeypatch.setattr(pm, "execute_notebook", lambda nb, out, **kw: ran.append(Path(nb).name))
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, str(tmp_path))  # run() sets it: restored after
    sequence = [paths.NOTEBOOKS / "01_data.ipynb", paths.NOTEBOOKS / "09_real_model.ipynb"]
    monkeypatch.setattr(demo, "notebook_sequence", lambda: sequence)
    assert "09_real_model" in demo.NOT_IN_DEMO
    demo.run(tmp_path / "out", figures=tmp_path)
    assert ran == ["01_data.ipynb"]
    ran.clear()
    demo.run(tmp_path / "out", only=["09"], figures=tmp_path)
    assert ran == ["09_real_model.ipynb"]
    ran.clear()
    demo.run(tmp_path / "out", figures=tmp_path, include_all=True)
    assert ran == ["01_data.ipynb", "09_real_model.ipynb"]
