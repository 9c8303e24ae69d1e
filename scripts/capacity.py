#!/usr/bin/env python3
"""A capacity model for pushpull scaled out on Redis: processes, cores, memory and Redis shards for
N subscribers, per mode. Arithmetic on figures measured on this project's machine (docs/benchmarks.md,
docs/redis-hop.md) and a few stated assumptions; `--help` lists every input, and each can be changed.

    python3 scripts/capacity.py                      # the tables in docs/scaling.md
    python3 scripts/capacity.py --subscribers 50000 --tick-rate 2
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

# -- measured (this machine: 2 cores, Python 3.11, uvloop; see docs/benchmarks.md and docs/scaling.md)
KB_PER_CONNECTION = {"sse": 12.2, "ws": 6.4, "longpoll": 4.4, "poll": 4.4}
"""Server memory per open connection (PSS growth per connection at 1,000; benchmarks section 4). Poll:
a kept-alive idle connection on the same protocol as a held long poll (assumed equal to it)."""
US_PER_DELIVERY = {"sse": 7.9, "ws": 7.9, "longpoll": 29.6, "poll": 29.6}
"""Server CPU per delivered tick (push) or per request (long poll, poll), at 1,000 subscribers and
10 ticks/s (benchmarks section 4); at 200 ticks/s batching brings it to 3.6-4.5 us (section 5). A
tick's fixed cost in each process (reading it from Redis) is `US_PER_TICK_READ`, apart. Poll is
assumed to cost a long poll's immediate answer (same protocol, same one-write answer, no hold)."""
CORE_DELIVERIES = 200_000
"""What one process delivered per second with p99 under 100 ms and nothing lost: ~200,000/s (SSE and
WebSocket) at 200 ticks/s to 1,000 subscribers, using 70 % of a core (benchmarks section 5)."""
US_PER_TICK_READ = 200.0
"""Server CPU for one tick read from Redis by blocking XREAD (docs/redis-hop.md: 172 us per tick at
1,000 ticks/s over 50 symbols, 349 at 100 ticks/s, as replies batch less; 200 assumed at 500/s)."""
REDIS_US_PER_PUBLISH = 41.0
"""Redis CPU per tick published by one script call per batch, unpipelined (docs/redis-hop.md)."""
REDIS_US_PER_READER = 23.0
"""Redis CPU per tick per reading server process: 17 us measured at 6 symbols, x1.35 for 50 symbols
(the growth measured from 6 to 50 symbols with one reader). An estimate built from measured terms."""

# -- assumed
UTILISATION = 0.7
"""Share of a core each process is planned to use, for headroom against bursts."""
CORES_PER_MACHINE = 32
MEMORY_PER_MACHINE_GB = 64
PROCESS_BASE_MB = 66
"""A server process's own RSS with no client (measured: 64-66 MB on start-up)."""


@dataclass(frozen=True)
class Load:
    subscribers: int
    symbols: int
    tick_rate: float
    """Ticks per second per symbol."""
    poll_interval: float


@dataclass(frozen=True)
class Plan:
    mode: str
    work_per_s: float
    """Deliveries (push) or requests (long poll, poll) per second, all processes together."""
    processes: int
    cores: float
    memory_gb: float
    redis_cores: float
    """Redis CPU, in cores: every tick published once and read by every process."""
    redis_shards: int
    machines: int
    """Server machines (`CORES_PER_MACHINE`, `MEMORY_PER_MACHINE_GB`) for the processes."""


def plan(mode: str, load: Load) -> Plan:
    """How many processes `load` takes in `mode`, and what runs out first."""
    per_subscriber = load.tick_rate  # each subscriber follows one symbol
    if mode == "poll":
        per_subscriber = 1 / load.poll_interval
    work = load.subscribers * per_subscriber
    serving_cores = work * US_PER_DELIVERY[mode] / 1e6
    publish_rate = load.symbols * load.tick_rate
    per_process_read = publish_rate * US_PER_TICK_READ / 1e6  # every process reads every tick
    by_cpu = serving_cores / max(UTILISATION - per_process_read, 1e-9)
    by_rate = work / (CORE_DELIVERIES * UTILISATION) if mode in ("sse", "ws") else 0.0
    processes = max(1, math.ceil(max(by_cpu, by_rate)))
    cores = serving_cores + processes * per_process_read
    memory_gb = (load.subscribers * KB_PER_CONNECTION[mode] / 1e6) + processes * PROCESS_BASE_MB / 1e3
    redis_cores = publish_rate * (REDIS_US_PER_PUBLISH + processes * REDIS_US_PER_READER) / 1e6
    shards = max(1, math.ceil(redis_cores / UTILISATION))  # symbols split over shards; each process reads all
    machines = max(
        math.ceil(processes / CORES_PER_MACHINE),  # a process per core
        math.ceil(memory_gb / MEMORY_PER_MACHINE_GB),
    )
    return Plan(mode, work, processes, cores, memory_gb, redis_cores, shards, machines)


def table(load: Load) -> str:
    lines = [
        f"{load.subscribers:,} subscribers, {load.symbols} symbols at {load.tick_rate:g} ticks/s each"
        f" (poll every {load.poll_interval:g} s)",
        "",
        "| mode | work/s | processes | server cores | memory | Redis cores | Redis shards | machines |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("sse", "ws", "longpoll", "poll"):
        p = plan(mode, load)
        unit = "deliveries" if mode in ("sse", "ws") else "requests"
        lines.append(
            f"| {mode} | {p.work_per_s:,.0f} {unit} | {p.processes:,} | {p.cores:,.1f} | {p.memory_gb:,.1f} GB"
            f" | {p.redis_cores:,.2f} | {p.redis_shards} | {p.machines} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, action="append", help="repeatable (default 10,000 and 1,000,000)")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--tick-rate", type=float, default=10.0, help="ticks per second per symbol (default 10)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds (default 0.5)")
    args = parser.parse_args()
    for subscribers in args.subscribers or [10_000, 1_000_000]:
        print(table(Load(subscribers, args.symbols, args.tick_rate, args.poll_interval)))
        print()


if __name__ == "__main__":
    main()
