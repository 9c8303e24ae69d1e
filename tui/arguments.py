"""Argument types `pushpull-tui` and `pushpull-bench` share (the generic ones are in `server.commandline`)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from server.commandline import number
from tui.defaults import DEFAULT_POLL_INTERVAL, DEFAULT_TICK_RATE, MAX_PANES, POLL_INTERVAL_RANGE

if TYPE_CHECKING:
    from tui.link import LinkProfile

__all__ = [
    "WEBHOOK_TOKEN_ENV",
    "add_feed_options",
    "add_link_options",
    "add_webhook_token_option",
    "bundled_server_args",
    "link_profile",
    "mode_list",
    "refused_with_server",
    "server_url",
    "server_urls",
]


def server_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"invalid server URL {text!r}: expected http://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in server URL {text!r}") from None
    return text.rstrip("/")


def server_urls(text: str) -> list[str]:
    """`--server URL1,URL2,...`: one or more servers, each valid, none listed twice (it would add
    nothing: clients are spread over the list, and a URL twice is the same instance twice)."""
    urls: list[str] = []
    for entry in text.split(","):
        if not entry.strip():
            raise argparse.ArgumentTypeError(f"empty entry in the server list {text!r}: expected URL1,URL2,...")
        url = server_url(entry.strip())
        if url in urls:
            raise argparse.ArgumentTypeError(f"server URL {url!r} is listed twice: list each server once")
        urls.append(url)
    return urls


def mode_list(text: str) -> list[str]:
    from tui.modes import MODES

    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(MODES)}"
        )
    if len(modes) > MAX_PANES:
        raise argparse.ArgumentTypeError(f"{len(modes)} panes asked for; at most {MAX_PANES}")
    return modes


def add_feed_options(parser: argparse.ArgumentParser) -> None:
    """`--poll-interval`, and `--tick-rate` / `--seed` for a bundled server (see `refused_with_server`)."""
    low, high = POLL_INTERVAL_RANGE
    parser.add_argument(
        "--poll-interval",
        type=number(low, high),
        default=DEFAULT_POLL_INTERVAL,
        help=f"seconds between polls, {low:g} to {high:g} (default {DEFAULT_POLL_INTERVAL:g})",
    )
    parser.add_argument(
        "--tick-rate",
        type=number(0, 10_000),
        default=None,
        help=f"bundled server only: ticks per second per symbol (default {DEFAULT_TICK_RATE:g})",
    )
    parser.add_argument("--seed", type=int, default=None, help="bundled server only: seed for a reproducible feed")


def add_link_options(parser: argparse.ArgumentParser) -> None:
    """`--network NAME`, or a link of one's own with `--latency` / `--jitter` / `--bandwidth`."""
    from tui.link import PROFILES

    group = parser.add_argument_group("network (an emulated link between the mode clients and the server)")
    group.add_argument(
        "--network",
        choices=list(PROFILES),
        default=None,
        metavar="NAME",
        help=f"a named link profile: {', '.join(PROFILES)} (README lists their figures and sources)",
    )
    group.add_argument("--latency", type=number(0, 10_000), default=None, metavar="MS", help="one-way latency, ms")
    group.add_argument(
        "--jitter", type=number(0, 10_000), default=None, metavar="MS", help="extra delay per chunk, 0 to MS ms"
    )
    group.add_argument(
        "--bandwidth", type=number(1, 10_000_000), default=None, metavar="KBIT", help="each direction, kbit/s"
    )


def link_profile(args: argparse.Namespace) -> LinkProfile | None:
    """The link the flags ask for (None: straight to the server); raises `ValueError` with one line
    when `--network` is given with a figure of one's own."""
    from tui.link import PROFILES, custom_profile

    figures = {"--latency": args.latency, "--jitter": args.jitter, "--bandwidth": args.bandwidth}
    given = [flag for flag, value in figures.items() if value is not None]
    if args.network is not None:
        if given:
            raise ValueError(f"--network {args.network} sets the link's figures; leave out {', '.join(given)}")
        return PROFILES[args.network]
    if not given:
        return None
    return custom_profile(args.latency or 0.0, args.jitter or 0.0, args.bandwidth)


WEBHOOK_TOKEN_ENV = "PUSHPULL_WEBHOOK_TOKEN"
"""The same variable `pushpull-server` reads its `--webhook-token` from."""


def add_webhook_token_option(parser: argparse.ArgumentParser, environ: dict[str, str] | None = None) -> None:
    """`--webhook-token`, by default from `PUSHPULL_WEBHOOK_TOKEN`: what webhook clients register with."""
    environ = dict(os.environ) if environ is None else environ
    parser.add_argument(
        "--webhook-token",
        default=environ.get(WEBHOOK_TOKEN_ENV) or None,
        metavar="TOKEN",
        help=f"bearer token for registering webhooks, if the server has one (default: ${WEBHOOK_TOKEN_ENV})",
    )


def refused_with_server(args: argparse.Namespace) -> str | None:
    """Why `--tick-rate` / `--seed` cannot go with `--server` (they would silently do nothing), or None."""
    if args.server is None:
        return None
    given = [flag for flag, value in (("--tick-rate", args.tick_rate), ("--seed", args.seed)) if value is not None]
    if not given:
        return None
    verb = "set" if len(given) > 1 else "sets"
    return f"{' and '.join(given)} {verb} the bundled server; a server given by --server runs its own feed"


def bundled_server_args(args: argparse.Namespace) -> list[str]:
    """The bundled server's flags from `--tick-rate` and `--seed`."""
    tick_rate = DEFAULT_TICK_RATE if args.tick_rate is None else args.tick_rate
    server_args = ["--tick-rate", f"{tick_rate:g}"]
    if args.seed is not None:
        server_args += ["--seed", str(args.seed)]
    return server_args
