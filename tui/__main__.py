"""`pushpull-tui`: the app, beside the bundled server (or attached to one with `--server`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from textual.theme import BUILTIN_THEMES

from server.commandline import ArgumentParser, exit_on_usage_error, fail
from tui import __version__
from tui.alerts import AlertRule, parse_rule
from tui.arguments import (
    add_feed_options,
    add_link_options,
    add_webhook_token_option,
    bundled_server_args,
    link_profile,
    mode_list,
    refused_with_server,
    server_urls,
)
from tui.config import ConfigError
from tui.config import default_path as default_config_path
from tui.config import load as load_config
from tui.defaults import DEFAULT_MODES, DEFAULT_SYMBOL, MAX_PANES

__all__ = ["main"]

PROG = "pushpull-tui"
SWITCH_INTERVAL = 0.001
"""Seconds between the interpreter's GIL hand-overs (default 0.005). Clients run on their own
threads (tui.runner); a shorter interval lets a tick's thread in sooner while the UI renders
(pane p95 at 200 ticks/s: 12 -> 6 ms). Process-wide, so it is set here, not by the app."""
EXIT_JOIN = 2.0
"""Seconds, in all, that clients get at exit to close their connections (and deregister webhooks)."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Watch the same stock ticks arrive by polling, long polling, SSE and WebSocket, "
        "side by side, with what each costs. Without --server it runs the bundled server itself.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--server",
        type=server_urls,
        metavar="URL[,URL...]",
        help="attach to a running pushpull-server at this URL; several (sharing a broker): pane i talks to URL i mod n",
    )
    parser.add_argument(
        "--symbol", default=DEFAULT_SYMBOL, type=str.upper, help=f"symbol to watch (default {DEFAULT_SYMBOL})"
    )
    parser.add_argument(
        "--modes", type=mode_list, default=None, help=f"comma-separated panes (default {','.join(DEFAULT_MODES)})"
    )
    add_feed_options(parser)
    add_webhook_token_option(parser)
    add_link_options(parser)
    parser.add_argument(
        "--log", type=Path, default=None, help="append the app's log (and the bundled server's output) to this file"
    )
    parser.add_argument(
        "--theme",
        choices=sorted(BUILTIN_THEMES),
        default=None,
        metavar="NAME",
        help="colour theme (default textual-dark)",
    )
    parser.add_argument(
        "--alert",
        dest="alerts",
        action="append",
        type=parse_rule,
        default=None,
        metavar="RULE",
        help="notify when a price crosses a line: SYMBOL>PRICE, SYMBOL<PRICE, or SYMBOL%%PERCENT for a move "
        "from the session's first price (e.g. --alert 'RELIANCE>1320' --alert 'INFY%%2'); repeatable, "
        "added to the settings file's alerts",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"settings file (default {default_config_path()}); flags win over it, `w` saves to it",
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The flags, over the config file's settings (`tui.config`); `args.config` is where it is."""
    parser = build_parser()
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config", type=Path, default=None)
    wanted, _ = first.parse_known_args(list(argv))
    try:
        loaded = load_config(wanted.config)
    except ConfigError as exc:
        fail(PROG, str(exc))
    defaults = dict(loaded.values)
    saved_alerts: list[AlertRule] = defaults.pop("alerts", [])
    parser.set_defaults(**defaults)  # (the file's values are defaults: a flag given wins)
    args = parser.parse_args(list(argv))
    args.config = loaded.path
    # Alerts add up rather than replace: each is a watch of its own, and `w` would otherwise write
    # back only the flags' ones. (Kept out of set_defaults: `append` would add to that list too,
    # but only by an argparse detail, and a rule given twice would be held twice.)
    args.alerts = list(dict.fromkeys([*saved_alerts, *(args.alerts or [])]))
    own_figures = any(value is not None for value in (args.latency, args.jitter, args.bandwidth))
    if own_figures and "network" in defaults and not any(a.split("=")[0] == "--network" for a in argv):
        args.network = None  # a link of one's own on the command line wins over the file's named one
    try:
        args.link = link_profile(args)
    except ValueError as exc:
        fail(PROG, str(exc))
    if args.link is not None and args.link.emulates and any(url.startswith("https:") for url in args.server or ()):
        fail(PROG, "an emulated link relays plain http:// only (through it, TLS would be checked against 127.0.0.1)")
    problem = refused_with_server(args)
    if problem is not None:
        fail(PROG, problem)
    if args.server is not None and len(args.server) > MAX_PANES:
        fail(PROG, f"{len(args.server)} servers given; at most {MAX_PANES}, one per pane")
    return args


def refuse_unknown_symbol(urls: list[str], symbol: str, alerts: Sequence[AlertRule] = ()) -> None:
    """Exit 2 with one line if a server is up and does not publish `symbol` or an alert's symbol."""
    import asyncio

    import httpx

    from tui.symbols import unknown_symbol

    named = {symbol: ""}  # each symbol to ask about, and how the complaint names where it came from
    for rule in alerts:
        named.setdefault(rule.symbol, f"alert {str(rule)!r}: ")
    asked = [(url, name) for name in named for url in urls]

    async def ask() -> list[str | None]:
        async with httpx.AsyncClient(timeout=3.0) as http:
            return await asyncio.gather(*(unknown_symbol(http, url, name) for url, name in asked))

    for (url, name), problem in zip(asked, asyncio.run(ask()), strict=True):
        if problem is not None:
            fail(PROG, named[name] + (problem if len(urls) == 1 else f"{url}: {problem}"))


def main(argv: Sequence[str] | None = None) -> None:
    with exit_on_usage_error(PROG):
        args = parse_args(sys.argv[1:] if argv is None else argv)

    from tui.app import PushPullApp
    from tui.embedded import EmbeddedServer, EmbeddedServerError
    from tui.logs import configure_logging
    from tui.runner import join_all

    try:
        kept_errors = configure_logging(args.log)
    except OSError as exc:
        fail(PROG, f"cannot write the log {args.log}: {exc.strerror or exc}")
    sys.setswitchinterval(SWITCH_INTERVAL)
    modes = args.modes or list(DEFAULT_MODES)
    embedded: EmbeddedServer | None = None
    urls: list[str] | None = args.server
    if urls is None:
        embedded = EmbeddedServer(bundled_server_args(args))
        try:
            urls = [embedded.start()]
        except EmbeddedServerError as exc:
            fail(PROG, str(exc))
    try:
        refuse_unknown_symbol(urls, args.symbol, args.alerts)
        app = PushPullApp(
            urls,
            symbol=args.symbol,
            modes=modes,
            poll_interval=args.poll_interval,
            embedded=embedded is not None,
            webhook_token=args.webhook_token,
            theme=args.theme,
            config_path=args.config,
            alerts=args.alerts,
            desktop_notifications=True,
            link=args.link,
        )
        app.run()
        join_all(EXIT_JOIN)
        if app.link is not None:  # after its clients closed through it
            app.link.close()
    finally:
        if embedded is not None:
            died = embedded.died
            embedded.stop()
            if died:
                lines = "\n".join(f"  {line}" for line in embedded.last_lines)
                print(
                    f"{PROG}: the bundled server exited (status {embedded.exit_status}); its last lines:\n{lines}",
                    file=sys.stderr,
                )
    for record in kept_errors.records:
        print(record, file=sys.stderr)
    if kept_errors.records:
        where = f"; the full log is in {args.log}" if args.log else ""
        print(f"{PROG}: {len(kept_errors.records)} error(s) were logged while the app ran{where}", file=sys.stderr)


if __name__ == "__main__":
    main()
