#!/usr/bin/env bash
# Private ping-pong (50 pairs, persisted and committed before delivery) with trionet on SQLite
# and on PostgreSQL, alternating, in one run: the server pinned to CPU 0, the load generator to
# CPU 1. Each PostgreSQL run gets a fresh database on the server TRIONET_TEST_POSTGRES names
# (default the local one, user postgres), dropped afterwards. Every server it starts is stopped
# by its PID. Prints one line per run: store, run, round trips/s.
#
#   scripts/bench_stores.sh [repeats (3)] [seconds (8)]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
seconds=${2:-8}
admin=${TRIONET_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
spid=""
cleanup() { [ -z "$spid" ] || kill "$spid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for rep in $(seq "$repeats"); do
  for store in sqlite postgresql; do
    port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    db=""
    if [ "$store" = postgresql ]; then
      db="trionet_bench_$$_$rep"
      psql -q "$admin" -c "CREATE DATABASE $db"
      url="${admin%/*}/$db"
    else
      url="$work/run-$rep.db"
    fi
    TRIONET_JWT_SECRET=$secret TRIONET_RATE_LIMIT=0 TRIONET_LOG_LEVEL=WARNING \
      TRIONET_DATABASE=$url taskset -c 0 .venv/bin/trionet serve --host 127.0.0.1 --port "$port" \
      > "$work/server.log" 2>&1 &
    spid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    TRIONET_JWT_SECRET=$secret taskset -c 1 .venv/bin/python scripts/loadtest.py private \
      --pairs 50 --url "http://127.0.0.1:$port" --duration "$seconds" --warmup 2 --no-progress \
      --server-pid "$spid" --json-out "$work/$store-$rep.json" >/dev/null 2>&1
    kill "$spid"; wait "$spid" 2>/dev/null || true; spid=""
    [ -z "$db" ] || psql -q "$admin" -c "DROP DATABASE $db"
    .venv/bin/python -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], round(d['round_trips_per_s']))" \
      "$work/$store-$rep.json" "$store" "$rep"
  done
done
