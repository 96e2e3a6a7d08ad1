# pactwatch: `make run` serves the Istanbul demo, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
PACTWATCH_DATABASE_URL ?= sqlite:///./pactwatch.db
export PACTWATCH_DATABASE_URL

.PHONY: install run test bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/pactwatch serve --demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) pactwatch.db pactwatch.db-wal pactwatch.db-shm .pytest_cache
