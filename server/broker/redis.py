"""The Redis broker: several server processes share one Redis, and every tick reaches them all.

What lives in Redis (keys under `pushpull:`):
- `epoch`: the history's name. Kept across server restarts; a Redis that lost its data gets a new
  one, which is how clients learn that their cursors no longer resolve.
- `seq:SYMBOL`: the last `seq` given out, counted atomically (`INCR`) by the publish script.
- `ticks:SYMBOL`: a stream capped at `--history` entries; entry ID `<seq>-0`, fields price, time,
  epoch. It is the history a new process loads, the latest tick readable without subscribing, and
  the way ticks travel.
- `lease:NAME`: which process runs the feed (or sends webhooks), set-if-absent with an expiry.

How ticks reach every process: each process blocks in `XREAD` on every symbol's stream from the
last ID it has seen (not pub/sub). Catching up after a broken connection is then the same read,
from the same IDs, losing nothing the streams still hold, and ticks published while a reader is
busy come back batched in one reply. docs/redis-hop.md has the figures behind the choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from server.broker import BrokerUnavailable, LeaseLost, TickSink, public_url
from server.broker.memory import new_epoch
from server.schema import Tick, publish_time

__all__ = ["LEASE_TTL", "RedisBroker", "reachable"]

logger = logging.getLogger("pushpull.broker")

PREFIX = "pushpull:"
LEASE_TTL = 2.0
"""Seconds a lease lasts without renewal: a dead holder is replaced within this plus `LEASE_RETRY`."""
LEASE_RENEW = 0.5
LEASE_RETRY = 0.5
READ_BLOCK_MS = 1000
"""A blocking read returns at least this often, so a Redis that stopped answering is noticed."""
COMMAND_TIMEOUT = 3.0
RECONNECT_FIRST, RECONNECT_CAP = 0.1, 2.0
DELIVERY_WAIT = 2.0
"""How long `publish` waits for its ticks to come back through this process's own reader."""

# KEYS: epoch, lease, then (seq, stream) per item. ARGV: candidate epoch, maxlen, ts, lease token
# ("" = none), mode ("all" | "opening"), then one price per item. Returns {epoch, seq...}, 0 for an
# opening skipped; an error "LEASE" when the lease is not held by the token.
PUBLISH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return redis.error_reply('LEASE')
end
local out = {epoch}
for i = 1, (#KEYS - 2) / 2 do
  local seq_key, stream = KEYS[2 * i + 1], KEYS[2 * i + 2]
  if ARGV[5] == 'opening' and redis.call('EXISTS', seq_key) == 1 then
    out[i + 1] = 0
  else
    local seq = redis.call('INCR', seq_key)
    redis.call('XADD', stream, 'MAXLEN', ARGV[2], seq .. '-0', 'p', ARGV[5 + i], 't', ARGV[3], 'e', epoch)
    out[i + 1] = seq
  end
end
return out
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def reachable(url: str) -> str | None:
    """None if a Redis answers PING at `url`, else one line saying why: checked before serving,
    so a wrong URL is an error at start-up rather than a server that never gets a tick."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT)
    try:
        client.ping()
    except RedisError as exc:
        return f"cannot reach Redis at {public_url(url)}: {exc}"
    finally:
        client.close()
    return None


def _client(url: str, timeout: float | None, retries: int) -> aioredis.Redis:
    """A client that retries only a refused or broken connection, `retries` times, never a timeout
    (a publish that timed out may have run). The reader retries nothing: a blocking read retried on a
    new connection (a restarted, emptied Redis) would read from IDs of a history that is gone."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), retries, supported_errors=(RedisConnectionError,)),
        client_name=f"pushpull:{socket.gethostname()}:{os.getpid()}",
    )


Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as redis-py returns them (bytes, since the client does not decode)."""


class _HistoryLost(Exception):
    """A read met an entry of another epoch: start over from the new history."""


class RedisBroker:
    """`seq`, history and the epoch in Redis; every process follows every symbol's stream."""

    def __init__(self, url: str, symbols: Sequence[str], history: int) -> None:
        self.url = url
        self.name = public_url(url)
        self._symbols = tuple(symbols)
        self._history = history
        self._streams = {f"{PREFIX}ticks:{s}".encode(): s for s in self._symbols}
        self._redis = _client(url, COMMAND_TIMEOUT, retries=1)
        self._reader = _client(url, READ_BLOCK_MS / 1000 + COMMAND_TIMEOUT, retries=0)
        self._publish = self._redis.register_script(PUBLISH)
        self._renew = self._redis.register_script(RENEW)
        self._release = self._redis.register_script(RELEASE)
        self._epoch = ""
        self._positions: dict[bytes, bytes] = dict.fromkeys(self._streams, b"0-0")
        self._seen: dict[str, int] = {}
        self._last_price: dict[str, float] = {}
        self._waiters: list[tuple[str, dict[str, int], asyncio.Future[None]]] = []
        self._sink: TickSink | None = None
        self._follower: asyncio.Task[None] | None = None
        self._token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held: set[str] = set()
        self._problem: str | None = None
        self._outage_began = 0.0

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def problem(self) -> str | None:
        return self._problem

    @property
    def client(self) -> aioredis.Redis:
        """The command connection pool, for what else the processes share (webhook registrations)."""
        return self._redis

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    # -- start and stop --------------------------------------------------------------------------

    async def start(self, sink: TickSink) -> None:
        """Name the epoch, load every symbol's history into `sink`, then follow the streams."""
        self._sink = sink
        try:
            await self._sync_epoch()
            for stream, symbol in self._streams.items():
                newest_first = cast(Entries, await self._redis.xrevrange(stream, count=self._history))
                for entry_id, fields in reversed(newest_first):
                    self._take(symbol, entry_id, fields)
                    self._positions[stream] = entry_id
        except RedisError as exc:
            raise BrokerUnavailable(f"cannot reach Redis at {self.name}: {exc}") from None
        self._follower = asyncio.create_task(self._follow(), name="redis-reader")

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._sink = None
        for client in (self._reader, self._redis):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, items: Sequence[tuple[str, float]], *, lease: str | None = None) -> list[Tick]:
        return await self._run_publish(items, "all", lease)

    async def open(self, items: Sequence[tuple[str, float]]) -> list[Tick]:
        return await self._run_publish(items, "opening", None)

    async def _run_publish(
        self, items: Sequence[tuple[str, float]], mode: str, lease: str | None, *, wait: bool = True
    ) -> list[Tick]:
        if lease is not None and lease not in self._held:
            raise LeaseLost(lease)
        keys: list[str] = [f"{PREFIX}epoch", f"{PREFIX}lease:{lease or ''}"]
        for symbol, _ in items:
            keys += [f"{PREFIX}seq:{symbol}", f"{PREFIX}ticks:{symbol}"]
        now = publish_time()
        args: list[Any] = [new_epoch(), self._history, repr(now), self._token if lease else "", mode]
        args += [repr(price) for _, price in items]
        try:
            reply = await self._publish(keys=keys, args=args)
        except ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(lease or "") from None
            raise BrokerUnavailable(f"Redis refused the publish: {exc}") from None
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis at {self.name} is unreachable: {exc}") from None
        epoch = reply[0].decode()
        ticks = [
            Tick(symbol=symbol, seq=int(seq), price=price, ts=now, epoch=epoch)
            for (symbol, price), seq in zip(items, reply[1:], strict=True)
            if int(seq) > 0
        ]
        if ticks and wait:
            await self._delivered(epoch, {t.symbol: t.seq for t in ticks})
        return ticks

    async def _delivered(self, epoch: str, wanted: dict[str, int]) -> None:
        """Wait until this process's reader has handed these ticks to the hub, so that a client
        asking this process right after a publish sees it (read-your-writes)."""
        if self._reached(epoch, wanted):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((epoch, wanted, waiter))
        try:
            await asyncio.wait_for(waiter, DELIVERY_WAIT)
        except TimeoutError:
            logger.warning("published ticks took over %g s to come back from Redis", DELIVERY_WAIT)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove((epoch, wanted, waiter))

    def _reached(self, epoch: str, wanted: dict[str, int]) -> bool:
        if epoch != self._epoch:  # that history is gone (or not yet followed): nothing to wait for
            return True
        return all(self._seen.get(symbol, 0) >= seq for symbol, seq in wanted.items())

    # -- following the streams -------------------------------------------------------------------

    async def _sync_epoch(self) -> None:
        """Learn the epoch (creating it in an empty Redis). A changed one means Redis lost the
        history: read every stream from its start, and give each symbol its opening tick again."""
        reply = await self._publish(keys=[f"{PREFIX}epoch", f"{PREFIX}lease:"], args=[new_epoch(), 1, "0", "", "all"])
        epoch = reply[0].decode()
        if epoch == self._epoch:
            return
        had_history = bool(self._epoch)
        self._epoch = epoch
        self._positions = dict.fromkeys(self._streams, b"0-0")
        self._seen.clear()
        if had_history:
            logger.warning("Redis lost the tick history; it is now epoch %s (clients get a gap)", epoch)
            if self._last_price:
                await self._run_publish(list(self._last_price.items()), "opening", None, wait=False)

    def _take(self, symbol: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        epoch = fields[b"e"].decode()
        if epoch != self._epoch:
            raise _HistoryLost(epoch)
        seq = int(entry_id.partition(b"-")[0])
        price = float(fields[b"p"])
        tick = Tick.model_construct(symbol=symbol, seq=seq, price=price, ts=float(fields[b"t"]), epoch=epoch)
        self._seen[symbol] = seq
        self._last_price[symbol] = price
        if self._sink is not None:
            self._sink(tick)

    async def _follow(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            try:
                await self._sync_epoch()
                self._healthy()
                while True:
                    positions = cast(Any, self._positions)  # redis-py's stubs want a wider dict
                    reply = cast(list[tuple[bytes, Entries]], await self._reader.xread(positions, block=READ_BLOCK_MS))
                    self._healthy()
                    delay = RECONNECT_FIRST
                    for stream, entries in reply:
                        symbol = self._streams[stream]
                        for entry_id, fields in entries:
                            self._take(symbol, entry_id, fields)
                            self._positions[stream] = entry_id
                    self._wake_publishers()
            except _HistoryLost:
                continue
            except (RedisError, OSError) as exc:
                self._unhealthy(exc)
                await asyncio.sleep(delay)
                delay = min(RECONNECT_CAP, delay * 2)

    def _wake_publishers(self) -> None:
        for epoch, wanted, waiter in self._waiters:
            if not waiter.done() and (epoch != self._epoch or self._reached(epoch, wanted)):
                waiter.set_result(None)

    def _healthy(self) -> None:
        if self._problem is not None:
            logger.warning(
                "Redis at %s is back after %.1f s; following the streams again",
                self.name,
                time.monotonic() - self._outage_began,
            )
            self._problem = None

    def _unhealthy(self, exc: BaseException) -> None:
        """One warning per outage, not one per retry."""
        if self._problem is None:
            self._outage_began = time.monotonic()
            logger.warning("lost Redis at %s (%s); reconnecting with backoff", self.name, exc or type(exc).__name__)
        self._problem = f"Redis at {self.name} is unreachable: {exc or type(exc).__name__}"

    # -- leases ----------------------------------------------------------------------------------

    async def exclusive(self, lease: str, work: Callable[[], Awaitable[None]]) -> None:
        key = f"{PREFIX}lease:{lease}"
        ttl_ms = int(LEASE_TTL * 1000)
        while True:
            try:
                acquired = await self._redis.set(key, self._token, nx=True, px=ttl_ms)
            except RedisError:
                acquired = False
            if not acquired:
                await asyncio.sleep(LEASE_RETRY)
                continue
            logger.info("this process now holds the %s lease", lease)
            self._held.add(lease)
            task = asyncio.ensure_future(work())
            renewed_at = time.monotonic()
            try:
                while not task.done():
                    await asyncio.wait([task], timeout=LEASE_RENEW)
                    if task.done():
                        break
                    try:
                        still_held = bool(await self._renew(keys=[key], args=[self._token, ttl_ms]))
                        renewed_at = time.monotonic()
                    except RedisError:  # unreachable: the lease is ours until it would have expired
                        still_held = time.monotonic() - renewed_at < LEASE_TTL
                    if not still_held:
                        logger.warning("this process lost the %s lease", lease)
                        break
            finally:
                self._held.discard(lease)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                with contextlib.suppress(RedisError, OSError):
                    await self._release(keys=[key], args=[self._token])
            if task.cancelled():
                continue  # lost the lease: try for it again like any other process
            if task.exception() is None:
                return
            logger.error("the %s work failed; handing its lease on", lease, exc_info=task.exception())
            await asyncio.sleep(LEASE_TTL)
