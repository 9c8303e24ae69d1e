"""What the three commands (`pushpull-server`, `pushpull-tui`, `pushpull-bench`) share on the command
line: a parser whose errors are one line and exit status 2, never a traceback, and argument types
whose errors state the range they accept.

Example:

    parser = ArgumentParser(prog="pushpull-bench", description="...")
    parser.add_argument("--duration", type=number(0, 3600, low_open=True), default=10.0)
    with exit_on_usage_error("pushpull-bench"):
        args = parser.parse_args()
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

__all__ = ["ArgumentParser", "UsageError", "exit_on_usage_error", "fail", "integer", "number"]


class UsageError(Exception):
    """A bad flag, env var or argument: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, raising `UsageError` instead of printing usage and exiting itself."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def fail(prog: str, message: str, status: int = 2) -> NoReturn:
    """Print `prog: error: message` on stderr and exit (2: a usage error)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


@contextlib.contextmanager
def exit_on_usage_error(prog: str) -> Iterator[None]:
    """Turn a `UsageError` raised in the block into one line on stderr and exit status 2."""
    try:
        yield
    except UsageError as exc:
        fail(prog, str(exc))


def _span(low: float | None, high: float | None, low_open: bool) -> str:
    if low is not None and high is not None:
        return f"{'above' if low_open else 'from'} {low:g} {'up ' if low_open else ''}to {high:g}"
    if low is not None:
        return f"{'above' if low_open else 'at least'} {low:g}"
    return f"at most {high:g}"


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float within [low, high] (or (low, high] with `low_open`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if value != value or too_low or too_high:  # NaN compares false to everything
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: expected a number {_span(low, high, low_open)}"
            )
        return value

    parse.__name__ = "number"
    return parse


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: expected a whole number {_span(low, high, False)}"
            )
        return value

    parse.__name__ = "integer"
    return parse
