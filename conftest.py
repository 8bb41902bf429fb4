"""Notebook rule checked while nbval runs the notebooks (``make test``): every cell that calls
``viz.show(`` puts its figure inline, as an ``image/png`` output (see CONTRIBUTING.md), or says
in a line from ``viz.not_drawn`` why it has nothing to draw (an optional input is missing).

Notebook 09 on a clone without MoViNet, its runtime or the real clips (``../shared``) says what
it needs and draws nothing: there the rule is waived (the notebook must still run cleanly).

Also the ``bench_module`` fixture: a script of ``benchmarks/`` imported by path (no change to
``sys.path``), for the tests of what it prints."""

from __future__ import annotations

import pytest

SHOW_CALL = "viz.show("


@pytest.fixture
def bench_module():
    """``bench_module("name")``: ``benchmarks/name.py`` loaded as a module."""
    from hba_lib.paths import load_script

    return lambda name: load_script(f"benchmarks/{name}.py")


def png_outputs(outputs) -> int:
    """How many ``image/png`` outputs a cell's outputs hold."""
    return sum("image/png" in (out.get("data") or {}) for out in outputs or [])


def not_drawn_lines(outputs) -> int:
    """How many ``viz.not_drawn`` lines a cell's stream outputs hold."""
    from hba_lib.viz import NOT_DRAWN

    text = "".join(out.get("text", "") for out in outputs or [] if out.get("name") == "stdout")
    return sum(line.startswith(NOT_DRAWN) for line in text.splitlines())


def figures_waived(notebook: str) -> bool:
    """Whether ``notebook`` runs here without drawing: 09 without its model, runtime or clips."""
    if notebook != "09_real_model.ipynb":
        return False
    from hba_lib import paths
    from hba_lib.data.clips import missing_clips
    from hba_lib.models import movinet

    return bool(movinet.missing() or missing_clips(paths.REAL_DATA / "action_clips"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cell = getattr(item, "cell", None)
    if (
        call.when != "call"
        or not report.passed
        or cell is None
        or type(item).__name__ != "IPyNbCell"
    ):
        return
    if figures_waived(item.path.name):
        return
    wanted = cell.source.count(SHOW_CALL)
    outputs = getattr(item, "test_outputs", None)
    got = png_outputs(outputs) + not_drawn_lines(outputs)
    if got < wanted:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: the cell calls viz.show {wanted} time(s) but holds {got} inline "
            "image/png output(s) and viz.not_drawn line(s); figures must show inline (viz.show "
            "renders them) or say why they are not drawn (viz.not_drawn)"
        )
