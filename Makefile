# The two entry points of the README: `make run` and `make test`. Both create .venv when it
# is missing and install into it; CI calls `make test` with CI=true.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
OHIF := tests/ohif
STAMP_OHIF := $(OHIF)/node_modules/.installed
WEB := tests/web
STAMP_WEB := $(WEB)/node_modules/.installed
# Two test workers per core: about a third of the suite's time is spent waiting on other
# processes (servers, browsers, DCMTK, timeouts), and a second worker per core runs meanwhile.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))

.PHONY: run test test-quick lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

# The viewer test's browser driver and the OHIF build (npm); without npm that test is skipped
# (and fails under CI=true, which installs npm).
$(STAMP_OHIF): $(OHIF)/package.json $(OHIF)/package-lock.json | $(STAMP_TEST)
	if command -v npm >/dev/null 2>&1; then $(BIN)/python -m tests.ohif.install && touch $@; \
	else echo "npm not found: the OHIF viewer test cannot run"; fi

# The web app's browser tests check each page with axe-core, pinned in $(WEB)/package.json
# and installed from its lockfile; without npm those checks are skipped (a failure under CI).
$(STAMP_WEB): $(WEB)/package.json $(WEB)/package-lock.json
	if command -v npm >/dev/null 2>&1; then \
		cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the web app's accessibility checks cannot run"; fi

run: $(STAMP_RUN)
	$(BIN)/radcase-pacs serve

# The whole suite on TEST_WORKERS pytest-xdist workers, after lint, format and strict typing
# of the library packages. --dist loadfile keeps each test module in one worker, so that a
# module's shared archive or server (module-scoped fixtures) is built once; tests/conftest.py
# hands out the long modules first.
test: $(STAMP_TEST) $(STAMP_OHIF) $(STAMP_WEB)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# While working: the suite without the end-to-end and load tests (no DCMTK, Orthanc, browser or
# server processes), on the embedded backends only. Not a substitute for `make test`.
test-quick: $(STAMP_TEST)
	RADCASE_TEST_BACKENDS=sqlite-memory-folder $(BIN)/python -m pytest -n auto --dist loadfile \
		-m "not e2e and not slow" $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP_TEST)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(OHIF)/node_modules $(WEB)/node_modules $(WEB)/artifacts build *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
