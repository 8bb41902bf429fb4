"""The house rules: dependency lists agree, notebook pairs are in sync, parameters are literal."""

from __future__ import annotations

import ast
import json
import re
import tomllib

import jupytext
import pytest
import yaml

from hba_lib import paths

NOTEBOOK_SOURCES = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = (
        project["dependencies"]
        + extras["dev"]
        + extras["peers"]
        + extras["real"]
        + extras["serve"]
        + extras["book"]
    )
    env = yaml.safe_load((paths.REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [r for r in pip_section if not r.startswith("-e")]
    assert sorted(listed) == sorted(wanted), "environment.yml and pyproject.toml disagree"
    assert "opencv-python" not in {_name(r) for r in listed}, "one OpenCV wheel only (contrib)"


def test_ci_runs_the_readme_test_command():
    ci = (paths.REPO_ROOT / ".ci" / "run").read_text()
    readme = (paths.REPO_ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make demo" in readme


def test_there_are_notebooks():
    assert len(NOTEBOOK_SOURCES) >= 1


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.name)
def test_notebook_pair_in_sync_and_without_outputs(source):
    pair = source.with_suffix(".ipynb")
    assert pair.exists(), f"{pair.name} is missing: run `make sync`"
    from_py = jupytext.read(source)
    raw = json.loads(pair.read_text())
    assert [
        c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in raw["cells"]
    ] == [c.source for c in from_py.cells], f"{source.name} and {pair.name} differ: run `make sync`"
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{pair.name} is committed with outputs"
            )
    assert raw["metadata"]["kernelspec"]["name"] == "python3"


def _parameters(source):
    nb = jupytext.read(source)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{source.name}: exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, (
            f"{source.name}: the parameters cell holds only `name = literal` lines"
        )
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=lambda p: p.name)
def test_parameters_are_literals_and_full_params_match(source):
    params = _parameters(source)
    assert params, f"{source.name}: empty parameters cell"
    full = paths.PARAMS / f"{source.stem}_full.yaml"
    assert full.exists(), f"{source.name}: paper-scale settings belong in {full.name}"
    overrides = yaml.safe_load(full.read_text()) or {}
    unknown = set(overrides) - set(params)
    assert not unknown, f"{full.name} sets parameters the notebook does not have: {unknown}"


def test_every_notebook_is_a_pair():
    """A notebook added as .ipynb alone (or .py alone) escapes the sync check: refuse it."""
    ipynbs = {p.stem for p in paths.NOTEBOOKS.glob("*.ipynb")}
    sources = {p.stem for p in paths.NOTEBOOKS.glob("*.py")}
    assert ipynbs == sources, f"unpaired notebooks: {sorted(ipynbs ^ sources)} (run `make sync`)"
