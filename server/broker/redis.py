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
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

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
POOL_SIZE = 100
"""Connections to Redis per client (redis-py's default); past them a command waits for one."""
RECONNECT_FIRST, RECONNECT_CAP = 0.1, 2.0
DELIVERY_WAIT = 2.0
"""How long `publish` waits for its ticks to come back through this process's own reader."""

# KEYS: epoch, lease, this publish's receipt, then (seq, stream) per item. ARGV: candidate epoch,
# maxlen, ts, lease token ("" = none), mode ("all" | "opening"), then one price per item. Returns
# {epoch, seq...}, 0 for an opening skipped; an error "LEASE" when the lease is not held by the
# token. The receipt (kept `RECEIPT_MS`) makes a retried publish answer what the first did instead
# of publishing again: a reply lost with its connection is retried safely.
PUBLISH = """
local receipt = redis.call('GET', KEYS[3])
if receipt then
  return cjson.decode(receipt)
end
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return redis.error_reply('LEASE')
end
local out = {epoch}
for i = 1, (#KEYS - 3) / 2 do
  local seq_key, stream = KEYS[2 * i + 2], KEYS[2 * i + 3]
  if ARGV[5] == 'opening' and redis.call('EXISTS', seq_key) == 1 then
    out[i + 1] = 0
  else
    local seq = redis.call('INCR', seq_key)
    redis.call('XADD', stream, 'MAXLEN', ARGV[2], seq .. '-0', 'p', ARGV[5 + i], 't', ARGV[3], 'e', epoch)
    out[i + 1] = seq
  end
end
redis.call('SET', KEYS[3], cjson.encode(out), 'PX', ARGV[6 + (#KEYS - 3) / 2])
return out
"""

EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return epoch
"""
"""The epoch, created (as ARGV[1]) in a Redis that has none."""
RECEIPT_MS = 10_000
REFUSALS = (OutOfMemoryError, ReadOnlyError, NoPermissionError)
"""How Redis refuses a write while it answers (with MISCONF, a failing snapshot): shown by `/healthz`."""
REFUSAL_SHOWN = 10.0

ACQUIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""
"""Take a lease if free; already ours (a retried call whose first reply was lost) counts as taken."""

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

    try:
        client = redis.Redis.from_url(url, socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT)
    except ValueError as exc:
        return f"invalid Redis URL {public_url(url)!r}: {exc}"
    try:
        client.ping()
    except (AuthenticationError, AuthorizationError) as exc:
        return (
            f"Redis at {public_url(url)} refused us: {exc} "
            "(a password goes in the URL: redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@...)"
        )
    except ResponseError as exc:
        hint = " (a password goes in the URL: redis://:PASSWORD@HOST:PORT/DB)" if "AUTH" in str(exc) else ""
        return f"Redis at {public_url(url)} refused us: {exc}{hint}"
    except (RedisError, ValueError, OSError) as exc:
        return f"cannot reach Redis at {public_url(url)}: {exc}"
    finally:
        client.close()
    return None


def _client(url: str, timeout: float | None, retries: int) -> aioredis.Redis:
    """A client that retries a broken connection `retries` times, never a timeout. Safe for the
    commands client: what it sends is idempotent or answers the same when retried (a publish by
    its receipt, taking a lease by its token, adding a webhook by its id; a retried delete can
    answer "not found" for what its first try deleted). Not for the reader: a blocking read
    retried on a new connection (a restarted, emptied Redis) would read from IDs of a history
    that is gone, so the follower handles every failure itself.

    Its pool makes a command wait up to `COMMAND_TIMEOUT` for a free connection when all
    `POOL_SIZE` are busy: redis-py's default pool fails it at once ("Too many connections"), so
    101 requests at once needing Redis gave 503s."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=COMMAND_TIMEOUT,
        socket_timeout=timeout,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), retries, supported_errors=(RedisConnectionError,)),
        client_name=f"pushpull:{socket.gethostname()}:{os.getpid()}",
    )
    return aioredis.Redis.from_pool(pool)


Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries as redis-py returns them (bytes, since the client does not decode)."""


class RedisBroker:
    """`seq`, history and the epoch in Redis; every process follows every symbol's stream."""

    def __init__(self, url: str, symbols: Sequence[str], history: int) -> None:
        self.name = public_url(url)
        self._history = history
        self._streams = {f"{PREFIX}ticks:{s}".encode(): s for s in symbols}
        self._redis = _client(url, COMMAND_TIMEOUT, retries=1)
        self._reader = _client(url, READ_BLOCK_MS / 1000 + COMMAND_TIMEOUT, retries=0)
        self._publish = self._redis.register_script(PUBLISH)
        self._epoch_script = self._redis.register_script(EPOCH)
        self._acquire = self._redis.register_script(ACQUIRE)
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
        """Why the streams cannot be followed now (set by the follower)."""
        self._refusal: tuple[float, str] | None = None
        """When and why Redis last refused a write while it answered (out of memory, a read-only
        replica...): reported by `problem` for `REFUSAL_SHOWN` seconds."""
        self._outage_began = 0.0
        self._loaded = asyncio.Event()
        """Set once the history has been read into the sink (at start, or at the first connection)."""
        self._pending_openings: list[tuple[str, float]] = []
        """Opening ticks to publish once Redis answers (asked for while it did not)."""
        self._foreign = False
        """A read met entries of another epoch: learn the epoch again after this batch."""

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def problem(self) -> str | None:
        if self._problem is not None:
            return self._problem
        if self._refusal is not None and time.monotonic() - self._refusal[0] < REFUSAL_SHOWN:
            return self._refusal[1]
        return None

    @property
    def client(self) -> aioredis.Redis:
        """The command connection pool, for what else the processes share (webhook registrations)."""
        return self._redis

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    # -- start and stop --------------------------------------------------------------------------

    async def start(self, sink: TickSink) -> None:
        """Name the epoch, load every symbol's history into `sink`, then follow the streams.

        A Redis that does not answer now is not fatal (a worker restarted during an outage must
        come up): the process starts without history, `/healthz` says why, and the follower
        loads it when Redis answers."""
        self._sink = sink
        try:
            await asyncio.wait_for(self._connect(), 2 * COMMAND_TIMEOUT)
        except (RedisError, OSError, TimeoutError, BrokerUnavailable) as exc:
            self._unhealthy(exc)
        self._follower = asyncio.create_task(self._follow(), name="redis-reader")

    async def _connect(self) -> None:
        """On every (re)connection: learn the epoch (`_sync_epoch`); the first time, read the history."""
        await self._sync_epoch()
        if not self._loaded.is_set():
            for stream, symbol in self._streams.items():
                newest_first = cast(Entries, await self._redis.xrevrange(stream, count=self._history))
                for entry_id, fields in reversed(newest_first):
                    self._take(symbol, entry_id, fields)
                if newest_first:
                    self._positions[stream] = newest_first[0][0]
            self._loaded.set()

    async def ready(self) -> None:
        await self._loaded.wait()

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
        try:
            return await self._run_publish(items, "opening", None)
        except BrokerUnavailable:  # published by the follower once Redis answers
            self._pending_openings = list(items)
            return []

    async def _run_publish(
        self, items: Sequence[tuple[str, float]], mode: str, lease: str | None, *, wait: bool = True
    ) -> list[Tick]:
        if lease is not None and lease not in self._held:
            raise LeaseLost(lease)
        if not items:
            return []
        keys: list[str] = [f"{PREFIX}epoch", f"{PREFIX}lease:{lease or ''}", f"{PREFIX}receipt:{secrets.token_hex(8)}"]
        for symbol, _ in items:
            keys += [f"{PREFIX}seq:{symbol}", f"{PREFIX}ticks:{symbol}"]
        now = publish_time()
        args: list[Any] = [new_epoch(), self._history, repr(now), self._token if lease else "", mode]
        args += [repr(price) for _, price in items]
        args.append(RECEIPT_MS)
        try:
            reply = await self._publish(keys=keys, args=args)
        except ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(lease or "") from None
            reason = f"Redis at {self.name} refuses to publish: {exc}"
            if isinstance(exc, REFUSALS) or "MISCONF" in str(exc):
                if self._refusal is None:
                    logger.warning("%s", reason)
                self._refusal = (time.monotonic(), reason)
            raise BrokerUnavailable(reason) from None
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis at {self.name} is unreachable: {exc}") from None
        if self._refusal is not None:
            logger.warning("Redis at %s publishes again", self.name)
            self._refusal = None
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
        history: read every stream from its start, and give each symbol its opening tick again.
        Then publish the opening ticks still owed (asked for while Redis was away, or lost)."""
        reply = await self._epoch_script(keys=[f"{PREFIX}epoch"], args=[new_epoch()])
        epoch = reply.decode()
        if epoch != self._epoch:
            had_history = bool(self._epoch)
            self._epoch = epoch
            self._positions = dict.fromkeys(self._streams, b"0-0")
            self._seen.clear()
            if had_history:
                logger.warning("Redis lost the tick history; it is now epoch %s (clients get a gap)", epoch)
                self._pending_openings = list(self._last_price.items())
        if self._pending_openings:
            await self._run_publish(self._pending_openings, "opening", None, wait=False)
            self._pending_openings = []

    def _take(self, symbol: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        epoch = fields[b"e"].decode()
        if epoch != self._epoch:  # (its epoch key was lost while the streams were not): skip, then check
            if not self._foreign:
                logger.warning(
                    "skipping ticks of epoch %s in %s's stream (this process follows %s)", epoch, symbol, self._epoch
                )
            self._foreign = True
            return
        seq = int(entry_id.partition(b"-")[0])
        if seq <= self._seen.get(symbol, 0):  # (read twice: a history load cut short, then done again)
            return
        price = float(fields[b"p"])
        tick = Tick.model_construct(symbol=symbol, seq=seq, price=price, ts=float(fields[b"t"]), epoch=epoch)
        self._seen[symbol] = seq
        self._last_price[symbol] = price
        if self._sink is not None:
            self._sink(tick)

    async def _follow(self) -> None:
        """Read every stream on from the last IDs, forever; after any failure, back off and
        reconnect (`_connect`). Nothing but cancellation ends it."""
        delay = RECONNECT_FIRST
        while True:
            try:
                await self._connect()
                while True:
                    positions = cast(Any, self._positions)  # redis-py's stubs want a wider dict
                    reply = cast(list[tuple[bytes, Entries]], await self._reader.xread(positions, block=READ_BLOCK_MS))
                    self._healthy()
                    delay = RECONNECT_FIRST
                    if not reply:  # a quiet second: check that the history was not emptied meanwhile
                        await self._sync_epoch()
                        continue
                    for stream, entries in reply:
                        symbol = self._streams[stream]
                        for entry_id, fields in entries:
                            self._take(symbol, entry_id, fields)
                        self._positions[stream] = entries[-1][0]
                    self._wake_publishers()
                    if self._foreign:
                        self._foreign = False
                        await self._sync_epoch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, RedisError | OSError | TimeoutError | BrokerUnavailable):
                    logger.exception("the Redis follower failed; starting it again")
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
        """Contend for `lease` forever; run `work` while holding it (see `Broker.exclusive`).

        The lease counts as ours only until it would expire, timed from when the last renewal
        was sent: a process that cannot renew (Redis away, the process paused) stops its work
        before another can start. When the work ends, for any reason, the lease is handed back
        and contended for again."""
        key = f"{PREFIX}lease:{lease}"
        ttl_ms = int(LEASE_TTL * 1000)
        while True:
            asked = time.monotonic()
            try:
                acquired = bool(
                    await asyncio.wait_for(self._acquire(keys=[key], args=[self._token, ttl_ms]), LEASE_TTL / 2)
                )
            except (RedisError, OSError, TimeoutError):
                acquired = False
            if not acquired:
                await asyncio.sleep(LEASE_RETRY)
                continue
            logger.info("this process now holds the %s lease", lease)
            self._held.add(lease)
            task = asyncio.ensure_future(work())
            renewed_at = asked
            try:
                while not task.done():
                    await asyncio.wait([task], timeout=LEASE_RENEW)
                    if task.done():
                        break
                    sent = time.monotonic()
                    left = LEASE_TTL - (sent - renewed_at)
                    try:
                        still_held = bool(
                            await asyncio.wait_for(self._renew(keys=[key], args=[self._token, ttl_ms]), max(left, 0.01))
                        )
                        renewed_at = sent
                    except (RedisError, OSError, TimeoutError):  # unreachable: ours only until it would expire
                        still_held = time.monotonic() - renewed_at < LEASE_TTL - LEASE_RENEW
                    if not still_held:
                        logger.warning("this process lost the %s lease", lease)
                        break
            finally:
                self._held.discard(lease)
                await _stop(task, lease)
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(self._release(keys=[key], args=[self._token]), 1.0)
            if not task.cancelled() and task.exception() is not None:
                logger.error("the %s work failed; handing its lease on", lease, exc_info=task.exception())
            await asyncio.sleep(LEASE_RETRY)


async def _stop(task: asyncio.Future[None], what: str) -> None:
    """Cancel `task` and wait until it has ended, cancelling again if a cancellation was swallowed
    (on Python 3.11 `asyncio.wait_for`, inside redis-py, can drop one that lands as its command
    finishes). Never returns while it runs: the lease is not contended for again meanwhile, so one
    process never runs its work twice."""
    began = time.monotonic()
    warned = False
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.25)
        if not warned and time.monotonic() - began > 5:
            warned = True
            logger.error("the %s work is slow to stop; still cancelling it", what)
