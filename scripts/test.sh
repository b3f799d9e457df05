#!/usr/bin/env bash
# Runs the whole suite: SQLite always, and a real PostgreSQL. If LOCKGATE_TEST_PG_URL is unset and the
# Debian PostgreSQL server is installed, a throwaway cluster is started for the run and removed after.
set -euo pipefail
VENV=${VENV:-.venv}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [ -z "${LOCKGATE_TEST_PG_URL:-}" ]; then
  BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$BIN" ] && [ -x "$BIN/initdb" ]; then
    PGDIR=$(mktemp -d /tmp/lockgate-pg.XXXXXX)
    PORT=${LOCKGATE_TEST_PG_PORT:-54329}
    RUN=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$PGDIR"; RUN=(runuser -u postgres --); fi
    "${RUN[@]}" "$BIN/initdb" -D "$PGDIR/data" -U postgres -A trust >/dev/null
    "${RUN[@]}" "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
      -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    trap '"${RUN[@]}" "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1; rm -rf "$PGDIR"' EXIT
    export LOCKGATE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    echo "==> PostgreSQL $(basename "$(dirname "$BIN")") started for the tests on port $PORT" >&2
  elif [ -n "${CI:-}" ]; then
    echo "CI needs PostgreSQL: apt-get install postgresql (see .ci/run)" >&2; exit 1
  else
    echo "==> PostgreSQL not installed: running the SQLite half only (apt-get install postgresql for both)" >&2
  fi
fi

# -X faulthandler: a crash in native code (llama.cpp, torch) prints the Python stacks instead of only "exit 139"
"$VENV/bin/python" -X faulthandler -m pytest "$@"
