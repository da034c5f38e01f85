# Two commands do all the set-up: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-short install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Bytecode for cvbulk's own modules (pip compiles the dependencies, not an editable install). Without it, and with
# PYTHONDONTWRITEBYTECODE set, every `cvbulk` process compiles ~150 modules from source: ~0.15 s of CPU a start,
# paid by each of the tests' CLI subprocesses. Only changed files are compiled again.
BYTECODE = $(BIN)/python -m compileall -q -j 0 cvbulk benchmarks >/dev/null

# Azurite (Microsoft's Azure Storage emulator) for the storage tests: npm, into ./node_modules, never global.
AZURITE := node_modules/.bin/azurite-blob
$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(AZURITE)

demo: $(STAMP)
	$(BYTECODE)
	$(BIN)/cvbulk demo

# One worker a logical CPU (TEST_WORKERS=0 runs it in one process); a test file stays on one worker (--dist loadfile),
# so that its module fixtures (a trained model, the parity replay, the built wheel) are built once; the files
# go out longest first (tests/conftest.py, LONGEST_FIRST).
TEST_WORKERS ?= logical
test: $(STAMP) $(AZURITE)
	$(BYTECODE)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check cvbulk
	$(BIN)/mypy cvbulk

bench-short: $(STAMP)
	$(BIN)/python -m benchmarks --short

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
