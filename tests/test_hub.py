"""The hub's one way in and out of a topic, and its delivery invariant (see server/hub.py)."""

from __future__ import annotations

import pytest

from server.hub import Entry, Hub, Listener
from server.schema import Tick


def tick(seq: int, symbol: str = "TCS") -> Tick:
    return Tick(symbol=symbol, seq=seq, price=3500.0 + seq, ts=1.8e9 + seq, epoch="e1")


class Recorder(Listener):
    """Remembers the seqs it was told of; optionally does something to the hub when told."""

    def __init__(self, when_told: object = None) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.when_told = when_told

    def on_entry(self, entry: Entry) -> None:
        self.seen.append(entry.seq)
        if callable(self.when_told):
            self.when_told()


def test_a_subscription_hears_every_tick_until_it_is_cancelled() -> None:
    hub = Hub(["TCS", "INFY"], capacity=10)
    listener = Recorder()
    subscription = hub.subscribe("TCS", listener)
    hub.deliver(tick(1))
    hub.deliver(tick(1, "INFY"))  # another topic: not heard
    subscription.cancel()
    subscription.cancel()  # twice is harmless
    hub.deliver(tick(2))
    assert listener.seen == [1]
    assert hub.topics["TCS"].listener_count == 0 and not subscription.active


def test_a_with_block_always_unsubscribes_even_on_an_error() -> None:
    hub = Hub(["TCS"], capacity=10)
    listener = Recorder()
    with pytest.raises(ZeroDivisionError), hub.subscribe("TCS", listener):
        hub.deliver(tick(1))
        raise ZeroDivisionError
    hub.deliver(tick(2))
    assert listener.seen == [1] and hub.topics["TCS"].listener_count == 0


def test_listeners_may_subscribe_and_cancel_while_a_tick_is_delivered() -> None:
    """Changes made during a delivery take effect from the next tick: the one under way still goes
    to the listeners subscribed when it began, whatever order they are told in."""
    hub = Hub(["TCS"], capacity=10)
    late = Recorder()
    later: list[object] = []
    second = Recorder()
    second_subscription = None

    def change_the_audience() -> None:
        if not later:
            later.append(hub.subscribe("TCS", late))  # joins: hears from tick 2 on
            assert second_subscription is not None
            second_subscription.cancel()  # leaves: still told of tick 1, not of tick 2

    first = Recorder(change_the_audience)
    hub.subscribe("TCS", first)
    second_subscription = hub.subscribe("TCS", second)
    hub.deliver(tick(1))
    hub.deliver(tick(2))
    assert first.seen == [1, 2] and second.seen == [1] and late.seen == [2]


def test_a_broken_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub(["TCS"], capacity=10)

    def broken() -> None:
        raise ValueError("a bug in one subscriber")

    hub.subscribe("TCS", Recorder(broken))
    after = Recorder()
    hub.subscribe("TCS", after)
    hub.deliver(tick(1))
    assert after.seen == [1]
    assert "failed to take tick TCS:1" in caplog.text


def test_heartbeats_follow_the_same_rules() -> None:
    hub = Hub(["TCS"], capacity=10)
    beats: list[str] = []

    class Beat(Listener):
        def on_beat(self) -> None:
            beats.append("beat")

    with hub.follow_heartbeats(Beat()):
        hub.beat()
    hub.beat()
    assert beats == ["beat"]


def test_an_unknown_symbol_cannot_be_subscribed() -> None:
    hub = Hub(["TCS"], capacity=10)
    with pytest.raises(KeyError):
        hub.subscribe("NOPE", Recorder())
