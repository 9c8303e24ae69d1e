#!/usr/bin/env bash
# A change to the fan-out, measured: the server before it, after it, and nginx + Nchan, alternated
# run by run in one session (about 25 minutes), then the medians.
#
#   BEFORE=/path/to/old/pushpull-server AFTER=/path/to/new/pushpull-server \
#     BENCH_PY=/path/to/python scripts/bench-before-after.sh [OUT.jsonl]
#
# Build each side in a venv of its own from a git worktree, e.g.
#   git worktree add --detach /tmp/before <commit> && python3 -m venv /tmp/before/.venv \
#     && /tmp/before/.venv/bin/pip install /tmp/before
# Rows: memory per idle connection (1,000 WebSocket, SSE, held long polls), then 1,000 WebSocket,
# SSE and long polls and 5,000 WebSocket and SSE at 10 ticks/s for 10 s, 2 rounds each.
# See scripts/bench-vs-nchan.sh for what it needs. Keep the machine otherwise idle while it runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export OUT=${1:-/tmp/pushpull-before-after.jsonl}
BENCH=${BENCH_DIR:-$HERE/../../shared/bench}
PY=${BENCH_PY:-python3}
: "${BEFORE:?BEFORE=path to the old pushpull-server}" "${AFTER:?AFTER=path to the new pushpull-server}"
: >"$OUT"
side() {  # NAME SERVER TRANSPORT N RATES
  NAME=$1 PUSHPULL_SERVER=$2 NCHAN=0 "$HERE/bench-vs-nchan.sh" "$3" "$4" 1 "$5" 10
}
for t in ws sse longpoll; do
  side after "$AFTER" "$t" 1000 0; side before "$BEFORE" "$t" 1000 0; OURS=0 "$HERE/bench-vs-nchan.sh" "$t" 1000 1 0
done
for spec in ws:1000 sse:1000 longpoll:1000 ws:5000 sse:5000; do
  t=${spec%%:*}; n=${spec##*:}
  for _ in 1 2; do
    side after "$AFTER" "$t" "$n" 10; side before "$BEFORE" "$t" "$n" 10; OURS=0 "$HERE/bench-vs-nchan.sh" "$t" "$n" 1 10 10
  done
done
"$PY" "$BENCH/rtreport.py" "$OUT"
