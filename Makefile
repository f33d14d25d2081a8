# The two commands the README promises: `make run` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATA ?= .coopnet-data

.PHONY: install run test test-fast explore lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Starts a node on 127.0.0.1:8470 with an SQLite store in $(DATA), initialising it on first run.
run: install
	@test -f $(DATA)/coopnet.toml || $(BIN)/coopnet init --data-dir $(DATA)
	$(BIN)/coopnet run --data-dir $(DATA)

test: install
	$(BIN)/ruff check protocol node tests scripts
	$(BIN)/python -m pytest -q

# Property tests with random seeds and ten times the examples (CI runs them derandomized).
explore: install
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -q -m "not slow" tests/test_governance.py tests/test_governance_attacks.py tests/test_codec.py tests/test_peer_protocol.py tests/test_store.py

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check protocol node tests scripts
	$(BIN)/ruff format --check protocol node tests scripts

bench: install
	$(BIN)/python scripts/bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
