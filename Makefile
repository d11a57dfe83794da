# Every target sets up what it needs: a fresh clone needs only `make run` or `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: setup run demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[dev]'
	@# Bytecode ahead of time: the workflow sandbox re-imports workflow modules per run, and
	@# compiling them each time is measurable (docs/benchmarks.md).
	$(VPY) -m compileall -q workflows activities rules engine
	touch $(STAMP)

setup: $(STAMP)

## Run the engine on its embedded default: dev server (SQLite file + Web UI) + worker + the sample petitions.
run: $(STAMP)
	$(VPY) worker.py --with-samples

## Run the bundled scenarios through the time-skipping server and print their timelines.
demo: $(STAMP)
	@for f in tests/scenarios/*.json; do echo "== $$f"; $(VPY) starter.py scenario $$f || exit 1; done

## Lint, type-check and run the whole test suite.
test: $(STAMP)
	$(VPY) -m ruff check .
	$(VPY) -m mypy
	$(VPY) -m pytest

bench: $(STAMP)
	$(VPY) bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
