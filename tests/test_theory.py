"""Theory on a link (`tui/theory.py`) against a Monte Carlo of each mode's protocol, written here.

Each simulation draws seeded Poisson ticks and plays the mode's exchanges on a link that adds L
each way, as the clients in `tui/modes/` and `server/webhooks.py` do them: a poll beat that waits
for each answer, long-poll cycles with the blind window, one webhook POST at a time. Nothing of
the theory's formulas is used to build the expected figures.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

import pytest

from tui.modes.webhook import HEALTH_EVERY
from tui.theory import mode_theory, poll_theory

TICKS = 60_000
"""Ticks per simulation: p50 to about 1%, p99 to a few, in a tenth of a second."""
QUEUE_TICKS = 4 * TICKS
"""A busy webhook queue's delays are correlated over many ticks: it needs more of them for the same."""


@dataclass
class Simulated:
    delays: list[float]
    requests: int
    updates: int
    missed: int

    def quantile(self, q: float) -> float:
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    @property
    def requests_per_update(self) -> float:
        return self.requests / self.updates

    @property
    def missed_fraction(self) -> float:
        return self.missed / (self.updates + self.missed)


def poisson_ticks(rate: float, seed: int, count: int = TICKS) -> list[float]:
    rng = random.Random(seed)
    times, now = [], 0.0
    for _ in range(count):
        now += rng.expovariate(rate)
        times.append(now)
    return times


def simulate_poll(ticks: list[float], interval: float, latency: float) -> Simulated:
    """A poll leaves on the beat, or at once on the answer when the answer came after the beat;
    the server answers with the newest tick L later; the answer comes back L after that."""
    delays: list[float] = []
    requests = updates = missed = 0
    published = 0  # ticks published by the time the server answers
    seen = -1  # index of the newest tick received
    send, first = 1.0, True
    while True:
        answer = send + latency
        while published < len(ticks) and ticks[published] <= answer:
            published += 1
        if published == len(ticks):
            break
        back = answer + latency
        newest = published - 1
        if first:
            seen, first = newest, False  # warm-up: what came before the first poll is not its miss
        else:
            requests += 1
            if newest > seen:
                updates += 1
                missed += newest - seen - 1
                delays.append(back - ticks[newest])
                seen = newest
        send = max(send + interval, back)
    return Simulated(delays, requests, updates, missed)


def simulate_longpoll(ticks: list[float], latency: float) -> Simulated:
    """A request reaches the server L after it leaves; it takes every tick after the cursor at
    once, or waits for the next one; the answer comes back L later and the next request leaves."""
    delays: list[float] = []
    requests = updates = 0
    cursor = 0  # ticks received (all of them up to here)
    send = 0.0
    while cursor < len(ticks):
        arrive = send + latency
        if ticks[cursor] <= arrive:  # published in the blind window: answered at once, batched
            end = cursor
            while end < len(ticks) and ticks[end] <= arrive:
                end += 1
            answer = arrive
        else:  # held until the next tick
            end, answer = cursor + 1, ticks[cursor]
        back = answer + latency
        delays.extend(back - tick for tick in ticks[cursor:end])
        requests += 1
        updates += end - cursor
        cursor, send = end, back
    return Simulated(delays, requests, updates, 0)


def simulate_webhook(ticks: list[float], latency: float, queue_limit: int = 10**9) -> Simulated:
    """One POST at a time over a kept-alive connection: it reaches the receiver L after it starts,
    and the next starts when the answer is back (2L); a full queue drops its oldest tick. The
    receiver is also asked its registration's state every `HEALTH_EVERY` seconds."""
    delays: list[float] = []
    pending: deque[float] = deque()  # publish times of the ticks waiting, oldest first
    free = 0.0  # when the endpoint can start its next POST
    missed = 0
    for published in ticks:
        while pending and max(free, pending[0]) <= published:  # POSTs that start before this tick
            tick = pending.popleft()
            start = max(free, tick)
            delays.append(start + latency - tick)
            free = start + 2 * latency
        if len(pending) >= queue_limit:
            pending.popleft()
            missed += 1
        pending.append(published)
    health_checks = int(ticks[-1] // HEALTH_EVERY)
    return Simulated(delays, len(delays) + health_checks, len(delays), missed)


def close(theory: float | None, simulated: float, rel: float) -> bool:
    return theory is not None and theory == pytest.approx(simulated, rel=rel, abs=1e-9)


@pytest.mark.parametrize(
    ("rate", "interval", "latency"),
    [
        (2.0, 0.5, 0.0),  # loopback: today's theory
        (2.0, 0.5, 0.1),  # the README's example
        (20.0, 0.5, 0.05),  # many ticks an interval: the delay is the link's, plus a young tick's age
        (0.5, 2.0, 0.3),  # a satellite link, slow feed
        (2.0, 0.2, 0.15),  # 2L > I: polls one round trip apart, not on the beat
        (10.0, 0.05, 0.1),  # 2L = 4 intervals
    ],
)
def test_poll_on_a_link_is_the_ticks_age_at_the_server_plus_the_trip_down(
    rate: float, interval: float, latency: float
) -> None:
    sim = simulate_poll(poisson_ticks(rate, seed=11), interval, latency)
    theory = mode_theory("poll", rate, interval=interval, latency_s=latency)
    assert theory is not None
    assert close(theory.delay_p50_s, sim.quantile(0.5), 0.03), (theory, sim.quantile(0.5))
    assert close(theory.delay_p99_s, sim.quantile(0.99), 0.03), (theory, sim.quantile(0.99))
    assert close(theory.requests_per_update, sim.requests_per_update, 0.02), (theory, sim.requests_per_update)
    assert theory.missed_fraction == pytest.approx(sim.missed_fraction, abs=0.01), (theory, sim.missed_fraction)
    age_p50 = sim.quantile(0.5) - latency  # what the interval adds to the link
    dominant = "the interval" if age_p50 >= latency else "the link"
    assert theory.note == ("the round trip" if 2 * latency > interval else dominant)


@pytest.mark.parametrize(
    ("rate", "latency"),
    [
        (2.0, 0.0),  # loopback: a tick, a request, no delay
        (2.0, 0.1),  # λ·2L = 0.4: mostly idle, delay L
        (2.0, 0.3),  # λ·2L = 1.2: the blind window dominates
        (20.0, 0.05),  # λ·2L = 2: batches
        (50.0, 0.3),  # λ·2L = 30: nearly every tick waits in the window
    ],
)
def test_long_poll_on_a_link_pays_the_blind_window(rate: float, latency: float) -> None:
    sim = simulate_longpoll(poisson_ticks(rate, seed=12), latency)
    theory = mode_theory("longpoll", rate, interval=1.0, latency_s=latency)
    assert theory is not None
    assert close(theory.delay_p50_s, sim.quantile(0.5), 0.03), (theory, sim.quantile(0.5))
    assert close(theory.delay_p99_s, sim.quantile(0.99), 0.03), (theory, sim.quantile(0.99))
    assert close(theory.requests_per_update, sim.requests_per_update, 0.02), (theory, sim.requests_per_update)
    assert theory.missed_fraction == 0
    assert theory.note == ("the link" if 2 * latency * rate < 0.5 else "the blind window")


def test_long_poll_and_push_at_zero_latency_are_todays_loopback() -> None:
    """On loopback long poll answers every tick at once with a request of its own, and push
    modes deliver every tick at once: the figures the app and bench showed before links."""
    for rate in (0.5, 2.0, 200.0):
        longpoll = mode_theory("longpoll", rate, interval=1.0)
        assert longpoll is not None
        assert (longpoll.delay_p50_s, longpoll.delay_p99_s, longpoll.requests_per_update) == (0, 0, 1)
        for push in ("sse", "ws", "webhook"):
            theory = mode_theory(push, rate, interval=1.0)
            assert theory is not None and (theory.delay_p50_s, theory.delay_p99_s) == (0, 0), push


@pytest.mark.parametrize("latency", [0.0, 0.02, 0.3])
def test_sse_and_websocket_pay_the_link_once_per_tick(latency: float) -> None:
    for mode in ("sse", "ws"):
        theory = mode_theory(mode, 5.0, interval=1.0, latency_s=latency)
        assert theory is not None
        assert (theory.delay_p50_s, theory.delay_p99_s) == (latency, latency), mode
        assert (theory.requests_per_update, theory.missed_fraction) == (0, 0), mode


@pytest.mark.parametrize(
    ("rate", "latency"),
    [
        (2.0, 0.1),  # load 0.4: most POSTs find the line free
        (20.0, 0.01),  # load 0.4 at a high rate
        (5.0, 0.08),  # load 0.8: the queue of POSTs dominates the tail
        (1.0, 0.35),  # load 0.7 over a satellite-like link
    ],
)
def test_a_webhook_on_a_link_is_a_queue_served_one_round_trip_at_a_time(rate: float, latency: float) -> None:
    sim = simulate_webhook(poisson_ticks(rate, seed=13, count=QUEUE_TICKS), latency)
    theory = mode_theory("webhook", rate, interval=1.0, latency_s=latency)
    assert theory is not None
    assert close(theory.delay_p50_s, sim.quantile(0.5), 0.03), (theory, sim.quantile(0.5))
    assert close(theory.delay_p99_s, sim.quantile(0.99), 0.03), (theory, sim.quantile(0.99))
    assert close(theory.requests_per_update, sim.requests_per_update, 0.02), (theory, sim.requests_per_update)
    assert theory.missed_fraction == 0 and sim.missed == 0


@pytest.mark.parametrize(("rate", "latency"), [(2.0, 0.3), (20.0, 0.05)])
def test_a_webhook_slower_than_the_feed_falls_behind_and_drops(rate: float, latency: float) -> None:
    """Load 1.2 (satellite at 2/s) and 2 (4G at 20/s): one POST per round trip cannot keep up;
    the bounded queue drops the oldest, and only 1/load of the ticks arrive."""
    sim = simulate_webhook(poisson_ticks(rate, seed=14), latency, queue_limit=50)
    theory = mode_theory("webhook", rate, interval=1.0, latency_s=latency)
    assert theory is not None
    assert theory.delay_p50_s is None and theory.delay_p99_s is None  # it grows with the run
    assert theory.missed_fraction == pytest.approx(sim.missed_fraction, abs=0.01), (theory, sim.missed_fraction)
    assert theory.note.startswith("falls behind")


@pytest.mark.parametrize(("rate", "interval"), [(0.1, 1.0), (2.0, 0.5), (10.0, 0.05), (2.0, 60.0)])
def test_poll_theory_is_unchanged_and_the_link_theory_agrees_with_it_at_zero_latency(
    rate: float, interval: float
) -> None:
    """`poll_theory` is what the app, the advisor and the bench have shown: its closed forms,
    recomputed here, and `mode_theory("poll")` at L = 0 gives the same figures."""
    x = rate * interval
    hit = 1 - math.exp(-x)
    old = poll_theory(rate, interval)
    new = mode_theory("poll", rate, interval=interval, latency_s=0.0)
    assert old is not None and new is not None
    assert old.requests_per_update == pytest.approx(1 / hit)
    assert old.missed_fraction == pytest.approx(1 - hit / x)
    assert old.delay_p50_s == pytest.approx(-math.log((1 + math.exp(-x)) / 2) / rate)
    assert old.empty_fraction == pytest.approx(math.exp(-x)) and old.news_delay_p50_s == interval / 2
    assert new.delay_p50_s == pytest.approx(old.delay_p50_s, rel=1e-12)
    assert new.requests_per_update == pytest.approx(old.requests_per_update, rel=1e-12)
    assert new.missed_fraction == pytest.approx(old.missed_fraction, rel=1e-12)


def test_no_theory_without_ticks_and_none_for_an_unknown_mode() -> None:
    assert mode_theory("sse", 0.0, interval=1.0, latency_s=0.1) is None
    assert mode_theory("poll", 2.0, interval=0.0) is None
    with pytest.raises(ValueError, match="no theory for mode"):
        mode_theory("carrier-pigeon", 2.0, interval=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        mode_theory("sse", 2.0, interval=1.0, latency_s=-0.1)
