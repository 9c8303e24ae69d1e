"""`pushpull-tui`: the app, beside the bundled server (or attached to one with `--server`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn
from urllib.parse import urlsplit

from tui import __version__

__all__ = ["main"]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def server_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"invalid server URL {text!r}: expected http://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in server URL {text!r}") from None
    return text.rstrip("/")


def mode_list(text: str) -> list[str]:
    from tui.modes import MODES

    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(MODES)}"
        )
    return modes


def number_in(low: float, high: float, *, low_inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a float within (or from) `low` up to `high`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (low <= value if low_inclusive else low < value) or not value <= high:
            raise argparse.ArgumentTypeError(f"out of range: {text!r}")
        return value

    return parse


positive_float = number_in(0, 3600, low_inclusive=False)
tick_rate = number_in(0, 10_000, low_inclusive=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pushpull-tui",
        description="Watch the same stock ticks arrive by polling, long polling, SSE and WebSocket, "
        "side by side, with what each costs. Without --server it runs the bundled server itself.",
    )
    parser.add_argument("--version", action="version", version=f"pushpull-tui {__version__}")
    parser.add_argument("--server", type=server_url, help="attach to a running pushpull-server at this URL")
    parser.add_argument("--symbol", default="RELIANCE", type=str.upper, help="symbol to watch (default RELIANCE)")
    parser.add_argument(
        "--modes", type=mode_list, default=None, help="comma-separated panes (default poll,longpoll,sse,ws)"
    )
    parser.add_argument("--poll-interval", type=positive_float, default=1.0, help="seconds between polls (default 1)")
    parser.add_argument(
        "--tick-rate", type=tick_rate, default=2.0, help="bundled server: ticks per second per symbol (default 2)"
    )
    parser.add_argument("--seed", type=int, default=None, help="bundled server: seed for a reproducible feed")
    return parser


def refuse_unknown_symbol(url: str, symbol: str) -> None:
    """Exit 2 with one line if the server is up and does not publish `symbol`."""
    import asyncio

    import httpx

    from tui.symbols import unknown_symbol

    async def ask() -> str | None:
        async with httpx.AsyncClient(timeout=3.0) as http:
            return await unknown_symbol(http, url, symbol)

    problem = asyncio.run(ask())
    if problem is not None:
        print(f"pushpull-tui: error: {problem}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"pushpull-tui: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    from tui.app import DEFAULT_MODES, PushPullApp
    from tui.embedded import EmbeddedServer, EmbeddedServerError

    modes = args.modes or list(DEFAULT_MODES)
    if args.server:
        refuse_unknown_symbol(args.server, args.symbol)
        app = PushPullApp(args.server, symbol=args.symbol, modes=modes, poll_interval=args.poll_interval)
        app.run()
        return
    server_args = ["--tick-rate", f"{args.tick_rate:g}"]
    if args.seed is not None:
        server_args += ["--seed", str(args.seed)]
    embedded = EmbeddedServer(server_args)
    try:
        url = embedded.start()
    except EmbeddedServerError as exc:
        print(f"pushpull-tui: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        refuse_unknown_symbol(url, args.symbol)
        app = PushPullApp(url, symbol=args.symbol, modes=modes, poll_interval=args.poll_interval, embedded=True)
        app.run()
    finally:
        embedded.stop()


if __name__ == "__main__":
    main()
