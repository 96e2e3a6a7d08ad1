#!/usr/bin/env sh
# Start the scaled-out topology as plain processes on 127.0.0.1 until Ctrl-C (see bench/cluster.py).
# Example: bench/cluster.sh up --fresh --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
set -eu
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
exec "${PYTHON:-$PY}" -m bench.cluster "$@"
