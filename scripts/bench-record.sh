#!/usr/bin/env bash
# Every pushpull-vs-Nchan run behind docs/benchmarks.md, in one go (about 25 minutes), then the medians.
#
#   BENCH_PY=/path/to/python scripts/bench-record.sh [OUT.jsonl]
#
# See scripts/bench-vs-nchan.sh for what it needs. Keep the machine otherwise idle while it runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export OUT=${1:-/tmp/pushpull-record.jsonl}
BENCH=${BENCH_DIR:-$HERE/../../shared/bench}
PY=${BENCH_PY:-python3}
: >"$OUT"
for t in sse ws longpoll; do "$HERE/bench-vs-nchan.sh" "$t" 1000 1 0; done           # memory per idle connection
for n in 100 1000 5000; do
  for t in sse ws; do "$HERE/bench-vs-nchan.sh" "$t" "$n" 2 10 10; done              # fan-out at 10 ticks/s
done
"$HERE/bench-vs-nchan.sh" longpoll 1000 2 10 10                                     # 1,000 waiting long polls
for t in sse ws; do "$HERE/bench-vs-nchan.sh" "$t" 1000 1 20,50,70,100,150,200,300,400 5; done  # highest rate, p99 <= 100 ms
"$PY" "$BENCH/rtreport.py" "$OUT"
