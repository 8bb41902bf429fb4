# Two commands: `make demo` (set up + run the notebook sequence) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hba-installed

.PHONY: setup demo figures test lint sync bench clean book book-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,peers,ray,real,serve,book]'
	@# the book's equations: MathJax 3 from npm, into the venv (make book copies it into the site)
	@if command -v npm >/dev/null; then \
	  npm install --prefix $(VENV)/book-npm --no-save --no-audit --no-fund --loglevel=error mathjax@3; \
	else echo "make setup: no npm: make book needs MathJax 3 from npm (docs/notebooks.md)"; fi
	@# the book's browser check: Debian's chromium and chromium-driver (as root; else see docs/notebooks.md)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) >/dev/null; \
	  else echo "make setup: no chromium/chromedriver and not root: the book's browser check will skip (docs/notebooks.md)"; fi; \
	fi
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m hba_lib.demo

# the committed figures/: the notebook sequence at its defaults (the run of `make demo`, plus
# the notebooks it leaves out for time: 09, the real model; see hba_lib/demo.py)
figures: $(STAMP)
	$(PY) -m hba_lib.demo --figures figures --all

# the tests begin with the lint (style and format), so the habit holds in CI; then the book is
# built (notebooks executed once, cached) so that tests/test_book.py checks it in Chromium
test: lint book
	$(PY) -m pytest

# the course as an HTML site in runs/book/html (docs/notebooks.md): notebooks executed at their
# defaults once (cached by the hash of their source; make demo's copies reused), then Sphinx -W
book: $(STAMP)
	nice -n 10 $(PY) -m hba_lib.book

# the book, then its browser check in headless Chromium, with screenshots in runs/book/shots
book-check: book
	$(PY) -m hba_lib.book.check runs/book/html --shots runs/book/shots

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
