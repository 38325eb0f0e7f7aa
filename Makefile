# The checks and the tests (CONTRIBUTING.md). PYTHON is the interpreter of the environment arena-eval is installed
# in with its dev extra (pip install -e ".[dev]"): make check PYTHON=.venv/bin/python
PYTHON ?= python

.PHONY: check lint types layers test test-parallel fast

# ruff, mypy and the layer rule of docs/design.md §7: seconds, before any test.
check: lint types layers

lint:
	$(PYTHON) -m ruff check arena_eval tests bench

types:
	$(PYTHON) -m mypy

layers:
	$(PYTHON) -m pytest -q tests/test_layout.py

# The whole suite, in one process as CI runs it (about 16 minutes on 2 cores).
test:
	$(PYTHON) -m pytest -q

# The whole suite in two worker processes (under 10 minutes on 2 cores; a few timing tests may flake under the load).
test-parallel:
	$(PYTHON) -m pytest -q -n 2

# The inner loop: everything but the tests marked slow (subprocess runs, the local model, the browser).
fast:
	$(PYTHON) -m pytest -q -m "not slow"
