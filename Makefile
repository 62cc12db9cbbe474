# promptreg — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint fmt bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/promptreg demo

# SQLite and PostgreSQL: the suite starts a throwaway PostgreSQL where the server is
# installed (or uses PROMPTREG_TEST_POSTGRES_URL), and skips that half, saying so, elsewhere.
test: $(STAMP)
	$(BIN)/python -m pytest

# the same without the tests marked slow (child processes, several servers, long histories)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check registry tests bench
	$(BIN)/ruff format --check registry tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format registry tests bench
	$(BIN)/ruff check --fix registry tests bench

# each prints its figures and ratios against a baseline measured in the same run
bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/rollout.py
	$(BIN)/python bench/ui.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
