#!/usr/bin/env bash
# trionet against the reference peer (websockets + uvloop), side by side in one run.
#
# Each server runs pinned to CPU 0 (`taskset -c 0`), fresh for every scenario, with a
# temporary database, TRIONET_RATE_LIMIT=0 and a random JWT secret and API key; the load
# generator runs pinned to CPU 1. Scenarios: fan-out 10x100 at full speed (coalesce=1 on
# trionet), fan-out 10x100 at 50 msg/s per group, private ping-pong with 50 pairs, 5,000 idle
# connections. Prints both results and their ratio, then one JSON line. Every process it
# starts is stopped by its PID.
#
#   scripts/bench.sh                      # 10 s per scenario
#   scripts/bench.sh --duration 30 --repeat 3 --only fanout,private
#
# Needs the bench extra: .venv/bin/pip install -e '.[bench]'
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -c 'import picows, psutil, rich, uvloop, websockets' 2>/dev/null || {
    echo "bench: install the bench extra first: $PY -m pip install -e '.[bench]'" >&2
    exit 2
}
# 5,000 idle connections need as many descriptors in the server and in the load generator:
# raise the soft limit as far as the hard limit allows (children inherit it).
want=20000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$want" ]; then
    ulimit -Sn "$want"
fi
echo "ulimit -n: soft $(ulimit -Sn), hard $hard" >&2
exec "$PY" scripts/loadtest.py bench "$@"
