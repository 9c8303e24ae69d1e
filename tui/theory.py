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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tui.format import fmt_rate

__all__ = ["PollTheory", "poll_theory"]


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
