#!/usr/bin/env bash
# What the gate (server/gate.py) costs: the same load against the server as it was before the
# gate (BASE, default 4165512) and as it is now (this checkout), alternated ROUNDS times so that
# drift cancels; medians per label from ../shared/bench/rtreport.py.
#
#   scripts/gate-cost.sh [ROUNDS]        (default 3; TYPES="sse ws longpoll poll" to choose)
#
# Loopback only; each server is started on port 8790 and ended by its PID after its run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BASE=${BASE:-4165512}
TYPES=${TYPES:-"sse ws longpoll poll"}
PY=${BENCH_PY:-$PWD/.venv/bin/python}
BENCH=${BENCH:-$PWD/../shared/bench}
OUT=${OUT:-/tmp/gate-cost.jsonl}
: >"$OUT"
before=$(mktemp -d)
git worktree add -q --detach "$before/tree" "$BASE"
trap 'git worktree remove --force "$before/tree"; rm -rf "$before"' EXIT

run() { # label checkout type clients [rtbench options...]
    local label=$1 tree=$2 type=$3 clients=$4
    shift 4
    (cd "$tree" && exec "$PY" -m server --port 8790 --no-feed --publish-token T --symbols RELIANCE) \
        >"$before/$label.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:8790/healthz >/dev/null && break; sleep 0.1; done
    "$PY" "$BENCH/rtbench.py" --preset pushpull --base http://127.0.0.1:8790 --channel RELIANCE --token T \
        --server-pid "$pid" --procs 2 -t "$type" -n "$clients" --rates 10 --duration 8 \
        --label "$label-$type" --out "$OUT" "$@" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    sleep 1
}

for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    for which in before gate; do
        tree=$PWD
        [ "$which" = before ] && tree=$before/tree
        for type in $TYPES; do
            case $type in
                poll) run "$which" "$tree" poll 500 --poll-interval 0.1 ;;
                *) run "$which" "$tree" "$type" 1000 ;;
            esac
        done
    done
done
"$PY" "$BENCH/rtreport.py" "$OUT"
