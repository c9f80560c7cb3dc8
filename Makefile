# One-command set-up: `make run` serves (training first if no checkpoints exist), `make test` tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_DIR ?= models

.PHONY: install run train study test lint format bench lock clean

install: $(STAMP)

# Reinstall whenever the dependency pins change.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train,dev]'
	touch $@

train: install
	$(BIN)/python -m training --out $(MODEL_DIR)

study: install
	$(BIN)/python -m training study --sweep --out $(MODEL_DIR)

run: install
	$(BIN)/python -m training --if-missing --out $(MODEL_DIR)
	MODEL_DIR=$(MODEL_DIR) HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m service

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_study.py

# Re-pin every dependency from the current environment (torch stays on the CPU build's public version).
lock: install
	{ head -n 2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info test-output .mypy_cache .ruff_cache .pytest_cache
