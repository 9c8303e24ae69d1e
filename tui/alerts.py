"""Price alerts: rules such as `RELIANCE>1320`, `TCS<3500`, `INFY%2`, and the book that watches
every tick for them and says when one fires, once per crossing.

A rule that fired stays quiet until the price has come back past its line by a hysteresis band
(`BAND_FRACTION` of the line for `>` and `<`, `BAND_POINTS` percentage points for `%`): a price
hovering at 1320 crosses it many times a second, and an alert for each would be noise.

When one fires, the panes are asked who saw it first (`first_seen`, `seen_report`): a push mode
got the crossing tick within a millisecond of the feed, a poll only at its next ask.

Example:

    book = AlertBook([parse_rule("RELIANCE>1320"), parse_rule("INFY%2")])
    for crossing in book.observe(tick, first_price=1312.45, at=time.time()):
        print(crossing.headline())   # RELIANCE above ₹1,320.00: ₹1,320.45
"""

from __future__ import annotations

import argparse
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tui.format import fmt_ms, fmt_price

if TYPE_CHECKING:  # (the command line parses rules: it need not load pydantic and every mode to do so)
    from server.schema import Tick
    from tui.modes.base import Event, ModeClient

__all__ = [
    "BAND_FRACTION",
    "BAND_POINTS",
    "KINDS",
    "AlertBook",
    "AlertRule",
    "Crossing",
    "first_seen",
    "first_seen_by",
    "parse_rule",
    "seen_report",
]

Kind = Literal[">", "<", "%"]
KINDS: tuple[Kind, ...] = (">", "<", "%")

BAND_FRACTION = 0.001
"""Hysteresis of a `>` / `<` rule, as a fraction of its line: `RELIANCE>1320` fires above 1320 and
re-arms only once the price is back below 1318.68."""
BAND_POINTS = 0.1
"""Hysteresis of a `%` rule, in percentage points: `INFY%2` re-arms once the move is back under
1.9 %. A rule for less than 0.2 % uses half its level instead, so that it can re-arm at all."""

SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9&._-]{0,31}")
"""What a symbol may look like: NSE's own (`M&M`, `BAJAJ-AUTO`), at most 32 characters as the server's."""
EXAMPLE = "expected SYMBOL>PRICE, SYMBOL<PRICE or SYMBOL%PERCENT, e.g. RELIANCE>1320 or INFY%2"


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One alert: `symbol` above (`>`) or below (`<`) a price `level`, or moved (`%`) by `level`
    percent either way from the session's first price."""

    symbol: str
    kind: Kind
    level: float

    def __str__(self) -> str:
        """The canonical text, which `parse_rule` reads back to this rule: `RELIANCE>1320`."""
        number = repr(self.level)
        return f"{self.symbol}{self.kind}{number.removesuffix('.0')}"

    def describe(self, first_price: float | None = None) -> str:
        """Words for a notification: "RELIANCE above ₹1,320.00", "INFY moved 2% from ₹1,502.35"."""
        if self.kind == ">":
            return f"{self.symbol} above {fmt_price(self.level)}"
        if self.kind == "<":
            return f"{self.symbol} below {fmt_price(self.level)}"
        since = "the session's first price" if first_price is None else fmt_price(first_price)
        return f"{self.symbol} moved {self.level:g}% from {since}"

    @property
    def rearm_line(self) -> float:
        """Where a fired rule re-arms: the price it must be back below (`>`) or above (`<`), to
        the paisa; for `%`, the move in percent it must be back under."""
        if self.kind == "%":
            return self.level - min(BAND_POINTS, self.level / 2)
        return round(self.level * (1 - BAND_FRACTION if self.kind == ">" else 1 + BAND_FRACTION), 2)

    def rearm_text(self, first_price: float | None = None) -> str:
        """Words for a list of alerts: "re-arms below ₹1,318.68", "re-arms within 1.9% of ₹1,502.35"."""
        if self.kind == "%":
            since = "the first price" if first_price is None else fmt_price(first_price)
            return f"re-arms within {self.rearm_line:g}% of {since}"
        return f"re-arms {'below' if self.kind == '>' else 'above'} {fmt_price(self.rearm_line)}"

    def holds(self, price: float, first_price: float | None) -> bool:
        """Is the price past the line (a `%` rule needs the first price; without one, never)?"""
        if self.kind == ">":
            return price > self.level
        if self.kind == "<":
            return price < self.level
        move = _move_percent(price, first_price)
        return move is not None and move >= self.level

    def rearms(self, price: float, first_price: float | None) -> bool:
        """Is the price back inside the line by the hysteresis band (see the module docstring)?"""
        if self.kind == ">":
            return price < self.rearm_line
        if self.kind == "<":
            return price > self.rearm_line
        move = _move_percent(price, first_price)
        return move is not None and move < self.rearm_line


def _move_percent(price: float, first_price: float | None) -> float | None:
    """|price / first_price - 1| in percent, rounded so that 1530 from 1500 is 2 % exactly, not
    2.0000000000000018 (a line on the tick grid must not be missed by a float's last bit)."""
    if first_price is None or first_price <= 0:
        return None
    return round(abs(price / first_price - 1) * 100, 9)


def parse_rule(text: str) -> AlertRule:
    """`RELIANCE>1320`, `tcs < 3500`, `INFY%2` as a rule; anything else raises
    `argparse.ArgumentTypeError` with one line saying what is wrong (an argparse type, and the
    config file's check). Whether the server publishes the symbol is for the caller to ask."""
    operators = [char for char in text if char in KINDS]
    if len(operators) != 1:
        problem = "no >, < or %" if not operators else "more than one of >, < and %"
        raise argparse.ArgumentTypeError(f"invalid alert {text!r}: {problem}; {EXAMPLE}")
    kind = operators[0]
    symbol_text, _, level_text = text.partition(kind)
    symbol, level_text = symbol_text.strip().upper(), level_text.strip()
    if not symbol:
        raise argparse.ArgumentTypeError(f"invalid alert {text!r}: no symbol before {kind!r}; {EXAMPLE}")
    if not SYMBOL.fullmatch(symbol):
        raise argparse.ArgumentTypeError(
            f"invalid alert {text!r}: {symbol!r} is not a symbol (letters, digits, & . _ -, at most 32)"
        )
    what = "a percentage" if kind == "%" else "a price"
    try:
        level = float(level_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid alert {text!r}: expected {what} after {kind!r}, got {level_text!r}"
        ) from None
    if kind == "%" and not 0 < level <= 100:  # (NaN fails this too)
        raise argparse.ArgumentTypeError(f"invalid alert {text!r}: a percentage must be above 0 and at most 100")
    if not math.isfinite(level) or level <= 0:
        raise argparse.ArgumentTypeError(f"invalid alert {text!r}: a price must be a finite number above 0")
    return AlertRule(symbol, kind, level)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A rule that fired: the tick that crossed its line, and when (local time) the book saw it."""

    rule: AlertRule
    tick: Tick
    at: float
    first_price: float | None = None
    """The session's first price of the symbol, as the book was given it (a `%` rule's base)."""

    def headline(self) -> str:
        """ "RELIANCE above ₹1,320.00: ₹1,320.45"; a `%` rule adds the move, "(+2.03%)"."""
        text = f"{self.rule.describe(self.first_price)}: {fmt_price(self.tick.price)}"
        if self.rule.kind == "%" and self.first_price:
            text += f" ({(self.tick.price / self.first_price - 1) * 100:+.2f}%)"
        return text


class AlertBook:
    """The rules, in the order added, and whether each is armed; `observe` every tick of every symbol.

    Thread-safe: the feed calls `observe` from its own thread while the screen adds and removes rules.
    """

    def __init__(self, rules: Iterable[AlertRule] = ()) -> None:
        self._lock = threading.Lock()
        self._armed: dict[AlertRule, bool] = {}
        """Every rule held (a dict keeps the order added), and whether it may fire."""
        self._last: dict[str, tuple[str, int]] = {}
        """Each symbol's newest (epoch, seq) seen."""
        self._retired_epochs: dict[str, set[str]] = {}
        """Each symbol's epochs that a newer one replaced: a late tick from one of them is old."""
        for rule in rules:
            self.add(rule)

    @property
    def rules(self) -> list[AlertRule]:
        """A copy of the rules, in the order added."""
        with self._lock:
            return list(self._armed)

    def add(self, rule: AlertRule) -> bool:
        """Hold `rule`, armed; False (and nothing changes) if it is held already."""
        with self._lock:
            if rule in self._armed:
                return False
            self._armed[rule] = True
            return True

    def remove(self, rule: AlertRule) -> bool:
        """Drop `rule`; False if it was not held."""
        with self._lock:
            return self._armed.pop(rule, None) is not None

    def is_armed(self, rule: AlertRule) -> bool:
        """Whether `rule` would fire on its next crossing (False once fired, until it re-arms)."""
        with self._lock:
            return self._armed.get(rule, False)

    def observe(self, tick: Tick, first_price: float | None, at: float) -> list[Crossing]:
        """The rules that fire on `tick` (seen at local time `at`), in the order added.

        An armed rule fires when its condition holds, also on the first tick the book sees: a
        price already past the line when the rule is added (or the app starts) fires at once.
        It then stays disarmed until the price is back past the line by the band, and re-arms.
        `first_price` is the symbol's first price this session (for `%` rules; None: not known).
        A tick not newer than one seen for its symbol (a replay after a reconnect, a duplicate,
        or a late one from an epoch since replaced) is ignored.
        """
        with self._lock:
            if not self._is_new(tick):
                return []
            fired: list[Crossing] = []
            for rule, armed in self._armed.items():
                if rule.symbol != tick.symbol:
                    continue
                if armed and rule.holds(tick.price, first_price):
                    self._armed[rule] = False
                    fired.append(Crossing(rule, tick, at, first_price))
                elif not armed and rule.rearms(tick.price, first_price):
                    self._armed[rule] = True
            return fired

    def _is_new(self, tick: Tick) -> bool:
        """Remember `tick` as the symbol's newest if it is newer than any seen (lock held)."""
        last = self._last.get(tick.symbol)
        if last is not None:
            epoch, seq = last
            if tick.epoch == epoch and tick.seq <= seq:
                return False
            if tick.epoch != epoch:
                retired = self._retired_epochs.setdefault(tick.symbol, set())
                if tick.epoch in retired:
                    return False
                retired.add(epoch)
        self._last[tick.symbol] = (tick.epoch, tick.seq)
        return True


def first_seen(events: Sequence[Event], seq: int) -> float | None:
    """When (the event's local time) the first tick at or after `seq` arrived, among `events` of
    one client in its current epoch (oldest first); None if none has yet.

    Read from the newest back: a client appends a tick's seq only if it is above the last one, so
    seqs fall going back until the current epoch began; a rise going back is an older epoch's.
    """
    found: float | None = None
    later_seq: int | None = None
    for event in reversed(events):
        if event.empty:
            continue
        if event.seq < seq or (later_seq is not None and event.seq >= later_seq):
            break
        found, later_seq = event.at, event.seq
    return found


def first_seen_by(client: ModeClient, tick: Tick) -> float | None:
    """When `client` (a pane's) first received `tick` or a later one of its epoch; None if it has
    not, watches another symbol, or is on another epoch (it cannot tell then)."""
    if client.symbol != tick.symbol or client.epoch != tick.epoch:
        return None
    return first_seen(list(client.events), tick.seq)  # (a copy: the deque grows on the client's thread)


def seen_report(crossing: Crossing, seen: Mapping[str, float | None]) -> str:
    """Who saw the crossing first and how much later each other did: `seen` maps a pane's label to
    the local time it first received the crossing tick or a later one (`first_seen_by`), or None.

    "first seen by ws; sse +0.4 ms, longpoll +1.2 ms, poll +312 ms; webhook: not yet"
    """
    times = sorted(((at, label) for label, at in seen.items() if at is not None), key=lambda pair: pair[0])
    waiting = [label for label, at in seen.items() if at is None]
    if not times:
        return f"no pane has seen tick {crossing.tick.seq} yet" if seen else "no pane to see it"
    first_at, first_label = times[0]
    parts = [f"first seen by {first_label}"]
    if len(times) > 1:
        parts.append(", ".join(f"{label} +{fmt_ms((at - first_at) * 1000)}" for at, label in times[1:]))
    if waiting:
        parts.append(f"{', '.join(waiting)}: not yet")
    return "; ".join(parts)
