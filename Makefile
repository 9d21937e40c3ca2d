# buff_dataplane: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint typecheck pytest demo bench golden-check golden-update clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check buff_dataplane tests bench golden
	$(BIN)/ruff format --check buff_dataplane tests bench golden

typecheck: install
	$(BIN)/mypy buff_dataplane

pytest: install
	$(BIN)/pytest -q -n 2

test: lint typecheck pytest

demo: install
	$(BIN)/python -m buff_dataplane.demo

bench: install
	$(BIN)/python -m bench.run

golden-check: install
	$(BIN)/python -m golden.check

golden-update: install
	$(BIN)/python -m golden.check --update

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
