"""What polling should cost, in theory, when ticks arrive as a Poisson process.

With ticks at rate λ and a poll every I seconds, a poll finds something new with probability
1 - e^(-λI). So, per update received:
- requests: 1 / (1 - e^(-λI));
- ticks never seen (all but the newest of each interval): 1 - (1 - e^(-λI)) / (λI) of all ticks;
- delay: the age of the newest tick in the interval, whose median is -ln((1 + e^(-λI)) / 2) / λ
  (0.38·I at λI = 1, 0.28·I at λI = 2, and towards I/2 as λI falls). It stays under ln 2 / λ
  however long the interval: a poll brings only the newest tick, and that one is young;
- news delay: how long after a tick is published a poll brings it or a newer one, which is what a
  watcher waits to learn of a price change: the time to the next poll, uniform over the
  interval whatever the rate, so its median is I/2.
`pushpull-bench` prints these beside what it measured, and the tests hold it to them.

`mode_theory` says the same for every mode over a link of one-way latency L: poll adds L to the
tick's age (and polls a round trip apart once 2L passes I), long poll pays L when idle and a
blind window of 2L after each answer, SSE and WebSocket pay L, and webhooks queue behind one POST
per round trip. `tests/test_theory.py` holds each to a simulation of the protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from functools import lru_cache

from tui.format import fmt_ms, fmt_rate
from tui.modes.webhook import HEALTH_EVERY

__all__ = ["ModeTheory", "PollTheory", "mode_theory", "poll_beat", "poll_theory", "poll_theory_over"]


@dataclass(frozen=True, slots=True)
class PollTheory:
    requests_per_update: float
    missed_fraction: float
    delay_p50_s: float
    empty_fraction: float
    """Polls that find nothing new (304): e^(-λI)."""
    news_delay_p50_s: float
    """Median time from a tick's publication to the poll that brings it or a newer one: I/2."""

    def sentence(self, rate: float, interval: float) -> str:
        """What polling should show at these settings, in words (for help and README)."""
        return (
            f"at {fmt_rate(rate)} ticks/s and a poll every {interval:g} s, theory expects a delay p50 of "
            f"{self.delay_p50_s * 1000:.0f} ms, {100 * self.empty_fraction:.0f}% of answers 304 "
            f"(nothing new), {self.requests_per_update:.2f} requests per update and "
            f"{100 * self.missed_fraction:.0f}% of ticks never seen"
        )


def poll_theory_over(rate: float, interval: float, latency_s: float) -> PollTheory | None:
    """`poll_theory` over a link of one-way latency `latency_s`: the client waits for each answer,
    so the server sees polls at least a round trip apart, and every answer travels `latency_s`
    more (delays grow by it; the rest is polling's at the server, at `poll_beat`)."""
    theory = poll_theory(rate, poll_beat(interval, latency_s))
    if theory is None or latency_s <= 0:
        return theory
    return replace(
        theory,
        delay_p50_s=theory.delay_p50_s + latency_s,
        news_delay_p50_s=theory.news_delay_p50_s + latency_s,
    )


def poll_theory(rate: float, interval: float) -> PollTheory | None:
    """Expected poll figures for Poisson ticks at `rate`/s polled every `interval` s; None at rate 0."""
    if rate <= 0 or interval <= 0:
        return None
    x = rate * interval
    hit = -math.expm1(-x)  # 1 - e^(-λI), exact for small λI
    return PollTheory(
        requests_per_update=1 / hit,
        missed_fraction=1 - hit / x,
        delay_p50_s=-math.log((1 + math.exp(-x)) / 2) / rate,
        empty_fraction=math.exp(-x),
        news_delay_p50_s=interval / 2,
    )


# --- every mode on a link -------------------------------------------------------------------------

KEEPALIVE_S = 5.0
"""Seconds httpx keeps an idle connection for reuse (its default `keepalive_expiry`): the poll
client's and the server's webhook client's. A request after a longer lull opens a new connection,
which costs the link one more round trip (the TCP handshake)."""

QUANTILE_PRECISION = 1e-6
"""Bisection stops when a quantile is known to this relative width."""
P99_LOAD_LIMIT = 0.95
"""Above this load a webhook queue's p99 is many services long and slow to sum: not derived."""


@dataclass(frozen=True, slots=True)
class ModeTheory:
    """What a mode's client should measure on a link, per update received.

    Example:

        theory = mode_theory("longpoll", 2.0, interval=0.5, latency_s=0.1)
        theory.delay_p50_s, theory.requests_per_update   # 0.1 s (idle most of the time), 0.93
    """

    delay_p50_s: float | None
    """Receive time minus publish time, median; None where it grows without bound."""
    delay_p99_s: float | None
    """Its 99th percentile; None where not derived or unbounded."""
    requests_per_update: float
    """Requests the client makes (or, for webhooks, receives) per tick received, in the long run."""
    missed_fraction: float
    """Of the ticks published, those the client never receives."""
    note: str
    """What dominates the delay, in a few words: "the link", "the interval", "the blind window"..."""

    def summary(self) -> str:
        """One line for a table or a pane: `p50 290 ms · p99 591 ms · 1.58 req/upd · 37% missed · the interval`."""
        parts = [f"p50 {fmt_ms(self.delay_p50_s * 1000) if self.delay_p50_s is not None else 'grows'}"]
        if self.delay_p99_s is not None:
            parts.append(f"p99 {fmt_ms(self.delay_p99_s * 1000)}")
        parts += [
            f"{self.requests_per_update:.2f} req/upd",
            f"{100 * self.missed_fraction:.0f}% missed",
            self.note,
        ]
        return " · ".join(parts)


def mode_theory(
    mode: str, rate: float, *, interval: float, latency_s: float = 0.0, service_s: float = 0.0
) -> ModeTheory | None:
    """What `mode` should show for Poisson ticks at `rate`/s over a link of one-way latency
    `latency_s` (`interval`: the poll interval, used by poll only; `service_s`: the server's and
    client's own time per exchange, 0 on loopback to within a millisecond). None at rate 0.

    Jitter and a bandwidth cap are left out: jitter spreads each figure by its own spread, and a
    ~150-byte tick frame takes 1.2 ms to send at 1 Mbit/s.
    """
    if latency_s < 0 or service_s < 0:
        raise ValueError(f"latency and service time must be >= 0, not {latency_s!r} and {service_s!r}")
    if rate <= 0:
        return None
    if mode == "poll":
        return poll_on_link(rate, interval, latency_s, service_s)
    if mode == "longpoll":
        return longpoll_on_link(rate, latency_s, service_s)
    if mode in ("sse", "ws"):
        return push_on_link(latency_s)
    if mode == "webhook":
        return webhook_on_link(rate, latency_s, service_s)
    raise ValueError(f"no theory for mode {mode!r}")


def poll_beat(interval: float, latency_s: float, service_s: float = 0.0) -> float:
    """How far apart the server sees polls every `interval` s over a link of one-way latency
    `latency_s`: the client waits for each answer, so never closer than a round trip (2L, plus a
    handshake's 2L once a lull beyond `KEEPALIVE_S` closed the connection, plus `service_s`)."""
    round_trip = (2 if interval <= KEEPALIVE_S else 4) * latency_s + service_s
    return max(interval, round_trip)


def poll_on_link(rate: float, interval: float, latency_s: float, service_s: float = 0.0) -> ModeTheory | None:
    """Polling over a link: the tick's age when the server answers, plus L for the answer's trip.

    The server sees the polls one interval apart, so `poll_theory` holds at the server: the newest
    tick of an interval that had one has age a with P(age <= a) = (1 - e^(-λa)) / (1 - e^(-λI)),
    whose q-quantile is -ln(1 - q(1 - e^(-λI))) / λ; the client sees it L later. The client waits
    for each answer (`tui/modes/poll.py` keeps its beat but starts at once when behind), so when a
    round trip (2L, plus a handshake's 2L once a lull beyond `KEEPALIVE_S` closed the connection,
    plus service) outlasts I, polls come one round trip apart and that is the interval to use.
    """
    if interval <= 0:
        return None
    effective = poll_beat(interval, latency_s, service_s)
    hit = -math.expm1(-rate * effective)  # a poll finds something new

    def delay(q: float) -> float:
        return -math.log1p(-q * hit) / rate + latency_s

    age_p50 = delay(0.5) - latency_s
    dominant = "the interval" if age_p50 >= latency_s else "the link"
    note = "the round trip" if effective > interval else dominant
    return ModeTheory(
        delay_p50_s=delay(0.5),
        delay_p99_s=delay(0.99),
        requests_per_update=1 / hit,
        missed_fraction=1 - hit / (rate * effective),
        note=note,
    )


def longpoll_on_link(rate: float, latency_s: float, service_s: float = 0.0) -> ModeTheory:
    """Long polling over a link: L when idle; a blind window of one round trip after each answer.

    A held request answers as soon as a tick comes: delay L. After an answer the next request
    reaches the server w = 2L later (answer down, request up); in that window N ~ Poisson(λw)
    ticks arrive, each at a uniform time s in it, and wait w - s for the request, then L more,
    all in one answer. If N = 0 the first tick after the window goes at once. Per cycle then
    λw + e^(-λw) ticks arrive over one request, so requests per update are 1 / (λw + e^(-λw)),
    and a share p0 = e^(-λw) / (λw + e^(-λw)) of ticks take L, the rest L + U(0, w): the q-quantile
    is L for q <= p0, else L + w(q - p0) / (1 - p0). At L = 0: delay 0, one request per tick, as
    on loopback. (Ignores the hold's own 204 every 25 s idle, a share e^(-25λ) of requests.)
    """
    window = 2 * latency_s + service_s
    x = rate * window
    per_cycle = x + math.exp(-x)
    p0 = math.exp(-x) / per_cycle

    def delay(q: float) -> float:
        return latency_s if q <= p0 else latency_s + window * (q - p0) / (1 - p0)

    return ModeTheory(
        delay_p50_s=delay(0.5),
        delay_p99_s=delay(0.99),
        requests_per_update=1 / per_cycle,
        missed_fraction=0.0,
        note="the link" if p0 >= 0.5 else "the blind window",
    )


def push_on_link(latency_s: float) -> ModeTheory:
    """SSE and WebSocket: one connection, opened once, and each tick written to it at once: it
    arrives L later, so every percentile is L; no request per tick (one per run), nothing missed."""
    return ModeTheory(
        delay_p50_s=latency_s, delay_p99_s=latency_s, requests_per_update=0.0, missed_fraction=0.0, note="the link"
    )


def webhook_on_link(rate: float, latency_s: float, service_s: float = 0.0) -> ModeTheory:
    """Webhooks over a link: one POST at a time per endpoint, each waiting for its answer.

    `server/webhooks.py` delivers an endpoint's ticks in order, one `_attempt` after another,
    each awaiting the receiver's answer, over a pooled httpx client whose connection stays open
    between deliveries (closed after a `KEEPALIVE_S` lull; a delivery after one pays the
    handshake, 3L instead of L). So each delivery occupies the endpoint for D = 2L (+ service): an
    M/D/1 queue at load λD. A tick waits W (the queue's waiting time: P(W = 0) = 1 - λD, and
    Erlang's formula beyond, `md1_wait_quantile`) and arrives L after its POST starts: delay W + L.
    At λD >= 1 the endpoint cannot keep up: the queue grows, and so does the delay, until the
    server's bounded queue drops the oldest, a share 1 - 1/(λD) in the long run. The receiver is
    also asked its registration's state every `HEALTH_EVERY` s, a request counted with deliveries.
    """
    service = 2 * latency_s + service_s
    rho = rate * service
    requests = 1 + 1 / (HEALTH_EVERY * rate)
    if rho >= 1:
        return ModeTheory(
            delay_p50_s=None,
            delay_p99_s=None,
            requests_per_update=requests,
            missed_fraction=1 - 1 / rho,
            note=f"falls behind: \u2264{1 / service:.3g}/s",
        )
    return ModeTheory(
        delay_p50_s=md1_wait_quantile(0.5, rate, service) + latency_s,
        delay_p99_s=md1_wait_quantile(0.99, rate, service) + latency_s if rho <= P99_LOAD_LIMIT else None,
        requests_per_update=requests,
        missed_fraction=0.0,
        note="the link" if rho <= 0.5 else "the queue of POSTs",
    )


def md1_wait_cdf(t: float, rate: float, service: float) -> float:
    """P(W <= t) for an M/D/1 queue's waiting time (Erlang, 1909):
    (1 - λD) Σ_{k=0}^{⌊t/D⌋} (λ(kD - t))^k / k! · e^(-λ(kD - t)).

    The terms alternate and grow to about e^(2λt) before they cancel, so they are summed in
    decimal with enough digits for that.
    """
    if t < 0:
        return 0.0
    rho = rate * service
    if service == 0:
        return 1.0
    with localcontext() as context:
        context.prec = 30 + math.ceil(2 * rate * t / math.log(10))
        lam, d, when = Decimal(rate), Decimal(service), Decimal(t)
        total, factorial = Decimal(0), Decimal(1)
        for k in range(int(t // service) + 1):
            if k:
                factorial *= k
            u = lam * (k * d - when)
            total += u**k / factorial * (-u).exp()
        return float((1 - Decimal(rho)) * total)


@lru_cache(maxsize=256)
def md1_wait_quantile(q: float, rate: float, service: float) -> float:
    """The q-quantile of an M/D/1 queue's waiting time (load rate · service < 1), by bisection."""
    rho = rate * service
    if not 0 <= rho < 1:
        raise ValueError(f"the queue is stable only at load under 1, not {rho!r}")
    if q <= 1 - rho or service == 0:
        return 0.0
    low, high = 0.0, service
    while md1_wait_cdf(high, rate, service) < q:
        low, high = high, 2 * high
    while high - low > QUANTILE_PRECISION * high:
        middle = (low + high) / 2
        low, high = (middle, high) if md1_wait_cdf(middle, rate, service) < q else (low, middle)
    return (low + high) / 2
