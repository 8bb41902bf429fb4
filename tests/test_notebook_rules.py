"""The notebook rules of CONTRIBUTING.md that a machine can check, for every notebook NN_name.

Static (every notebook, fast): objectives / time / summary / exercises headings; 2-4 exercises
registered in ``hba_lib/exercises/nbNN.py`` and all checked in the notebook; figures through
``viz``; links and notebook references that resolve. Executed: a papermill run of notebook 01 at
non-default parameters leaves ``git status`` and ``figures/`` untouched and shows every figure
inline. (That every cell calling ``viz.show`` holds an inline ``image/png`` at the defaults is
checked while nbval runs the notebooks: see ``conftest.py``.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import jupytext
import pytest

from hba_lib import exercises, paths

NOTEBOOK_SOURCES = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
LEARN, TIME, SUMMARY, EXERCISES = (
    "## What you will learn",
    "**Time to run:**",
    "## Summary",
    "## Exercises",
)


def _cells(source):
    return jupytext.read(source).cells


def _number(source) -> str:
    return source.name[:2]


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.name)
def test_objectives_cost_summary_and_exercises_headings(source):
    md = [c.source for c in _cells(source) if c.cell_type == "markdown"]
    first = md[0] if md else ""
    assert first.startswith(f"# {_number(source)} "), (
        f"{source.name}: first cell is the '# NN · title'"
    )
    assert LEARN in first and TIME in first, (
        f"{source.name}: the first markdown cell says '{LEARN}' (bullets) and '{TIME} ...'"
    )

    def where(heading):
        hits = [
            i for i, text in enumerate(md) if re.search(rf"^{re.escape(heading)}\s*$", text, re.M)
        ]
        assert hits, f"{source.name}: no markdown heading '{heading}'"
        return hits[0]

    assert where(SUMMARY) <= where(EXERCISES), (
        f"{source.name}: '{SUMMARY}' comes before '{EXERCISES}'"
    )
    assert not any(re.search(r"^## ", t, re.M) for t in md[where(EXERCISES) + 1 :]), (
        f"{source.name}: the exercises end the notebook (no '## ' section after them)"
    )


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.name)
def test_exercises_registered_and_checked_in_the_notebook(source):
    nb = _number(source)
    registered = {e.id for e in exercises.exercises_for(nb)}
    assert (paths.PACKAGE_DIR / "exercises" / f"nb{nb}.py").exists(), (
        f"{source.name}: its exercises live in hba_lib/exercises/nb{nb}.py"
    )
    assert 2 <= len(registered) <= 4, f"{source.name}: 2-4 exercises, found {sorted(registered)}"
    code = "\n".join(c.source for c in _cells(source) if c.cell_type == "code")
    checked = set(re.findall(r"exercises\.check\(\s*[\"'](\d\d\.\d+)[\"']", code))
    assert checked == registered, (
        f"{source.name}: exercises.check(...) in the notebook {sorted(checked)} != registered "
        f"{sorted(registered)}"
    )


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.name)
def test_figures_go_through_viz(source):
    code = "\n".join(c.source for c in _cells(source) if c.cell_type == "code")
    for banned, why in [
        ("matplotlib.use(", "the backend is left alone (figures must show inline)"),
        ("plt.savefig(", "save with viz.show / viz.savefig (they pick the run's folder)"),
        (".savefig(", "save with viz.show / viz.savefig (they pick the run's folder)"),
        ("paths.FIGURES", "only the default run writes figures/ (viz.savefig decides)"),
        ("rcParams", "no global style change: styles live inside hba_lib.viz functions"),
    ]:
        assert banned not in code.replace("viz.savefig(", ""), f"{source.name}: `{banned}`: {why}"


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.name)
def test_links_and_notebook_references_resolve(source):
    text = source.read_text()
    for link in re.findall(r"\(\.\./([^)\s]+\.md)\)", text):
        assert (paths.REPO_ROOT / link).exists(), f"{source.name} links to missing {link}"
    assert not re.search(r"(?<!docs/)\balgorithm\.md", text), (
        f"{source.name}: write docs/algorithm.md"
    )
    existing = {p.name[:2] for p in NOTEBOOK_SOURCES}
    for ref in re.findall(r"\bnotebooks? (\d\d)\b", text, re.I):
        assert ref in existing, f"{source.name} refers to notebook {ref}, which does not exist yet"


def _git(*args):
    return subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def _snapshot(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*")} if folder.exists() else {}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_papermill_run_at_other_parameters_writes_only_its_run_folder(tmp_path):
    """Notebook 01 at non-default parameters: figures inline, nothing written outside runs/."""
    pm = pytest.importorskip("papermill")
    try:
        before_status = _git("status", "--porcelain")
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    before_figures = _snapshot(paths.FIGURES)
    before_runs = set(paths.RUNS.glob("*")) if paths.RUNS.exists() else set()
    source = next(p for p in NOTEBOOK_SOURCES if p.name.startswith("01_"))
    notebook = tmp_path / "01.ipynb"
    jupytext.write(jupytext.read(source), notebook)
    env_before = os.environ.pop(paths.FIGURES_DIR_ENV, None)  # as a researcher runs it
    try:
        pm.execute_notebook(
            str(notebook), str(tmp_path / "out.ipynb"), kernel_name="python3",
            parameters={"size": 16, "n_per_class_train": 2, "n_per_class_test": 2, "seed": 1},
            cwd=str(paths.NOTEBOOKS), progress_bar=False,
        )  # fmt: skip
    finally:
        if env_before is not None:
            os.environ[paths.FIGURES_DIR_ENV] = env_before
    assert _git("status", "--porcelain") == before_status, "the run changed tracked files"
    assert _snapshot(paths.FIGURES) == before_figures, "the run wrote into figures/"
    new_runs = set(paths.RUNS.glob("*")) - before_runs
    written = [p for run in new_runs for p in (run / "figures").glob("01_*.png")]
    assert written, "the run's figures belong in its own folder under runs/"
    out = json.loads((tmp_path / "out.ipynb").read_text())
    for cell in out["cells"]:
        if cell["cell_type"] == "code" and "viz.show(" in "".join(cell["source"]):
            pngs = sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
            assert pngs >= 1, f"no inline figure in the executed cell:\n{''.join(cell['source'])}"
    for run in new_runs:
        shutil.rmtree(run, ignore_errors=True)


def test_viz_import_leaves_backend_and_rcparams_alone():
    code = (
        "import matplotlib as mpl; mpl.use('svg'); before = dict(mpl.rcParams)\n"
        "import hba_lib.viz, hba_lib.models.train, hba_lib.metrics\n"
        "after = dict(mpl.rcParams)\n"
        "assert mpl.get_backend() == 'svg', mpl.get_backend()\n"
        "changed = {k for k in before if before[k] != after[k]}\n"
        "assert not changed, changed\n"
    )
    env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
