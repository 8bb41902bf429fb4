# Two commands: `make demo` (set up + run the notebook sequence) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hba-installed

.PHONY: setup demo figures test lint sync bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,peers,ray,real,serve]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m hba_lib.demo

# the committed figures/: the notebook sequence at its defaults (the run of `make demo`, plus
# the notebooks it leaves out for time: 09, the real model; see hba_lib/demo.py)
figures: $(STAMP)
	$(PY) -m hba_lib.demo --figures figures --all

# the tests begin with the lint (style and format), so the habit holds in CI
test: lint
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check hba_lib tests data_scripts benchmarks conftest.py

sync: $(STAMP)
	$(PY) -m jupytext --sync notebooks/*.py

bench: $(STAMP)
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_attack.py

clean:
	rm -rf runs .cache .pytest_cache .ruff_cache
