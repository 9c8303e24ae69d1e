"""The modes over an emulated link (`tui.link`): what each pays for a round trip, as the bench and
the app measure it, against theory (`tui.theory.mode_theory`).

Figures, not speed: the delays are the link's (100 ms one way), hundreds of times a busy machine's
scheduling noise, so the bands below hold on a shared machine; nothing here times our own code.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import RunningServer, publish, start_server, until
from tui.advisor import AdvisorData
from tui.app import PushPullApp
from tui.link import PROFILES, Link, custom_profile
from tui.modes import ConnectionState, ServerClock
from tui.theory import poll_theory, poll_theory_over

LATENCY_MS = 100.0


@pytest.fixture(scope="module")
def over_100ms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bench run of every mode at 5 ticks/s over a 100 ms link (one way), as a user runs it."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tui.bench", "--latency", f"{LATENCY_MS:g}", "--tick-rate", "5",
         "--poll-interval", "0.5", "--duration", "12", "--clients", "3", "--seed", "5", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "over custom: 100 ms one-way" in done.stdout and "against theory" in done.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_push_modes_pay_the_one_way_latency_and_lose_nothing(over_100ms: dict[str, Any]) -> None:
    assert over_100ms["config"]["latency_s"] == pytest.approx(0.1)
    for mode in ("sse", "ws"):
        figures = over_100ms["modes"][mode]
        assert 100.0 <= figures["delay_ms"]["p50"] <= 130.0, figures["delay_ms"]  # L, plus a little
        assert figures["missed"] == 0 and figures["duplicates"] == 0
        assert figures["theory"]["delay_ms_p50"] == pytest.approx(LATENCY_MS)


def test_long_poll_pays_at_least_the_latency_and_its_blind_window(over_100ms: dict[str, Any]) -> None:
    figures = over_100ms["modes"]["longpoll"]
    theory = figures["theory"]
    assert figures["missed"] == 0
    assert figures["delay_ms"]["p50"] >= 100.0
    # At 5 ticks/s the 200 ms blind window after each answer holds a tick most of the time.
    assert figures["delay_ms"]["p50"] == pytest.approx(theory["delay_ms_p50"], rel=0.35)
    assert figures["requests_per_update"] == pytest.approx(theory["requests_per_update"], rel=0.3)
    assert figures["requests_per_update"] < 1.0  # batched: fewer answers than ticks


def test_polling_pays_the_latency_and_a_share_of_the_interval(over_100ms: dict[str, Any]) -> None:
    figures = over_100ms["modes"]["poll"]
    theory = figures["theory"]
    sse = over_100ms["modes"]["sse"]["delay_ms"]["p50"]
    assert figures["delay_ms"]["p50"] > sse + 20.0  # above the link by part of the interval
    assert figures["delay_ms"]["p50"] == pytest.approx(theory["delay_ms_p50"], rel=0.35)
    assert figures["missed"] > 0
    missed = figures["missed"] / (figures["missed"] + figures["updates"])
    assert missed == pytest.approx(theory["missed_fraction"], abs=0.15)


@pytest.fixture
def quiet_server() -> Iterator[RunningServer]:
    with start_server("--no-feed", "--symbols", "RELIANCE,TCS") as server:
        yield server


async def test_the_network_key_puts_every_pane_over_the_next_profile(quiet_server: RunningServer) -> None:
    app = PushPullApp(quiet_server.url, modes=["poll", "sse", "webhook"], stats_interval=None, poll_interval=0.2)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(lambda: all(p.client.state is ConnectionState.LIVE for p in app.panes), pilot=pilot)
        assert app.link is None and all(p.client.server_url == quiet_server.url for p in app.panes)
        await pilot.press("L")
        assert app.link_profile == PROFILES["lan"]
        await until(lambda: all(p.client.state is ConnectionState.LIVE for p in app.panes), pilot=pilot)
        link = app.link
        assert link is not None
        relayed = {p.client.server_url for p in app.panes}
        assert len(relayed) == 1 and relayed != {quiet_server.url}  # all through the relay
        assert "over lan · " in str(app.server_bar.render())
        assert all(p.link_name == "lan" for p in app.panes)
        webhook = app.panes[2].client
        async with httpx.AsyncClient() as http:  # the server was given the relay in front of the receiver
            listed = (await http.get(f"{quiet_server.url}/api/webhooks/{webhook.webhook_id}")).json()
            assert listed["url"] != webhook.receiver_url
            before = link.stats().bytes_up
            ticks = await publish(http, quiet_server, "RELIANCE", [2000.0])
        await until(lambda: (t := webhook.last_tick) is not None and t.seq == ticks[0]["seq"], pilot=pilot)
        assert link.stats().bytes_up > before  # the delivery crossed the link (and poll's asks)
        await pilot.press("tab", "tab", "1", "5", "1", "5")  # the webhook pane to poll and back, twice
        await until(lambda: app.panes[2].client.state is ConnectionState.LIVE, pilot=pilot)
        await until(lambda: link.listening <= 2, pilot=pilot)  # the server's relay and the live receiver's
        for _ in range(len(PROFILES) - 1):  # round to loopback: straight to the server again
            await pilot.press("L")
        assert app.link_profile == PROFILES["loopback"] and app.link is None
        assert all(p.client.server_url == quiet_server.url for p in app.panes)
        assert "over " not in str(app.server_bar.render())


def test_network_flags_are_checked(tmp_path: Path) -> None:
    for flags, said in (
        (["--network", "moon"], "invalid choice: 'moon'"),
        (["--network", "4g", "--latency", "5"], "--network 4g sets the link's figures; leave out --latency"),
        (["--latency", "-1"], "--latency"),
        (["--bandwidth", "0"], "--bandwidth"),
        (["--server", "https://127.0.0.1:9", "--network", "4g"], "relays plain http:// only"),
    ):
        for program in ("tui", "tui.bench"):
            done = subprocess.run([sys.executable, "-m", program, *flags], capture_output=True, text=True, timeout=30)
            assert done.returncode == 2, (program, flags, done.stderr)
            assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, (program, done.stderr)


def test_a_custom_link_describes_itself() -> None:
    assert custom_profile(100).describe() == "custom: 100 ms one-way"


async def test_the_clock_estimated_through_a_link_is_still_the_servers(quiet_server: RunningServer) -> None:
    """NTP-style through a 100 ms link: the 200 ms round trip's midpoint still lands on the server's
    clock (the same clock here), so a delay measured over the link stays the tick's real age."""
    link = Link(custom_profile(LATENCY_MS), seed=1)
    try:
        clock = ServerClock(trust_loopback=False)
        async with httpx.AsyncClient() as http:
            await clock.sync(http, link.through(quiet_server.url))
        assert clock.round_trip is not None and clock.round_trip >= 2 * LATENCY_MS / 1000
        assert abs(clock.offset) < 0.005  # a symmetric link: the halves cancel
    finally:
        link.close()


def test_over_a_link_the_advisor_counts_the_answers_trip() -> None:
    """Over satellite no poll interval learns of a change within 500 ms: a round trip is 558 ms."""
    far = AdvisorData(tick_rate=2.0, poll_interval=0.5, points=(), latency_s=0.279)
    assert far.news_advice(500.0) == (
        "to learn of a price change within 500 ms (p50): no poll interval does, over this link a poll's "
        "round trip alone is 558 ms (push: 279 ms)"
    )
    near = AdvisorData(tick_rate=2.0, poll_interval=0.5, points=(), latency_s=0.075)
    assert near.news_advice(500.0).endswith("poll every 0.85 s or less (0.5 s with +/-)")
    current = far.current
    assert current is not None and current.delay_p50_ms is not None
    at_the_server = poll_theory(2.0, 0.558)  # polls a round trip apart, then 279 ms down
    assert at_the_server is not None
    assert current.delay_p50_ms == pytest.approx((at_the_server.delay_p50_s + 0.279) * 1000)


async def test_an_export_over_a_link_names_it(quiet_server: RunningServer, tmp_path: Path) -> None:
    app = PushPullApp(
        quiet_server.url, modes=["sse"], stats_interval=None, link=custom_profile(LATENCY_MS), export_dir=tmp_path
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await until(lambda: app.panes[0].client.state is ConnectionState.LIVE, pilot=pilot)
        await pilot.press("e")
        await until(lambda: any(tmp_path.glob("*.json")), pilot=pilot)
    data = exported(tmp_path)
    assert data["network"] == "custom: 100 ms one-way" and data["latency_s"] == pytest.approx(0.1)
    assert data["panes"][0]["server"] == quiet_server.url  # the server, not the relay
    assert "theory_delay_p50_ms" in data["panes"][0]


def exported(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(next(folder.glob("*.json")).read_text())
    return data


async def test_the_bar_names_the_link_at_80_columns(quiet_server: RunningServer) -> None:
    app = PushPullApp(quiet_server.url, modes=["sse"], stats_interval=None, link=PROFILES["4g"])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.panes[0].client.state is ConnectionState.LIVE, pilot=pilot)
        shown = str(app.server_bar.render())
        assert "over 4g" in shown  # the details give way to the width, the name never does
        assert len(shown) <= 78


async def test_switching_links_closes_every_websocket_cleanly(
    quiet_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A switch asks each old client to stop, then to stop again as the new one starts; a second
    cancel cut short a WebSocket's close handshake (a round trip over the link), and asyncio
    reported the pending task and generator it left behind."""
    app = PushPullApp(quiet_server.url, modes=["ws", "ws", "sse"], stats_interval=None, link=PROFILES["4g"])
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        async with app.run_test(size=(160, 45)) as pilot:
            for _ in range(3):
                await until(lambda: all(p.client.state is ConnectionState.LIVE for p in app.panes), pilot=pilot)
                await pilot.press("L")
            await pilot.pause(1.0)  # (the last clients close through their link)
        await asyncio.sleep(1.0)
        gc.collect()  # a task left pending is reported only when it is collected
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_polling_theory_over_a_link_is_the_servers_plus_the_answers_trip() -> None:
    """What help, the advisor and an export say of polling over satellite at a 0.1 s interval:
    polls come a round trip (0.558 s) apart, and each answer travels 279 ms more."""
    over = poll_theory_over(2.0, 0.1, 0.279)
    at_the_server = poll_theory(2.0, 0.558)
    assert over is not None and at_the_server is not None
    assert over.delay_p50_s == pytest.approx(at_the_server.delay_p50_s + 0.279)
    assert over.requests_per_update == at_the_server.requests_per_update
    assert over.missed_fraction == at_the_server.missed_fraction
    assert poll_theory_over(2.0, 0.5, 0.0) == poll_theory(2.0, 0.5)
