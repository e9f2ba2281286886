# `make run` starts the daemon on the bundled config; `make test` runs the suite.
# Both create .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run once test lint install clean screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("watcher needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q watcher
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/watcher run

once: $(STAMP)
	$(BIN)/watcher run --once

lint: $(STAMP)
	$(BIN)/ruff check watcher tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/deptry watcher
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# The README's pictures of the web console, taken by the browser test (needs chromium).
screenshots: $(STAMP)
	WATCHER_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_web_browser.py

clean:
	rm -rf $(VENV) data
