# Two entry points, both set up everything they need on a fresh machine:
#   make demo   - create .venv, install, scan the bundled examples and show what was flagged
#   make test   - create .venv, install, run the test suite and the linter
#   make test-fast - the tests measured under 2 s each (pytest -m "not slow"): minutes, for the edit loop
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: any other spec pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $@

.PHONY: setup demo test test-fast lint
setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/scan examples/docs --out examples/out/report.parquet --html examples/out/report.html
	$(PY) examples/show_report.py examples/out/report.parquet

test: setup
	$(PY) -m pytest -q -p no:cacheprovider
	$(VENV)/bin/ruff check .

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"
	$(VENV)/bin/ruff check .

lint: setup
	$(VENV)/bin/ruff check .
