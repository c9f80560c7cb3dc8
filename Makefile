# One-command set-up: `make run` serves (training first if no checkpoints exist), `make test` tests. `make help`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two stamps, one venv: `make run` needs the API and the trainer (the `train` extra: CPU torch); `make test`,
# `make lint` and the rest add the dev and docs tools. Each reinstalls when the dependency pins change.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_DIR ?= models
export PYTHON

.PHONY: help install install-run run train study test test-fast lint format docs docs-serve bench lock clean
.DEFAULT_GOAL := help

help: ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  (PYTHON=$(PYTHON) makes .venv; HOST, PORT and MODEL_DIR are passed to make run)"

run: $(RUN_STAMP) ## serve on http://127.0.0.1:8000 (HOST, PORT), training both models first if models/ has no run
	$(BIN)/python -m training --if-missing --out $(MODEL_DIR)
	MODEL_DIR=$(MODEL_DIR) HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m service

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## the tests that start no process, server, browser or Docker (pytest -m "not system")
	$(BIN)/python -m pytest -m "not system"

install-run: $(RUN_STAMP) ## make .venv for serving and training only (no dev tools)

install: $(STAMP) ## make .venv with everything: serving, training, tests, lint, docs

$(RUN_STAMP): pyproject.toml constraints.txt tools/venv.sh
	tools/venv.sh $(VENV) train $@

# The full install satisfies `make run` too.
$(STAMP): pyproject.toml constraints.txt tools/venv.sh
	tools/venv.sh $(VENV) train,dev,docs $@
	touch $(RUN_STAMP)

train: $(RUN_STAMP) ## train a new run of both models into models/
	$(BIN)/python -m training --out $(MODEL_DIR)

study: $(RUN_STAMP) ## the multi-seed study with the learning-rate sweep, into models/study.json
	$(BIN)/python -m training study --sweep --out $(MODEL_DIR)

lint: $(STAMP) ## ruff format --check, ruff check, mypy --strict
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .

format: $(STAMP) ## ruff format and the safe ruff fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP) ## regenerate docs/configuration.md, then build the docs site into site/ (strict)
	$(BIN)/python tools/gen_config_docs.py
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP) ## the docs site on http://127.0.0.1:8001, rebuilt on every edit
	$(BIN)/mkdocs serve -a 127.0.0.1:8001

bench: $(STAMP) ## the training and study benchmarks
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_study.py

# Re-pin every dependency from the current environment (torch stays on the CPU build's public version).
lock: $(STAMP) ## re-pin constraints.txt from the installed environment
	{ head -n 2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: ## remove .venv and every build and test output (not models/)
	rm -rf $(VENV) build site *.egg-info test-output .mypy_cache .ruff_cache .pytest_cache
