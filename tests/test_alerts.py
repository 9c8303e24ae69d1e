"""Price alerts (`tui.alerts`): rules read from text, a book that fires once per crossing with
hysteresis, and who saw the crossing first."""

from __future__ import annotations

import argparse
import threading

import httpx
import pytest

from server.schema import Tick
from tests.helpers import RunningServer, publish, running_client, until
from tui.alerts import AlertBook, AlertRule, Crossing, first_seen, first_seen_by, parse_rule, seen_report
from tui.format import fmt_ms
from tui.modes import Event, ServerClock, make_client

EPOCH = "e1"


def tick(price: float, seq: int, symbol: str = "RELIANCE", epoch: str = EPOCH) -> Tick:
    return Tick(symbol=symbol, seq=seq, price=price, ts=1_700_000_000.0 + seq, epoch=epoch)


def walk(book: AlertBook, prices: list[float], symbol: str = "RELIANCE", first: float | None = None) -> list[int]:
    """Feed `prices` as ticks seq 1, 2, ...; the seqs at which something fired (once per rule)."""
    fired: list[int] = []
    for seq, price in enumerate(prices, start=1):
        fired += [c.tick.seq for c in book.observe(tick(price, seq, symbol), first or prices[0], at=float(seq))]
    return fired


# -- rules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("RELIANCE>1320", AlertRule("RELIANCE", ">", 1320.0)),
        ("TCS<3500.5", AlertRule("TCS", "<", 3500.5)),
        ("INFY%2", AlertRule("INFY", "%", 2.0)),
        ("reliance > 1320", AlertRule("RELIANCE", ">", 1320.0)),
        ("  infy %  0.5 ", AlertRule("INFY", "%", 0.5)),
        ("M&M<2900", AlertRule("M&M", "<", 2900.0)),
        ("BAJAJ-AUTO>9000", AlertRule("BAJAJ-AUTO", ">", 9000.0)),
        ("SBIN%100", AlertRule("SBIN", "%", 100.0)),
    ],
)
def test_a_rule_is_read_and_its_canonical_text_reads_back_the_same(text: str, rule: AlertRule) -> None:
    assert parse_rule(text) == rule
    assert parse_rule(str(rule)) == rule
    assert " " not in str(rule)


def test_the_canonical_text_is_the_plain_one() -> None:
    assert [str(parse_rule(t)) for t in ("reliance > 1320.0", "TCS<3500.50", "INFY%2", "X>1e16")] == [
        "RELIANCE>1320",
        "TCS<3500.5",
        "INFY%2",
        "X>1e+16",
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("RELIANCE", "no >, < or %"),
        ("RELIANCE=1320", "no >, < or %"),
        ("", "no >, < or %"),
        (">1320", "no symbol before '>'"),
        ("  %2", "no symbol before '%'"),
        ("RELIANCE>>1320", "more than one of >, < and %"),
        ("RELIANCE<>1320", "more than one of >, < and %"),
        ("INFY>2%", "more than one of >, < and %"),
        ("REL IANCE>1320", "'REL IANCE' is not a symbol"),
        ("RELIANCE!>1320", "'RELIANCE!' is not a symbol"),
        ("A" * 33 + ">1", "is not a symbol (letters, digits, & . _ -, at most 32)"),
        ("RELIANCE>", "expected a price after '>', got ''"),
        ("RELIANCE>abc", "expected a price after '>', got 'abc'"),
        ("RELIANCE>₹1320", "expected a price after '>', got '₹1320'"),
        ("INFY%two", "expected a percentage after '%', got 'two'"),
        ("RELIANCE>0", "a price must be a finite number above 0"),
        ("TCS<-5", "a price must be a finite number above 0"),
        ("TCS<nan", "a price must be a finite number above 0"),
        ("TCS<inf", "a price must be a finite number above 0"),
        ("INFY%0", "a percentage must be above 0 and at most 100"),
        ("INFY%101", "a percentage must be above 0 and at most 100"),
        ("INFY%-2", "a percentage must be above 0 and at most 100"),
        ("INFY%nan", "a percentage must be above 0 and at most 100"),
    ],
)
def test_every_bad_rule_is_one_line_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse_rule(text)
    message = str(refused.value)
    assert message.startswith(f"invalid alert {text!r}: ") and says in message, message
    assert "\n" not in message


def test_a_rule_describes_itself_and_where_it_re_arms_in_rupees() -> None:
    assert parse_rule("RELIANCE>1320").describe() == "RELIANCE above ₹1,320.00"
    assert parse_rule("TCS<3500").describe(3512.0) == "TCS below ₹3,500.00"
    assert parse_rule("INFY%2").describe(1502.35) == "INFY moved 2% from ₹1,502.35"
    assert parse_rule("INFY%0.5").describe(None) == "INFY moved 0.5% from the session's first price"
    assert parse_rule("RELIANCE>1320").rearm_text() == "re-arms below ₹1,318.68"
    assert parse_rule("TCS<3500").rearm_text() == "re-arms above ₹3,503.50"
    assert parse_rule("INFY%2").rearm_text(1502.35) == "re-arms within 1.9% of ₹1,502.35"
    assert parse_rule("INFY%0.1").rearm_text() == "re-arms within 0.05% of the first price"


# -- the book ----------------------------------------------------------------------------------------


def test_a_rule_fires_once_per_crossing_and_not_while_the_price_hovers_at_the_line() -> None:
    book = AlertBook([parse_rule("RELIANCE>1320")])
    #        1        2        3        4        5        6        7        8        9
    prices = [1310.0, 1320.0, 1320.05, 1319.9, 1320.5, 1318.7, 1321.0, 1318.65, 1320.1]
    # 2: at the line is not above it; 3: fires; 4-7: hovering (never below 1318.68): quiet;
    # 8: below the band, re-armed; 9: fires again
    assert walk(book, prices) == [3, 9]


def test_a_below_rule_re_arms_only_above_its_band() -> None:
    book = AlertBook([parse_rule("TCS<3500")])
    # band: 0.1 % of 3500 = 3.5, so re-armed only above 3503.5
    prices = [3510.0, 3499.95, 3503.5, 3490.0, 3503.55, 3499.0, 3498.0]
    assert walk(book, prices, "TCS") == [2, 6]


def test_a_percent_rule_fires_on_a_move_either_way_from_the_first_price() -> None:
    book = AlertBook([parse_rule("INFY%2")])
    first = 1500.0
    # +2 % is 1530, -2 % is 1470; re-armed once the move is back under 1.9 % (1471.5 .. 1528.5)
    prices = [1500.0, 1529.9, 1530.0, 1529.0, 1528.6, 1470.0, 1528.0, 1469.9, 1500.0, 1470.0]
    assert walk(book, prices, "INFY", first) == [3, 8, 10]
    crossing = AlertBook([parse_rule("INFY%2")]).observe(tick(1470.0, 1, "INFY"), first, at=1.0)[0]
    assert crossing.headline() == "INFY moved 2% from ₹1,500.00: ₹1,470.00 (-2.00%)"


def test_a_percent_rule_without_a_first_price_waits() -> None:
    book = AlertBook([parse_rule("INFY%2")])
    assert book.observe(tick(2000.0, 1, "INFY"), None, at=1.0) == []
    assert [c.tick.seq for c in book.observe(tick(2000.0, 2, "INFY"), 1500.0, at=2.0)] == [2]


def test_a_small_percent_rule_can_re_arm() -> None:
    """Under 0.2 % the band is half the level: 0.1 % re-arms under 0.05 %, not never."""
    book = AlertBook([parse_rule("SBIN%0.1")])
    assert walk(book, [800.0, 800.8, 800.2, 800.3, 800.9], "SBIN") == [2, 5]


def test_a_price_already_past_the_line_fires_on_the_first_tick_seen() -> None:
    book = AlertBook([parse_rule("RELIANCE>1320")])
    [crossing] = book.observe(tick(1400.0, 7), 1400.0, at=12.5)
    assert crossing == Crossing(parse_rule("RELIANCE>1320"), tick(1400.0, 7), 12.5, 1400.0)
    assert crossing.headline() == "RELIANCE above ₹1,320.00: ₹1,400.00"
    assert not book.is_armed(crossing.rule)
    assert book.observe(tick(1401.0, 8), 1400.0, at=13.0) == []


def test_replayed_and_older_ticks_do_not_fire_again() -> None:
    book = AlertBook([parse_rule("RELIANCE>1320")])
    assert len(book.observe(tick(1321.0, 5), 1300.0, at=1.0)) == 1
    assert book.observe(tick(1310.0, 3), 1300.0, at=2.0) == []  # older: ignored, so not re-armed by it
    assert book.observe(tick(1321.0, 6), 1300.0, at=3.0) == []
    # a reconnect replays from an old cursor: a dip and a rise already seen must not fire twice
    book = AlertBook([parse_rule("RELIANCE>1320")])
    live = [tick(1310.0, 1), tick(1321.0, 2), tick(1300.0, 3), tick(1322.0, 4)]
    assert [c.tick.seq for t in live for c in book.observe(t, 1310.0, at=1.0)] == [2, 4]
    assert [c for t in live[1:] for c in book.observe(t, 1310.0, at=2.0)] == []
    assert book.observe(tick(1322.0, 4), 1310.0, at=3.0) == []  # the same tick twice


def test_a_new_epoch_is_a_new_history_and_a_replaced_one_stays_old() -> None:
    book = AlertBook([parse_rule("RELIANCE>1320")])
    assert len(book.observe(tick(1321.0, 50, epoch="a"), 1300.0, at=1.0)) == 1
    assert book.observe(tick(1300.0, 1, epoch="b"), 1300.0, at=2.0) == []  # seq starts again: taken, re-arms
    assert len(book.observe(tick(1325.0, 2, epoch="b"), 1300.0, at=3.0)) == 1
    assert book.observe(tick(1300.0, 60, epoch="a"), 1300.0, at=4.0) == []  # late, from the old epoch
    assert not book.is_armed(parse_rule("RELIANCE>1320"))  # ... so it re-armed nothing


def test_several_rules_fire_on_one_tick_in_the_order_added_and_other_symbols_do_not() -> None:
    rules = [parse_rule(t) for t in ("RELIANCE>1320", "TCS>1000", "RELIANCE%1", "RELIANCE>1300", "RELIANCE<1200")]
    book = AlertBook(rules)
    fired = book.observe(tick(1325.0, 1), 1310.0, at=1.0)
    assert [c.rule for c in fired] == [rules[0], rules[2], rules[3]]
    assert all(c.tick.price == 1325.0 and c.at == 1.0 for c in fired)
    assert [c.rule for c in book.observe(tick(1100.0, 1, "TCS"), 1000.0, at=2.0)] == [rules[1]]


def test_the_book_holds_each_rule_once_and_a_rule_added_again_is_armed() -> None:
    rule = parse_rule("RELIANCE>1320")
    book = AlertBook([rule, parse_rule("reliance > 1320.0"), parse_rule("TCS<3500")])
    assert book.rules == [rule, parse_rule("TCS<3500")]
    assert book.add(rule) is False
    book.rules.clear()  # a copy
    assert len(book.rules) == 2
    assert len(book.observe(tick(1330.0, 1), 1330.0, at=1.0)) == 1
    assert book.remove(rule) is True and book.remove(rule) is False
    assert book.observe(tick(1331.0, 2), 1330.0, at=2.0) == []
    assert book.add(rule) is True and book.is_armed(rule)
    assert len(book.observe(tick(1332.0, 3), 1330.0, at=3.0)) == 1


def test_rules_added_and_removed_while_the_feed_observes_from_its_thread() -> None:
    """The feed calls from its own thread while the screen edits the rules: nothing breaks (without
    the lock, iterating the rules raised "dictionary changed size during iteration" here every run),
    and each steady rule fires once per crossing."""
    steady = [AlertRule("RELIANCE", ">", 1000.0 + n) for n in range(50)]
    book = AlertBook(steady)
    fired: list[Crossing] = []
    failures: list[BaseException] = []
    fed = threading.Event()

    def edit() -> None:
        n = 0
        while not fed.is_set():
            rule = AlertRule("RELIANCE", "<", 10.0 + n % 7)
            book.add(rule)
            book.remove(rule)
            n += 1

    def feed() -> None:
        try:
            for seq in range(1, 2001):  # above every line, then below every band, in turn
                fired.extend(book.observe(tick(1400.0 if seq % 2 else 900.0, seq), 1300.0, at=float(seq)))
        except BaseException as exc:
            failures.append(exc)
        finally:
            fed.set()

    editor, feeder = threading.Thread(target=edit), threading.Thread(target=feed)
    editor.start()
    feeder.start()
    feeder.join()
    editor.join()
    assert failures == []
    assert len(fired) == 1000 * len(steady)
    assert {c.rule for c in fired} == set(steady)
    assert book.rules == steady


# -- who saw it first --------------------------------------------------------------------------------


def test_first_seen_is_the_first_tick_at_or_after_the_crossing_in_the_current_epoch() -> None:
    events = [Event(1.0, 3), Event(1.5, 0), Event(2.0, 4), Event(2.5, 0), Event(3.0, 7), Event(4.0, 8)]
    assert first_seen(events, 4) == 2.0
    assert first_seen(events, 5) == 3.0  # a poll skipped 5 and 6: it saw the crossing with 7
    assert first_seen(events, 8) == 4.0
    assert first_seen(events, 9) is None
    assert first_seen([], 1) is None
    # an older epoch's higher seqs before this one's: not this epoch's receipts
    old_then_new = [Event(1.0, 90), Event(2.0, 95), Event(3.0, 2), Event(4.0, 3)]
    assert first_seen(old_then_new, 2) == 3.0
    assert first_seen(old_then_new, 1) == 3.0
    assert first_seen(old_then_new, 4) is None


def test_seen_report_names_the_first_and_how_much_later_each_other_saw_it() -> None:
    crossing = Crossing(parse_rule("RELIANCE>1320"), tick(1321.0, 42), at=100.0)
    times = {
        "poll": first_seen([Event(99.9, 41), Event(100.3120, 42)], 42),
        "ws": first_seen([Event(100.0000, 42)], 42),
        "webhook": first_seen([Event(99.0, 40)], 42),
        "longpoll": first_seen([Event(100.0012, 42)], 42),
        "sse": first_seen([Event(100.0004, 42)], 42),
    }
    assert seen_report(crossing, times) == (
        "first seen by ws; sse +0.4 ms, longpoll +1.2 ms, poll +312 ms; webhook: not yet"
    )
    assert seen_report(crossing, {"ws (pane 2)": 5.0}) == "first seen by ws (pane 2)"
    assert seen_report(crossing, {"poll": None, "sse": None}) == "no pane has seen tick 42 yet"
    assert seen_report(crossing, {}) == "no pane to see it"


def test_first_seen_by_reads_a_clients_own_receipts() -> None:
    now = [10.0]
    client = make_client("sse", "http://127.0.0.1:9", "RELIANCE", clock=ServerClock(local=lambda: now[0]))
    for seq, at in ((1, 10.0), (2, 10.5), (4, 11.0)):
        now[0] = at
        client.accept(tick(1300.0 + seq, seq))
    assert first_seen_by(client, tick(1302.0, 2)) == 10.5
    assert first_seen_by(client, tick(1303.0, 3)) == 11.0
    assert first_seen_by(client, tick(1305.0, 5)) is None
    assert first_seen_by(client, tick(1302.0, 2, symbol="TCS")) is None  # watching another symbol
    assert first_seen_by(client, tick(1302.0, 2, epoch="other")) is None  # on another history
    now[0] = 12.0
    client.accept(tick(1300.0, 1, epoch="e2"))  # the server restarted: seq 1 again
    assert first_seen_by(client, tick(1300.0, 1, epoch="e2")) == 12.0
    assert first_seen_by(client, tick(1302.0, 2, epoch="e2")) is None


async def test_a_crossing_seen_by_a_websocket_feed_is_reported_for_every_client(
    shared_server: RunningServer, own_symbol: str
) -> None:
    """The story end to end over the wire: a feed's ticks go through the book, the crossing fires
    once, and each pane's client tells when it got it."""
    book = AlertBook([AlertRule(own_symbol, ">", 5000.0)])  # (the symbol opens between 100 and 3000)
    fired: list[Crossing] = []
    first_prices: dict[str, float] = {}

    def on_tick(received: Tick) -> None:
        first = first_prices.setdefault(received.symbol, received.price)
        fired.extend(book.observe(received, first, at=feed.clock.local()))

    feed = make_client("ws", shared_server.url, own_symbol, on_tick=on_tick)
    panes = {label: make_client(mode, shared_server.url, own_symbol, poll_interval=0.1) for label, mode in
             (("sse", "sse"), ("poll", "poll"))}  # fmt: skip
    async with (
        httpx.AsyncClient() as http,
        running_client(feed),
        running_client(panes["sse"]),
        running_client(panes["poll"]),
    ):
        await until(lambda: all(c.last_tick is not None for c in (feed, *panes.values())))
        # above, hovering (the band is 5), back under 4995 (re-armed), above again
        await publish(http, shared_server, own_symbol, [4990.0, 5001.0, 4999.0, 5000.5, 4994.0, 5002.0])
        await until(lambda: feed.last_tick is not None and feed.last_tick.price == 5002.0)
        assert [c.tick.price for c in fired] == [5001.0, 5002.0]
        crossing = fired[0]
        await until(lambda: all(first_seen_by(c, crossing.tick) is not None for c in panes.values()))
        seen = {label: first_seen_by(client, crossing.tick) for label, client in panes.items()}
    report = seen_report(crossing, seen)
    times = {label: at for label, at in seen.items() if at is not None}
    first, other = sorted(times, key=lambda label: times[label])
    assert report == f"first seen by {first}; {other} +{fmt_ms((times[other] - times[first]) * 1000)}"
