#!/usr/bin/env python3
"""Redis hop: how should ticks published by one server process reach every other one?

Two ways over one Redis, both fed by the same publish script (EVALSHA: INCR a per-symbol seq,
XADD the tick to a per-symbol stream capped by MAXLEN with the explicit ID `<seq>-1`):

  A  pub/sub: the script also PUBLISHes the payload on one channel; each process SUBSCRIBEs, and
     after a broken connection re-subscribes and backfills with XRANGE from the last seq it saw.
  B  blocking XREAD: each process re-issues `XREAD BLOCK 0 STREAMS k1..kn id1..idn` with the last
     ids it saw after every reply; after a broken connection it issues the same read again.

Section 1 measures delay (receive minus publish time) and the subscriber process's CPU per tick,
section 2 the catch-up after CLIENT KILL, section 3 round trips and Redis's own throughput. The
publisher and the subscribers are separate processes. Starts its own redis-server on a free
loopback port (stopped by its PID at the end) unless --url names one; loopback only. Needs
`pip install 'redis>=5' hiredis` (not yet project dependencies). Results: docs/redis-hop.md.

    python scripts/redis-hop.py                    # ~3 minutes
    python scripts/redis-hop.py --rates 100,1000 --symbols 50 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import multiprocessing as mp
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.utils import HIREDIS_AVAILABLE

CHANNEL = b"hop:ticks"
MAXLEN = 1000
LIVE, BACKFILL = 0, 1

# KEYS: seq counter, stream. ARGV: channel ('' = no PUBLISH), symbol, price, ts, maxlen, trim ('=' or '~').
PUBLISH_LUA = """
local seq = redis.call('INCR', KEYS[1])
local payload = '{"symbol":"' .. ARGV[2] .. '","seq":' .. seq .. ',"price":' .. ARGV[3] .. ',"ts":' .. ARGV[4] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[6], ARGV[5], seq .. '-1', 'd', payload)
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], payload) end
return seq
"""


def names(n: int) -> list[str]:
    """Symbol names S00, S01, ..."""
    return [f"S{i:02d}" for i in range(n)]


def seq_key(name: str) -> bytes:
    return f"hop:seq:{name}".encode()


def stream_key(name: str) -> bytes:
    return f"hop:stream:{name}".encode()


def pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]


def cpu_seconds() -> float:
    """User + system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_client(url: str, name: str, parser: str = "auto", single: bool = False) -> aioredis.Redis:
    """A client whose broken connections raise (no silent retry), with no socket timeout (BLOCK 0)."""
    kwargs: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_timeout": None, "client_name": name}
    if parser == "python":
        kwargs["parser_class"] = _AsyncRESP3Parser  # the Connection swaps in RESP2's for protocol 2
    elif parser == "hiredis":
        kwargs["parser_class"] = _AsyncHiredisParser
    pool = aioredis.ConnectionPool.from_url(url, **kwargs)
    return aioredis.Redis(connection_pool=pool, single_connection_client=single)


async def parser_name(client: aioredis.Redis) -> str:
    """Which reply parser the client's connections use, and the RESP version."""
    conn = client.connection or await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await conn.connect()
        return f"{type(conn._parser).__name__.strip('_')} RESP{conn.protocol}"
    finally:
        if client.connection is None:
            await client.connection_pool.release(conn)


# ---------------------------------------------------------------- subscriber process


@dataclass
class SubConfig:
    url: str
    approach: str  # "A" (pub/sub) or "B" (XREAD)
    symbols: int
    parser: str
    backoff: float
    log_events: bool
    name: str


@dataclass
class Sink:
    """What a server's hub would do with a tick: keep it if it is the next seq of its symbol."""

    symbols: int
    log_events: bool
    index: dict[str, int] = field(default_factory=dict)
    last: list[int] = field(default_factory=list)
    delays: array[float] = field(default_factory=lambda: array("d"))
    received: int = 0
    dups: int = 0
    gaps: int = 0
    events: list[tuple[int, int, float, int]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {s: i for i, s in enumerate(names(self.symbols))}
        self.last = [0] * self.symbols

    def take(self, payload: bytes, now: float, via: int) -> None:
        tick = json.loads(payload)
        sym = self.index[tick["symbol"]]
        seq: int = tick["seq"]
        if self.log_events:
            self.events.append((sym, seq, now, via))
        last = self.last[sym]
        if seq <= last:
            self.dups += 1
            return
        if seq != last + 1:
            self.gaps += seq - last - 1
        self.last[sym] = seq
        self.received += 1
        self.delays.append(now - tick["ts"])


async def run_pubsub(cfg: SubConfig, sink: Sink, ready: Callable[[str], None]) -> None:
    """A: SUBSCRIBE; after a broken connection wait `backoff`, re-SUBSCRIBE, then XRANGE the gap."""
    syms = names(cfg.symbols)
    client = make_client(cfg.url, f"{cfg.name}-pubsub", cfg.parser)
    side = make_client(cfg.url, f"{cfg.name}-side", cfg.parser)  # XRANGE needs a non-subscribed connection
    await side.ping()
    first = True
    try:
        while True:
            ps = client.pubsub()
            try:
                await ps.subscribe(CHANNEL)
                confirm = await ps.get_message(timeout=None)  # subscribed from here on: XRANGE cannot miss
                assert confirm is not None and confirm["type"] == "subscribe", confirm
                if first:
                    ready(await parser_name(side))
                    first = False
                else:
                    sink.marks.setdefault("t_resumed", time.time())
                    await backfill(side, syms, sink)
                    sink.marks.setdefault("t_backfilled", time.time())
                while True:
                    msg = await ps.get_message(timeout=None)
                    now = time.time()
                    if msg is not None and msg["type"] == "message":
                        sink.take(msg["data"], now, LIVE)
            except RedisConnectionError:
                sink.marks.setdefault("t_error", time.time())
                await asyncio.sleep(cfg.backoff)
            finally:
                with contextlib.suppress(Exception):
                    await ps.aclose()  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()
        await side.aclose()


async def backfill(side: aioredis.Redis, syms: list[str], sink: Sink) -> None:
    """Every entry after the last seq seen, per symbol, in one pipelined round trip."""
    pipe = side.pipeline(transaction=False)
    for i, s in enumerate(syms):
        pipe.xrange(stream_key(s), min=f"({sink.last[i]}-1" if sink.last[i] else "-", max="+")
    replies = await pipe.execute()
    now = time.time()
    for entries in replies:
        for _id, fields in entries:
            sink.take(fields[b"d"], now, BACKFILL)


async def run_xread(cfg: SubConfig, sink: Sink, ready: Callable[[str], None]) -> None:
    """B: XREAD BLOCK 0 from the last ids; after a broken connection wait `backoff` and read again."""
    keys = [stream_key(s) for s in names(cfg.symbols)]
    ids: dict[bytes, bytes | str] = {k: "0-0" for k in keys}
    reader = make_client(cfg.url, f"{cfg.name}-reader", cfg.parser, single=True)
    try:
        await reader.ping()
        ready(await parser_name(reader))
        while True:
            try:
                reply: Any = await reader.xread(ids, block=0)  # type: ignore[arg-type]
            except RedisConnectionError:
                sink.marks.setdefault("t_error", time.time())
                await asyncio.sleep(cfg.backoff)
                sink.marks.setdefault("t_resumed", time.time())
                continue
            now = time.time()
            for key, entries in reply.items() if isinstance(reply, dict) else reply:
                for _id, fields in entries:
                    sink.take(fields[b"d"], now, LIVE)
                ids[key] = entries[-1][0]
    finally:
        await reader.aclose()


def subscriber(cfg: SubConfig, pipe: Pipe) -> None:
    """Process entry: read until the parent says stop, then send back what was received."""
    asyncio.run(_subscriber(cfg, pipe))


async def _subscriber(cfg: SubConfig, pipe: Pipe) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(pipe.fileno(), stop.set)  # no polling: the parent's "stop" wakes the loop
    sink = Sink(cfg.symbols, cfg.log_events)
    started: list[float] = []

    def ready(parser: str) -> None:
        started.append(cpu_seconds())
        pipe.send(("ready", parser))

    run = run_pubsub if cfg.approach == "A" else run_xread
    task = asyncio.create_task(run(cfg, sink, ready))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    cpu = cpu_seconds() - (started[0] if started else 0.0)
    loop.remove_reader(pipe.fileno())
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    pipe.send(
        {
            "received": sink.received,
            "dups": sink.dups,
            "gaps": sink.gaps,
            "cpu": cpu,
            "delays": sink.delays.tobytes(),
            "events": sink.events,
            "marks": sink.marks,
            "last": sink.last,
        }
    )


# ---------------------------------------------------------------- publisher process


@dataclass
class PubConfig:
    url: str
    approach: str
    symbols: int
    rate: float
    duration: float


def publisher(cfg: PubConfig, pipe: Pipe) -> None:
    """Process entry: publish `rate` ticks/s round-robin over the symbols from the start time sent."""
    asyncio.run(_publisher(cfg, pipe))


async def _publisher(cfg: PubConfig, pipe: Pipe) -> None:
    client = make_client(cfg.url, "hop-publisher")
    sha = await client.script_load(PUBLISH_LUA)
    syms = names(cfg.symbols)
    channel = CHANNEL if cfg.approach == "A" else b""
    pipe.send(("ready", ""))
    start_at: float = pipe.recv()
    total = int(cfg.rate * cfg.duration)
    rtts = array("d")
    behind = 0.0
    for i in range(total):
        due = start_at + i / cfg.rate
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            behind = max(behind, -wait)
        s = syms[i % len(syms)]
        t0 = time.time()
        await client.evalsha(sha, 2, seq_key(s), stream_key(s), channel, s, "1312.45", f"{t0:.6f}", MAXLEN, "=")
        rtts.append(time.time() - t0)
    await client.aclose()
    pipe.send({"published": total, "behind": behind, "rtts": rtts.tobytes()})


# ---------------------------------------------------------------- orchestration (parent)


@dataclass
class Ctx:
    url: str
    args: argparse.Namespace
    sync: redis.Redis
    redis_idle: float = 0.0  # redis-server CPU seconds per second with no load
    sha: str = ""


def recv(pipe: Pipe, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise TimeoutError(f"no answer from {what} in {timeout:.0f} s")
    return pipe.recv()


@contextlib.contextmanager
def processes() -> Iterator[list[BaseProcess]]:
    """Children started in the block are joined, or terminated by their own handle, at its end."""
    started: list[BaseProcess] = []
    try:
        yield started
    finally:
        for p in started:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(2)


def start(started: list[BaseProcess], target: Callable[..., None], cfg: object) -> Pipe:
    spawn = mp.get_context("spawn")
    parent_end, child_end = spawn.Pipe()
    p = spawn.Process(target=target, args=(cfg, child_end), daemon=True)
    p.start()
    started.append(p)
    return parent_end


def fresh(ctx: Ctx) -> None:
    ctx.sync.flushall()
    ctx.sync.config_resetstat()
    ctx.sha = str(ctx.sync.script_load(PUBLISH_LUA))


def redis_cpu(ctx: Ctx) -> float:
    """redis-server's own CPU seconds (INFO cpu: its getrusage, in microseconds)."""
    info = ctx.sync.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Trial:
    """One run: publisher + subscribers, optionally a CLIENT KILL partway."""

    subs: list[dict[str, Any]]
    pub: dict[str, Any]
    parsers: list[str]
    redis_cpu: float
    window: float
    kill_at: float = 0.0
    target: list[int] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)


def trial(
    ctx: Ctx, approach: str, nsubs: int, rate: float, duration: float, parser: str, kill_after: float | None = None
) -> Trial:
    a = ctx.args
    fresh(ctx)
    syms = names(a.symbols)
    with processes() as started:
        sub_pipes = [
            start(
                started,
                subscriber,
                SubConfig(ctx.url, approach, a.symbols, parser, a.backoff, kill_after is not None, f"hop-sub{i}"),
            )
            for i in range(nsubs)
        ]
        parsers = [recv(p, 20, "a subscriber")[1] for p in sub_pipes]
        pub_pipe = start(started, publisher, PubConfig(ctx.url, approach, a.symbols, rate, duration))
        recv(pub_pipe, 20, "the publisher")
        start_at = time.time() + 0.2
        pub_pipe.send(start_at)
        cpu0, w0 = redis_cpu(ctx), time.time()
        kill_at, target = 0.0, list[int]()
        if kill_after is not None:
            time.sleep(max(0.0, start_at + kill_after - time.time()))
            kill_at, target = kill(ctx, approach, syms)
        pub = recv(pub_pipe, duration + 30, "the publisher")
        cpu1, w1 = redis_cpu(ctx), time.time()
        time.sleep(0.3 if kill_after is None else 0.5)  # let the subscribers drain (and catch up)
        heads = [int(x or 0) for x in ctx.sync.mget([seq_key(s) for s in syms])]
        for p in sub_pipes:
            p.send("stop")
        subs = [recv(p, 20, "a subscriber") for p in sub_pipes]
    return Trial(subs, pub, parsers, cpu1 - cpu0, w1 - w0, kill_at, target, heads)


def kill(ctx: Ctx, approach: str, syms: list[str]) -> tuple[float, list[int]]:
    """Break the subscriber's reading connection; the heads of the streams at that instant (MULTI)."""
    if approach == "A":
        how = ["TYPE", "pubsub"]
    else:
        ids = [c["id"] for c in ctx.sync.client_list() if c.get("name") == "hop-sub0-reader"]
        assert len(ids) == 1, f"expected one reading connection, found {ids}"
        how = ["ID", ids[0]]
    pipe = ctx.sync.pipeline(transaction=True)
    pipe.mget([seq_key(s) for s in syms])
    pipe.execute_command("CLIENT", "KILL", *how)  # type: ignore[no-untyped-call]
    t = time.time()
    heads, killed = pipe.execute()
    assert killed == 1, f"CLIENT KILL {how} killed {killed}"
    return t, [int(x or 0) for x in heads]


def delay_row(t: Trial, idle: float) -> dict[str, float]:
    """Figures of one delay run (delays pooled over the subscribers)."""
    delays = sorted(d for s in t.subs for d in array("d", s["delays"]))
    published = t.pub["published"]
    received = sum(s["received"] for s in t.subs)
    rtts = sorted(array("d", t.pub["rtts"]))
    return {
        "p50": pct(delays, 0.5) * 1e3,
        "p99": pct(delays, 0.99) * 1e3,
        "max": (delays[-1] if delays else 0.0) * 1e3,
        "sub_us": 1e6 * sum(s["cpu"] for s in t.subs) / max(1, received),
        "redis_us": 1e6 * (t.redis_cpu - idle * t.window) / max(1, published),
        "redis_raw_us": 1e6 * t.redis_cpu / max(1, published),
        "pub_rtt_us": pct(rtts, 0.5) * 1e6,
        "missing": len(t.subs) * published - received,
        "dups": sum(s["dups"] for s in t.subs),
        "behind_ms": t.pub["behind"] * 1e3,
    }


def catchup_row(t: Trial) -> dict[str, float]:
    """Loss and catch-up time of one run with a CLIENT KILL (one subscriber)."""
    s = t.subs[0]
    events: list[tuple[int, int, float, int]] = s["events"]
    marks: dict[str, float] = s["marks"]
    total = sum(t.heads)
    seen_all = {(sym, seq) for sym, seq, _, _ in events}
    seen_live = {(sym, seq) for sym, seq, _, via in events if via == LIVE}
    # caught up: after reconnecting, every seq up to the heads at the kill seen (and, since nothing
    # is lost, everything after them follows)
    resumed_at = marks.get("t_resumed", float("inf"))
    nsym = len(t.heads)
    contiguous = [0] * nsym
    have: list[set[int]] = [set() for _ in range(nsym)]
    caught = float("nan")
    for sym, seq, now, _ in events:
        have[sym].add(seq)
        while contiguous[sym] + 1 in have[sym]:
            contiguous[sym] += 1
        if now >= resumed_at and all(c >= h for c, h in zip(contiguous, t.target, strict=True)):
            caught = now
            break
    if len(seen_all) < total:
        caught = float("nan")
    resumed = min((now for _, _, now, via in events if via == LIVE and now >= resumed_at), default=0)
    return {
        "lost_live_only": total - len(seen_live),
        "lost": total - len(seen_all),
        "detect_ms": (marks.get("t_error", float("nan")) - t.kill_at) * 1e3,
        "resumed_ms": (resumed - t.kill_at) * 1e3 if resumed else float("nan"),
        "caught_ms": (caught - t.kill_at) * 1e3,
        "dups": s["dups"],
        "published": total,
    }


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


# ---------------------------------------------------------------- section 3: round trips, throughput


def raw_ping(url: str, n: int = 3000) -> float:
    """p50 PING round trip (us) over a plain blocking socket: loopback + Redis, no client library."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        return float("nan")
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = array("d")
        for _ in range(n):
            t0 = time.perf_counter()
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
            samples.append(time.perf_counter() - t0)
            assert reply == b"+PONG\r\n", reply
    return pct(sorted(samples), 0.5) * 1e6


async def micro(ctx: Ctx) -> dict[str, float]:
    """PING and EVALSHA round trips (sequential), then pipelined publish throughput and Redis CPU per tick."""
    a = ctx.args
    client = make_client(ctx.url, "hop-micro")
    sha = await client.script_load(PUBLISH_LUA)
    out: dict[str, float] = {}

    async def rtt(*calls: Callable[[], Awaitable[object]], n: int = 3000) -> list[float]:
        """p50 round trip (us) of each call, the calls interleaved so that drift hits all alike."""
        samples = [array("d") for _ in calls]
        for i in range(n + 100):
            for call, out_ in zip(calls, samples, strict=True):
                t0 = time.perf_counter()
                await call()
                if i >= 100:
                    out_.append(time.perf_counter() - t0)
        return [pct(sorted(s), 0.5) * 1e6 for s in samples]

    def evalsha(channel: bytes) -> Awaitable[object]:
        s = "S00"
        return client.evalsha(
            sha, 2, seq_key(s), stream_key(s), channel, s, "1312.45", f"{time.time():.6f}", MAXLEN, "="
        )

    out["ping_raw_socket_us"] = raw_ping(ctx.url)
    out["ping_us"], out["evalsha_A_us"], out["evalsha_B_us"] = await rtt(
        client.ping, lambda: evalsha(CHANNEL), lambda: evalsha(b"")
    )
    syms = names(a.symbols)
    for label, channel, trim in (("A", CHANNEL, "="), ("B", b"", "="), ("B~", b"", "~")):
        await client.flushall()
        await client.config_resetstat()
        sha = await client.script_load(PUBLISH_LUA)
        n, cpu0, t0 = 0, redis_cpu(ctx), time.perf_counter()
        while time.perf_counter() - t0 < a.throughput_seconds:
            pipe = client.pipeline(transaction=False)
            for _ in range(10):
                s = syms[n % len(syms)]
                pipe.evalsha(
                    sha, 2, seq_key(s), stream_key(s), channel, s, "1312.45", f"{time.time():.6f}", MAXLEN, trim
                )
                n += 1
            await pipe.execute()
        elapsed = time.perf_counter() - t0
        cpu = redis_cpu(ctx) - cpu0
        stats = await client.info("commandstats")
        out[f"py_pipelined_{label}_per_s"] = n / elapsed
        out[f"redis_cpu_{label}_us"] = 1e6 * cpu / n
        out[f"script_{label}_us"] = float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))
    await client.aclose()
    return out


def redis_benchmark(ctx: Ctx) -> dict[str, float]:
    """redis-benchmark (C) with pipelines of 10: Redis-bound publish script calls per second."""
    exe = shutil.which("redis-benchmark")
    parts = urlsplit(ctx.url)
    if exe is None or parts.scheme != "redis":
        return {}
    out: dict[str, float] = {}
    for label, channel in (("A", CHANNEL.decode()), ("B", "")):
        ctx.sync.flushall()
        sha = str(ctx.sync.script_load(PUBLISH_LUA))
        host, port = parts.hostname or "127.0.0.1", str(parts.port or 6379)
        cmd = [exe, "-h", host, "-p", port, "-n", str(ctx.args.benchmark_calls), "-P", "10", "-c", "4", "-q"]
        cmd += ["EVALSHA", sha, "2", seq_key("S00").decode(), stream_key("S00").decode()]
        cmd += [channel, "S00", "1312.45", "1700000000.000000", str(MAXLEN), "="]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        m = re.search(r"([\d.]+) requests per second", res.stdout.replace("\r", "\n"))
        out[f"redis_benchmark_{label}_per_s"] = float(m.group(1)) if m else float("nan")
    return out


# ---------------------------------------------------------------- main


def loopback_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return url
    host = parts.hostname or ""
    ok = host == "localhost"
    with contextlib.suppress(ValueError):
        ok = ok or ipaddress.ip_address(host).is_loopback
    if not ok:
        raise argparse.ArgumentTypeError(f"{url}: loopback addresses only (127.0.0.0/8, ::1, localhost)")
    return url


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def words(text: str) -> list[str]:
    return text.split(",")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", type=loopback_url, help="use this Redis (loopback) instead of starting one")
    p.add_argument("--symbols", type=int, default=6, help="symbols, one stream each (default 6)")
    p.add_argument("--rates", type=floats, default=[1000.0], help="total ticks/s, comma-separated (default 1000)")
    p.add_argument("--subscribers", type=ints, default=[1, 2], help="subscriber processes per run (default 1,2)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per delay run (default 10)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure, alternated A/B (default 3)")
    p.add_argument("--parsers", type=words, default=["auto"], help="auto, hiredis, python; comma-separated")
    p.add_argument("--backoff", type=float, default=0.1, help="seconds before reconnecting (default 0.1)")
    p.add_argument("--catchup-rate", type=float, help="ticks/s during the catch-up runs (default: the highest rate)")
    p.add_argument("--catchup-seconds", type=float, default=2.5, help="publishing per catch-up run (default 2.5)")
    p.add_argument("--throughput-seconds", type=float, default=1.0, help="per pipelined variant (default 1)")
    p.add_argument("--benchmark-calls", type=int, default=100_000, help="redis-benchmark calls per variant")
    p.add_argument("--sections", type=ints, default=[1, 2, 3], help="which sections to run (default 1,2,3)")
    p.add_argument("--json", help="also write every run's figures to this file")
    return p.parse_args(argv)


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """The given URL, or a redis-server of our own on a free loopback port, stopped by its PID."""
    if url:
        yield url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*cmd, "--daemonize", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def fmt(v: float, digits: int = 2) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def section1(ctx: Ctx, record: dict[str, Any]) -> None:
    """Delay and CPU per tick, A and B alternated run by run."""
    a = ctx.args
    print("\n1. delay, receive - publish time (ms); CPU per tick (us): subscriber process, redis-server")
    print("   medians over runs; subscriber CPU is per tick received, Redis's per tick published")
    print("parser  rate  subs  way   p50    p99    max   sub_us  redis_us  pub_rtt_us  missing dups")
    record["delay"] = []
    for parser in a.parsers:
        for rate in a.rates:
            for nsubs in a.subscribers:
                rows: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
                used: set[str] = set()
                for _ in range(a.runs):
                    for approach in ("A", "B"):
                        t = trial(ctx, approach, nsubs, rate, a.duration, parser)
                        rows[approach].append(delay_row(t, ctx.redis_idle))
                        used.update(t.parsers)
                for approach, rs in rows.items():
                    m = medians(rs)
                    cell = {"parser": parser, "rate": rate, "subs": nsubs, "way": approach, "used": sorted(used)}
                    record["delay"].append({**cell, "runs": rs, "median": m})
                    print(
                        f"{parser:7} {rate:5.0f} {nsubs:4}  {approach:3}"
                        f" {fmt(m['p50']):>6} {fmt(m['p99']):>6} {fmt(m['max']):>6}"
                        f" {fmt(m['sub_us'], 1):>7} {fmt(m['redis_us'], 1):>8} {fmt(m['pub_rtt_us'], 0):>10}"
                        f" {m['missing']:7.0f} {m['dups']:4.0f}"
                    )
                print(f"        parser used: {', '.join(sorted(used))}")


def section2(ctx: Ctx, record: dict[str, Any]) -> None:
    """Catch-up after CLIENT KILL; A's runs give both its figures (pub/sub alone, and with XRANGE)."""
    a = ctx.args
    rate = a.catchup_rate or max(a.rates)
    print(f"\n2. catch-up after CLIENT KILL at {rate:.0f} ticks/s, backoff {a.backoff} s (medians of {a.runs})")
    catch: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for _ in range(a.runs):
        for approach in ("A", "B"):
            t = trial(ctx, approach, 1, rate, a.catchup_seconds, a.parsers[0], kill_after=1.0)
            catch[approach].append(catchup_row(t))
    record["catchup"] = catch
    print("way                      lost  detect_ms  resumed_ms  caught_up_ms  dups")
    for label, approach, lost_key in (
        ("A pub/sub, no backfill", "A", "lost_live_only"),
        ("A pub/sub + XRANGE", "A", "lost"),
        ("B XREAD", "B", "lost"),
    ):
        m = medians(catch[approach])
        caught = float("nan") if lost_key == "lost_live_only" else m["caught_ms"]
        print(
            f"{label:24} {m[lost_key]:5.0f} {fmt(m['detect_ms'], 1):>10} {fmt(m['resumed_ms'], 1):>11}"
            f" {fmt(caught, 1):>13} {m['dups']:5.0f}"
        )


def section3(ctx: Ctx, record: dict[str, Any]) -> None:
    """Round trips, and the publish script's throughput: client-bound (Python) and Redis-bound (C)."""
    print(f"\n3. round trips (asyncio client, sequential, p50) and the publish script (medians of {ctx.args.runs})")
    runs = []
    for _ in range(ctx.args.runs):
        m3 = asyncio.run(micro(ctx))
        m3.update(redis_benchmark(ctx))
        runs.append(m3)
    m = medians(runs)
    record["micro"] = {"runs": runs, "median": m}
    for k, v in m.items():
        print(f"   {k:28} {v:12.1f}")
    for label in ("A", "B", "B~"):
        print(f"   Redis CPU-bound ceiling {label}: {1e6 / m[f'redis_cpu_{label}_us']:,.0f} ticks/s per core")


def main(argv: Sequence[str] | None = None) -> None:
    a = parse_args(argv)
    t_start = time.time()
    record: dict[str, Any] = {"args": vars(a), "hiredis_installed": HIREDIS_AVAILABLE}
    with redis_server(a.url) as url:
        sync = redis.Redis.from_url(url)
        info = sync.info("server")
        ctx = Ctx(url, a, sync)
        record["redis"] = info["redis_version"]
        record["redis_py"] = redis.__version__
        print(f"redis {info['redis_version']}, redis-py {redis.__version__}, hiredis installed: {HIREDIS_AVAILABLE}")
        cpu0 = redis_cpu(ctx)
        time.sleep(1)
        ctx.redis_idle = redis_cpu(ctx) - cpu0
        record["redis_idle_ms_per_s"] = 1e3 * ctx.redis_idle
        print(f"idle redis-server CPU: {1e3 * ctx.redis_idle:.2f} ms/s (subtracted from redis_us)")
        for n, section in ((1, section1), (2, section2), (3, section3)):
            if n in a.sections:
                section(ctx, record)
        sync.close()
    print(f"\ntotal {time.time() - t_start:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(record, f, indent=1, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
