# Every target sets up what it needs: a fresh clone needs only `make run` or `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

# Debian packages: CJK fonts for the PDFs of documents; chromium, pdftoppm and zbarimg for the
# browser and QR tests; faketime (libfaketime) for `starter.py simulate` of a year already begun.
# Installed when missing and we are root (CI, this machine); otherwise the tests that need them
# are skipped and the PDFs are not written (the text documents still are).
RUN_DEBS  := fonts-noto-cjk faketime
TEST_DEBS := fonts-noto-cjk chromium poppler-utils zbar-tools faketime

.PHONY: setup run demo test test-fast lint bench clean debs-run debs-test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[dev]'
	@# Bytecode ahead of time: the workflow sandbox re-imports workflow modules per run, and
	@# compiling them each time is measurable (docs/benchmarks.md).
	$(VPY) -m compileall -q workflows activities rules engine
	touch $(STAMP)

setup: $(STAMP)

debs-run debs-test: DEBS = $(if $(filter debs-run,$@),$(RUN_DEBS),$(TEST_DEBS))
debs-run debs-test:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; fi

## Run the engine on its embedded default: dev server (SQLite file + Web UI) + worker + the sample petitions.
run: $(STAMP) debs-run
	$(VPY) worker.py --with-samples

## Run the bundled scenarios through the time-skipping server and print their timelines.
demo: $(STAMP)
	@for f in tests/scenarios/*.json; do echo "== $$f"; $(VPY) starter.py scenario $$f || exit 1; done

## Lint, type-check and run the whole test suite.
test: $(STAMP) debs-test
	$(VPY) -m ruff check .
	$(VPY) -m mypy
	$(VPY) -m pytest

## The same without the tests marked slow (minutes of real time), while working on the code.
test-fast: $(STAMP) debs-test
	$(VPY) -m ruff check .
	$(VPY) -m mypy
	$(VPY) -m pytest -m "not slow"

bench: $(STAMP)
	$(VPY) bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
