#!/usr/bin/env bash
# Measure pushpull-server and nginx + Nchan with the same load client, alternating runs so drift cancels.
#
#   scripts/bench-vs-nchan.sh TRANSPORT SUBSCRIBERS [ROUNDS] [RATE] [DURATION]
#   e.g. scripts/bench-vs-nchan.sh sse 1000 2 10 10
#
# Needs: ../shared/bench (rtbench.py, rtreport.py, run_nchan.sh), Debian's nginx + libnginx-mod-nchan,
# and a Python with httpx websockets uvloop orjson for the load client (BENCH_PY, default python3).
# Every server is started afresh for each run (so memory per connection is comparable) and stopped
# by its PID afterwards. Results are appended as JSON lines to $OUT (default /tmp/pushpull-vs-nchan.jsonl).
set -euo pipefail
T=${1:?transport: sse|ws|longpoll|poll}; N=${2:?subscribers}; ROUNDS=${3:-2}; RATE=${4:-10}; DUR=${5:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-$HERE/../shared/bench}
PY=${BENCH_PY:-python3}
SERVER=${PUSHPULL_SERVER:-pushpull-server}
OUT=${OUT:-/tmp/pushpull-vs-nchan.jsonl}
PORT=${PORT:-8000}
case $T in ws) NSUB="ws://127.0.0.1:8090/sub?id={channel}" ;; *) NSUB="http://127.0.0.1:8090/sub?id={channel}" ;; esac
EXTRA=()
[ "$T" = poll ] && EXTRA+=(--poll-interval 0.5)

ours() {
  "$SERVER" --port "$PORT" --no-feed --publish-token T --symbols RELIANCE >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  "$PY" "$BENCH/rtbench.py" -t "$T" -n "$N" --rates "$RATE" --duration "$DUR" --procs 2 \
    --preset pushpull --base "http://127.0.0.1:$PORT" --channel RELIANCE --token T --server-pid "$pid" \
    --ts-field '' --label "pushpull-$T-$N" --out "$OUT" "${EXTRA[@]}" >/dev/null
  kill "$pid"; wait "$pid" || true
}

nchan() {
  "$BENCH/run_nchan.sh" start >/dev/null
  "$PY" "$BENCH/rtbench.py" -t "$T" -n "$N" --rates "$RATE" --duration "$DUR" --procs 2 \
    --sub-url "$NSUB" --pub-url 'http://127.0.0.1:8090/pub?id={channel}' \
    --server-pid "$("$BENCH/run_nchan.sh" pid)" --label "nchan-$T-$N" --out "$OUT" "${EXTRA[@]}" >/dev/null
  "$BENCH/run_nchan.sh" stop >/dev/null
}

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS: pushpull $T x$N" >&2; ours
  echo "round $round/$ROUNDS: nchan $T x$N" >&2; nchan
done
"$PY" "$BENCH/rtreport.py" "$OUT"
