#!/usr/bin/env bash
# Measure pushpull-server and nginx + Nchan with the same load client, alternating runs so drift cancels.
#
#   scripts/bench-vs-nchan.sh TRANSPORT SUBSCRIBERS [ROUNDS] [RATES] [SECONDS]
#   e.g. scripts/bench-vs-nchan.sh sse 1000 2 10 10          # 10 ticks/s for 10 s, 2 rounds
#        scripts/bench-vs-nchan.sh sse 1000 1 0               # idle: memory per open connection
#        scripts/bench-vs-nchan.sh ws 1000 1 20,50,100,200 5  # sweep: highest rate with p99 <= 100 ms
#
# Needs: ../shared/bench (rtbench.py, rtreport.py, run_nchan.sh), Debian's nginx + libnginx-mod-nchan,
# and a Python with httpx websockets uvloop orjson for the load client (BENCH_PY, default python3).
# Every server is started afresh for each run (so memory per connection is comparable) and stopped
# by its PID afterwards. Results are appended as JSON lines to $OUT (default /tmp/pushpull-vs-nchan.jsonl);
# labels are pushpull-/nchan-TRANSPORT-N, plus -idle or -sweep. NAME=before (say) labels our runs before-...
# instead, e.g. for a build of an older commit given as PUSHPULL_SERVER; NCHAN=0 or OURS=0 skips those runs.
# SERVER_ARGS adds flags to our server (e.g. "--workers 2"); REDIS=1 starts a fresh redis-server (no
# persistence, port REDIS_PORT, default 6399) for each of our runs, points --broker at it and stops it after.
set -euo pipefail
T=${1:?transport: sse|ws|longpoll|poll}; N=${2:?subscribers}; ROUNDS=${3:-2}; RATES=${4:-10}; DUR=${5:-10}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-$HERE/../shared/bench}
PY=${BENCH_PY:-python3}
SERVER=${PUSHPULL_SERVER:-pushpull-server}
OUT=${OUT:-/tmp/pushpull-vs-nchan.jsonl}
PORT=${PORT:-8000}
NAME=${NAME:-pushpull}
NCHAN=${NCHAN:-1}
OURS=${OURS:-1}
REDIS=${REDIS:-0}
REDIS_PORT=${REDIS_PORT:-6399}
read -r -a EXTRA <<< "${SERVER_ARGS:-}"
case $T in ws) NSUB="ws://127.0.0.1:8090/sub?id={channel}" ;; *) NSUB="http://127.0.0.1:8090/sub?id={channel}" ;; esac
LOAD=(--rates "$RATES" --duration "$DUR")
SUFFIX=""
if [ "$RATES" = 0 ]; then
  LOAD=(--rates 0 --messages 0); SUFFIX="-idle"
elif [[ "$RATES" == *,* ]]; then
  LOAD+=(--stop-p99-ms 100); SUFFIX="-sweep"
fi
[ "$T" = poll ] && LOAD+=(--poll-interval 0.5)

ours() {
  local redis_pid=""
  if [ "$REDIS" != 0 ]; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    EXTRA+=(--broker "redis://127.0.0.1:$REDIS_PORT/0")
  fi
  "$SERVER" --port "$PORT" --no-feed --publish-token T --symbols RELIANCE "${EXTRA[@]}" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  "$PY" "$BENCH/rtbench.py" -t "$T" -n "$N" --procs 2 "${LOAD[@]}" \
    --preset pushpull --base "http://127.0.0.1:$PORT" --channel RELIANCE --token T --server-pid "$pid" \
    --ts-field '' --label "$NAME-$T-$N$SUFFIX" --out "$OUT" >/dev/null
  kill "$pid"; wait "$pid" || true
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid"; wait "$redis_pid" || true
    unset 'EXTRA[${#EXTRA[@]}-1]'; unset 'EXTRA[${#EXTRA[@]}-1]'
  fi
}

nchan() {
  "$BENCH/run_nchan.sh" start >/dev/null
  "$PY" "$BENCH/rtbench.py" -t "$T" -n "$N" --procs 2 "${LOAD[@]}" \
    --sub-url "$NSUB" --pub-url 'http://127.0.0.1:8090/pub?id={channel}' \
    --server-pid "$("$BENCH/run_nchan.sh" pid)" --label "nchan-$T-$N$SUFFIX" --out "$OUT" >/dev/null
  "$BENCH/run_nchan.sh" stop >/dev/null
}

for round in $(seq "$ROUNDS"); do
  if [ "$OURS" != 0 ]; then echo "round $round/$ROUNDS: $NAME $T x$N rates $RATES" >&2; ours; fi
  if [ "$NCHAN" != 0 ]; then echo "round $round/$ROUNDS: nchan $T x$N rates $RATES" >&2; nchan; fi
done
