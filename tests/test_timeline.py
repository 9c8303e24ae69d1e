"""The timeline draws what happened where it happened: a poll's lag, its misses and its empty asks."""

from __future__ import annotations

from tui.modes import Event
from tui.timeline import GLYPHS, Published, published_strip, received_strip, window_for

NOW = 1_000.0
WINDOW = 10.0
WIDTH = 40  # a cell is 0.25 s

PUBLISHED = [Published(NOW - 9.0, 11), Published(NOW - 6.0, 12), Published(NOW - 5.0, 13), Published(NOW - 1.0, 14)]


def cell(seconds_ago: float) -> int:
    return WIDTH - 1 - int(seconds_ago / WINDOW * WIDTH)


def glyph(kind: str) -> str:
    return GLYPHS[kind][0]


def test_published_ticks_sit_at_their_publish_time_newest_on_the_right() -> None:
    strip = published_strip(PUBLISHED, now=NOW, window=WINDOW, width=WIDTH).plain
    assert len(strip) == WIDTH
    marked = [i for i, c in enumerate(strip) if c == glyph("published")]
    assert marked == sorted(cell(NOW - p.at) for p in PUBLISHED)


def test_a_polls_lag_misses_and_empty_answers_are_drawn_where_they_happened() -> None:
    events = [
        Event(NOW - 8.0, 11),  # got 11 a second late
        Event(NOW - 7.0, 0),  # asked, nothing new
        Event(NOW - 4.0, 13),  # got 13; 12 was published in between and never seen
        Event(NOW - 2.0, 0),
    ]
    strip = received_strip(events, PUBLISHED, now=NOW, window=WINDOW, width=WIDTH, running_since=NOW - 9.5).plain
    assert strip[cell(8.0)] == glyph("received") and strip[cell(4.0)] == glyph("received")
    assert strip[cell(7.0)] == glyph("empty") and strip[cell(2.0)] == glyph("empty")
    assert strip[cell(6.0)] == glyph("missed")  # 12, at its publish time
    assert strip[cell(1.0)] == " "  # 14 is newer than anything received: maybe on its way, not missed
    assert strip.count(glyph("missed")) == 1


def test_ticks_published_before_a_client_ran_are_not_its_misses() -> None:
    events = [Event(NOW - 4.0, 13)]
    strip = received_strip(events, PUBLISHED, now=NOW, window=WINDOW, width=WIDTH, running_since=NOW - 5.5).plain
    assert glyph("missed") not in strip  # 11 and 12 came before it started


def test_a_miss_wins_a_shared_cell_then_a_receipt_then_an_empty_answer() -> None:
    published = [Published(NOW - 3.0, 1), Published(NOW - 2.95, 2), Published(NOW - 2.0, 3)]
    events = [Event(NOW - 2.95, 0), Event(NOW - 2.96, 1), Event(NOW - 0.5, 3)]
    strip = received_strip(events, published, now=NOW, window=WINDOW, width=WIDTH, running_since=NOW - 5).plain
    assert strip[cell(2.95)] == glyph("missed")  # 2 never came; its cell also holds a receipt and an ask


def test_the_window_follows_the_width_within_bounds() -> None:
    assert window_for(40) == 10.0
    assert window_for(4) == 5.0 and window_for(400) == 20.0


def test_ticks_before_the_first_one_a_run_received_are_not_marked_missed() -> None:
    """As the counter counts: a webhook still registering, or a poll's first answer still on its
    way, has not missed what came before its first tick."""
    events = [Event(NOW - 4.0, 13), Event(NOW - 0.5, 14)]
    strip = received_strip(events, PUBLISHED, now=NOW, window=WINDOW, width=WIDTH, running_since=NOW - 9.5).plain
    assert glyph("missed") not in strip
