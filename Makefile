# pactwatch: `make run` serves the Istanbul demo, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
PACTWATCH_DATABASE_URL ?= sqlite:///./pactwatch.db
export PACTWATCH_DATABASE_URL

.PHONY: install browser proxy run test bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/pactwatch serve --demo --host $(HOST) --port $(PORT)

# The dashboard's browser tests drive Debian's chromium: install it when missing and allowed (root, apt-get).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: the browser tests will be skipped (apt-get install chromium)"; fi; }

# The cluster test and benchmarks put nginx in front of the replicas (bench/proxy.py when it is missing).
proxy:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } || \
	    echo "nginx-light could not be installed: the cluster uses bench/proxy.py"; \
	  else echo "nginx is missing: the cluster uses bench/proxy.py (apt-get install nginx-light)"; fi; }

test: install browser proxy
	$(BIN)/pytest

# The benchmark suite on PostgreSQL (BENCH_ARGS="--url ... --seconds 5 --rebuild-events 200000").
bench: install proxy
	$(BIN)/python -m bench.suite $(BENCH_ARGS)

clean:
	rm -rf $(VENV) pactwatch.db pactwatch.db-wal pactwatch.db-shm .pytest_cache
