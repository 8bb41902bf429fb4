"""Notebook rule checked while nbval runs the notebooks (``make test``): every cell that calls
``viz.show(`` puts its figure inline, as an ``image/png`` output (see CONTRIBUTING.md).

Notebook 09 on a clone without MoViNet, its runtime or the real clips (``../shared``) says what
it needs and draws nothing: there the rule is waived (the notebook must still run cleanly)."""

from __future__ import annotations

import pytest

SHOW_CALL = "viz.show("


def png_outputs(outputs) -> int:
    """How many ``image/png`` outputs a cell's outputs hold."""
    return sum("image/png" in (out.get("data") or {}) for out in outputs or [])


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
    got = png_outputs(getattr(item, "test_outputs", None))
    if got < wanted:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: the cell calls viz.show {wanted} time(s) but holds {got} inline "
            "image/png output(s); figures must show inline (viz.show renders them)"
        )
