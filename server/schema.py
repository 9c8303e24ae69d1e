"""The wire schema: one source of truth for the server and the clients that read it."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from server.wire import tick_json

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PRICE",
    "NSE_TICK_SIZE",
    "BatchPublish",
    "LongPollReply",
    "Ping",
    "PublishItem",
    "SeqCursor",
    "Subscribe",
    "Tick",
    "Unsubscribe",
    "publish_time",
    "round_to_tick",
]

MAX_MESSAGE_BYTES = 64 * 1024
"""The largest request body, WebSocket frame or webhook delivery either side accepts (SPEC: 64 KiB);
past it a body gets 413 and a frame closes the socket with 1009."""

NSE_TICK_SIZE = 0.05
"""Smallest price step on the NSE cash market; every published price is a multiple of it."""

MAX_PRICE = 1e12
"""Prices above this are refused (422): no listed share costs a trillion rupees, and the tick
rounding must stay exact."""

Price = Annotated[
    float,
    Field(gt=0, le=MAX_PRICE, allow_inf_nan=False, strict=True, description="Rupees; rounded to 0.05."),
]


MAX_SEQ_DIGITS = 18


def _whole_number(value: object) -> object:
    """A cursor is written in ASCII digits and nothing else: Python's int() also takes "+1",
    "1_0", " 1", "1.0" (through pydantic) and other scripts' digits, none of which a client means."""
    if isinstance(value, bool | float):
        raise ValueError("expected a whole number, like 42")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > MAX_SEQ_DIGITS:
            raise ValueError(f"expected a whole number of up to {MAX_SEQ_DIGITS} digits 0-9, like 42")
        return int(value)
    return value


SeqCursor = Annotated[int, BeforeValidator(_whole_number), Field(ge=0, le=10**MAX_SEQ_DIGITS)]
"""A `seq` a client says it has (`after`): a non-negative whole number in ASCII digits."""


def round_to_tick(price: float) -> float:
    """Round a price to the nearest NSE tick, never below one tick."""
    steps = max(1, round(price / NSE_TICK_SIZE))
    return round(steps * NSE_TICK_SIZE, 2)


def publish_time() -> float:
    """Now, in Unix seconds to the microsecond: the precision `ts` carries on the wire."""
    return round(time.time(), 6)


class Tick(BaseModel):
    """One published price.

    `seq` counts per symbol within `epoch`; `ts` is the server's publish time (Unix seconds).
    """

    model_config = ConfigDict(frozen=True)

    symbol: str = Field(examples=["RELIANCE"])
    seq: int = Field(ge=1, examples=[42])
    price: float = Field(examples=[1312.45])
    ts: float = Field(examples=[1764290000.123456])
    epoch: str = Field(examples=["k3v9"])

    def to_json(self) -> bytes:
        """The wire form (`server.wire.tick_json`)."""
        return tick_json(self.symbol, self.seq, self.price, self.ts, self.epoch)


class PublishItem(BaseModel):
    """Body of `POST /api/publish` for one tick."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=32)
    price: Price


class BatchPublish(BaseModel):
    """Body of `POST /api/publish` for several ticks, published in order."""

    model_config = ConfigDict(extra="forbid")

    ticks: list[PublishItem] = Field(min_length=1)


class LongPollReply(BaseModel):
    """A long poll's answer: every tick after the cursor, or the latest one with `gap` set."""

    ticks: list[Tick]
    gap: bool


class Subscribe(BaseModel):
    """WebSocket op: start (or resume) receiving ticks of some symbols."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["subscribe"]
    symbols: list[str] = Field(min_length=1)
    after: dict[str, SeqCursor] = Field(default_factory=dict)
    epoch: str | None = None


class Unsubscribe(BaseModel):
    """WebSocket op: stop receiving ticks of some symbols."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["unsubscribe"]
    symbols: list[str] = Field(min_length=1)


class Ping(BaseModel):
    """WebSocket op: ask for a `pong` carrying the server's clock."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["ping"]
