"""The link model (issue 15): a relay on loopback that delays every byte as a real link would.

Real sockets on 127.0.0.1 only: small raw peers in the test's loop, the relay on its own thread.
Timings are medians where the story allows it; every lower bound is the model's own promise (a
relay may be late on a busy machine, never early), upper bounds are generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from tests.helpers import RunningServer, raw_peer, until
from tui.link import PROFILES, QUEUE_LIMIT, Link, LinkProfile, custom_profile

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SLACK_MS = 15.0
"""How late a median round trip may be on a busy machine."""


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes = b"ping") -> float:
    """Milliseconds from sending `message` to reading its echo."""
    started = time.perf_counter()
    writer.write(message)
    await writer.drain()
    await reader.readexactly(len(message))
    return (time.perf_counter() - started) * 1000


async def round_trips(url: str, count: int) -> list[float]:
    """`count` round trips on one connection, after one that pays the connection's set-up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    try:
        await round_trip(reader, writer)
        return [await round_trip(reader, writer) for _ in range(count)]
    finally:
        writer.close()


LinkFactory = Callable[..., Link]


@pytest.fixture
def link_factory() -> Iterator[LinkFactory]:
    """Make links (`Link`'s arguments); every one is closed when the test ends."""
    links: list[Link] = []

    def make(profile: LinkProfile, *, seed: int | None = None, queue_limit: int = QUEUE_LIMIT) -> Link:
        link = Link(profile, seed=seed, queue_limit=queue_limit)
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


# -- the profiles ------------------------------------------------------------------------------------


def test_the_named_profiles_come_fastest_first_each_with_its_source() -> None:
    assert list(PROFILES) == ["loopback", "lan", "broadband", "4g", "3g", "satellite"]
    latencies = [profile.latency_ms for profile in PROFILES.values()]
    assert latencies == sorted(latencies)
    assert not PROFILES["loopback"].emulates
    for profile in list(PROFILES.values())[1:]:
        assert profile.emulates
        assert "http" in profile.source, profile.name
    # Round trips from the sources, halved: the flag and the profiles are one-way.
    assert PROFILES["4g"].latency_ms == 150 / 2
    assert PROFILES["satellite"].latency_ms == 558 / 2


def test_a_profile_describes_itself_in_a_line() -> None:
    assert PROFILES["loopback"].describe() == "loopback: direct, no link model"
    assert PROFILES["4g"].describe() == "4g: 75 ms one-way, 1.6 Mbit/s down, 750 kbit/s up"
    assert PROFILES["3g"].describe() == "3g: 150 ms one-way, 700 kbit/s"
    assert custom_profile(50, 10, 9000).describe() == "custom: 50-60 ms one-way, 9 Mbit/s"
    stalling = LinkProfile("lossy", 20, stall_chance=0.01, stall_ms=200)
    assert stalling.describe() == "lossy: 20 ms one-way, stalls of 200 ms at 1%"
    assert not custom_profile(0).emulates
    assert custom_profile(0, bandwidth_kbit=512).emulates


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinkProfile("bad", latency_ms=-1),
        lambda: LinkProfile("bad", latency_ms=1, jitter_ms=-1),
        lambda: LinkProfile("bad", latency_ms=1, stall_chance=2),
        lambda: LinkProfile("bad", latency_ms=1, bandwidth_kbit=0),
        lambda: LinkProfile("bad", latency_ms=1, uplink_kbit=-5),
    ],
)
def test_a_profile_refuses_figures_no_link_has(make: Callable[[], LinkProfile]) -> None:
    with pytest.raises(ValueError):
        make()


def test_through_rewrites_the_address_and_keeps_the_rest(link_factory: LinkFactory) -> None:
    link = link_factory(custom_profile(10))
    hook = link.through("http://127.0.0.1:8123/hook?x=1")
    assert hook.startswith("http://127.0.0.1:") and hook.endswith("/hook?x=1")
    assert port_of(hook) != 8123
    assert port_of(link.through("http://127.0.0.1:8123/api/sse")) == port_of(hook), "one relay per target"
    assert port_of(link.through("http://127.0.0.1:8124")) != port_of(hook)
    secure = link.through("https://localhost:8443/api/price/TCS")
    assert secure.startswith("https://127.0.0.1:") and secure.endswith("/api/price/TCS")
    assert link.through("wss://localhost/ws").startswith("wss://127.0.0.1:")
    with pytest.raises(ValueError):
        link.through("/no/host")


# -- the model, measured -----------------------------------------------------------------------------


async def test_a_round_trip_through_the_relay_takes_twice_the_one_way_latency(link_factory: LinkFactory) -> None:
    link = link_factory(custom_profile(50))
    async with raw_peer(echo) as url:
        trips = await round_trips(link.through(url), 10)
    assert min(trips) >= 100.0, trips
    assert statistics.median(trips) <= 100.0 + SLACK_MS, trips


async def test_a_link_with_no_latency_adds_only_a_few_milliseconds(link_factory: LinkFactory) -> None:
    """About 0.05 ms measured here; the bound leaves room for a busy machine's wake-ups."""
    link = link_factory(PROFILES["loopback"])
    async with raw_peer(echo) as url:
        direct = statistics.median(await round_trips(url, 40))
        relayed = statistics.median(await round_trips(link.through(url), 40))
    assert relayed - direct < 5.0, (direct, relayed)


async def test_a_new_connection_pays_a_handshake_round_trip_before_its_first_answer(link_factory: LinkFactory) -> None:
    """Over TCP a client's first byte leaves one round trip after it starts to connect: it reaches
    the server at 3L and its answer is back at 4L; the next request on the connection costs 2L."""
    link = link_factory(custom_profile(50))
    heard: list[float] = []

    async def timed_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        heard.append(time.perf_counter())
        writer.write(data)
        await echo(reader, writer)

    async with raw_peer(timed_echo) as url:
        relayed = link.through(url)
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relayed))
        writer.write(b"first")
        await reader.readexactly(5)
        first = (time.perf_counter() - started) * 1000
        second = await round_trip(reader, writer, b"second")
        writer.close()
    assert (heard[0] - started) * 1000 >= 150.0, "the request reached the server after 3 x latency"
    assert 200.0 <= first <= 200.0 + 2 * SLACK_MS, first
    assert 100.0 <= second <= 100.0 + 2 * SLACK_MS, second


async def test_a_server_that_speaks_first_is_heard_after_the_handshake(link_factory: LinkFactory) -> None:
    """A real server accepts when the handshake's last packet reaches it (3L) and its first bytes
    arrive L later, though the relay connected to it at once."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        await reader.read()

    link = link_factory(custom_profile(50))
    async with raw_peer(greet) as url:
        relayed = link.through(url)
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relayed))
        assert await reader.readexactly(5) == b"hello"
        greeted = (time.perf_counter() - started) * 1000
        writer.close()
    assert 200.0 <= greeted <= 200.0 + 2 * SLACK_MS, greeted


async def test_jitter_never_reorders_bytes(link_factory: LinkFactory) -> None:
    link = link_factory(custom_profile(2, jitter_ms=8), seed=7)
    lines = [f"{n:05d}\n".encode() for n in range(1000)]
    async with raw_peer(echo) as url:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(link.through(url)))
        for burst in range(0, 1000, 10):
            writer.write(b"".join(lines[burst : burst + 10]))
            await writer.drain()
            await asyncio.sleep(0.001)
        received = [await asyncio.wait_for(reader.readline(), 10) for _ in lines]
        writer.close()
    assert received == lines
    assert link.stats().chunks_up >= 50, "the bursts crossed as separate chunks, each with its own jitter"


async def test_the_same_seed_draws_the_same_stalls(link_factory: LinkFactory) -> None:
    """With a 50% chance each way of a 40 ms stall, each round trip takes 0, 40 or 80 ms more."""
    lossy = LinkProfile("lossy", 0, stall_chance=0.5, stall_ms=40)
    patterns = []
    async with raw_peer(echo) as url:
        for seed in (3, 3, 4):
            trips = await round_trips(link_factory(lossy, seed=seed).through(url), 10)
            patterns.append([round(trip / 40) for trip in trips])
    assert patterns[0] == patterns[1]
    assert patterns[0] != patterns[2]
    assert set(patterns[0]) > {0}, "some round trips stalled"


async def test_a_new_profile_applies_to_an_open_connection(link_factory: LinkFactory) -> None:
    link = link_factory(custom_profile(0))
    async with raw_peer(echo) as url:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(link.through(url)))
        await round_trip(reader, writer)
        link.profile = custom_profile(30)
        trips = [await round_trip(reader, writer) for _ in range(3)]
        writer.close()
    assert min(trips) >= 60.0, trips


async def test_a_bandwidth_cap_spreads_a_transfer_over_time(link_factory: LinkFactory) -> None:
    size = 64 * 1024

    async def send_64k(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes(size))
        await writer.drain()

    link = link_factory(custom_profile(0, bandwidth_kbit=512))
    async with raw_peer(send_64k) as url:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(link.through(url)))
        received = await asyncio.wait_for(reader.read(), 20)
        elapsed = time.perf_counter() - started
        writer.close()
    assert len(received) == size
    assert elapsed >= size * 8 / 512_000, elapsed  # 1.02 s: the wire can carry no more


async def test_a_receiver_that_never_reads_stops_the_sender_and_the_relay_stays_bounded(
    link_factory: LinkFactory,
) -> None:
    limit = 64 * 1024
    connected = asyncio.Event()

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await asyncio.sleep(30)

    link = link_factory(custom_profile(0), queue_limit=limit)
    async with raw_peer(never_read) as url:
        _, writer = await asyncio.open_connection("127.0.0.1", port_of(link.through(url)))
        await asyncio.wait_for(connected.wait(), 5)
        block = bytes(1 << 20)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < 256 << 20:
                writer.write(block)
                await asyncio.wait_for(writer.drain(), 0.5)
                sent += len(block)
        await until(lambda: link.stats().queued_bytes >= limit, timeout=5, what="the relay's queue to fill")
        await asyncio.sleep(0.1)  # were it still reading, its queue would grow on
        stats = link.stats()
        writer.transport.abort()
    assert sent < 256 << 20, "the sender was never held back"
    assert limit <= stats.peak_queued_bytes <= limit + 64 * 1024, stats
    assert stats.queued_bytes <= limit + 64 * 1024, stats


async def test_a_half_closed_request_still_gets_its_whole_answer(link_factory: LinkFactory) -> None:
    answer = b"HTTP/1.0 200 OK\r\n\r\n" + b"0123456789" * 20_000

    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()  # to EOF: the client said all it will say
        assert request.startswith(b"GET / HTTP/1.0")
        writer.write(answer)
        await writer.drain()

    link = link_factory(custom_profile(5))
    async with raw_peer(http10) as url:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(link.through(url)))
        writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        writer.write_eof()
        received = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert received == answer


@pytest.mark.parametrize("ending", ["close", "reset"])
async def test_the_server_sees_the_client_leave_as_it_left(link_factory: LinkFactory, ending: str) -> None:
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def watch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await echo(reader, writer)
            seen.set_result("close")
        except ConnectionResetError:
            seen.set_result("reset")

    link = link_factory(custom_profile(5))
    async with raw_peer(watch) as url:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(link.through(url)))
        await round_trip(reader, writer)
        if ending == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
        assert await asyncio.wait_for(seen, 5) == ending


async def test_through_from_another_thread_and_close_ends_every_relay() -> None:
    link = Link(custom_profile(1))
    async with raw_peer(echo) as url:
        relayed: list[str] = []
        caller = threading.Thread(target=lambda: relayed.append(link.through(url)))
        caller.start()
        caller.join(10)
        assert relayed and relayed[0] == link.through(url)
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relayed[0]))
        await round_trip(reader, writer)
        assert link._thread.is_alive()
        await asyncio.to_thread(link.close)
        assert link.closed
        assert not link._thread.is_alive(), "its thread ended"
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b"", "the open connection was closed"
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port_of(relayed[0]))
        with pytest.raises(RuntimeError):
            link.through(url)
        link.close()  # twice is harmless


def test_the_server_answers_a_price_request_through_the_link(
    link_factory: LinkFactory, shared_server: RunningServer
) -> None:
    latency = 20.0
    link = link_factory(custom_profile(latency))
    started = time.perf_counter()
    response = httpx.get(link.through(shared_server.url) + "/api/price/RELIANCE", timeout=10)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    assert response.json()["symbol"] == "RELIANCE"
    assert elapsed >= 4 * latency, "a fresh connection costs the handshake and the request's round trip"
    assert link.stats().connections == 1 and link.stats().bytes_down > 0
