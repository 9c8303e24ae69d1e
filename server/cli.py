"""Command-line parsing for `pushpull-server`: every flag also read from `PUSHPULL_<FLAG>`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from server import __version__
from server.broker import public_url
from server.commandline import ArgumentParser, UsageError, integer, number
from server.gate import default_max_connections
from server.settings import Settings
from server.webhooks import reaches_beyond_loopback

__all__ = ["UsageError", "parse_settings"]

DEFAULTS = Settings()
"""Every default lives in `Settings`; the flags only read them."""


def _symbols(text: str) -> tuple[str, ...]:
    names = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not names or any(not s.replace("-", "").replace("&", "").isalnum() or len(s) > 32 for s in names):
        raise ValueError(text)
    return tuple(dict.fromkeys(names))


def _broker(text: str) -> str:
    if text != "memory" and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(text)
    return text


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def _origin(text: str) -> str:
    if text != "*" and not text.startswith(("http://", "https://")):
        raise ValueError(text)
    return text.rstrip("/")


def _typed(
    name: str, convert: Callable[[str], Any], expected: str, shown: Callable[[str], str] = str
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name}: {shown(text)!r} (expected {expected})") from None

    parse.__name__ = name
    return parse


_seconds = number(0, 3600, low_open=True)
_count = integer(1)


OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--host", {"default": DEFAULTS.host, "help": f"address to listen on (default {DEFAULTS.host})"}),
    (
        "--port",
        {
            "type": integer(0, 65535),
            "default": DEFAULTS.port,
            "help": f"port; 0 picks a free one (default {DEFAULTS.port})",
        },
    ),
    (
        "--symbols",
        {
            "type": _typed("symbol list", _symbols, "names of letters and digits, comma-separated"),
            "default": DEFAULTS.symbols,
            "help": f"comma-separated symbols to publish (default {','.join(DEFAULTS.symbols)})",
        },
    ),
    (
        "--tick-rate",
        {
            "type": number(0, 10_000),
            "default": DEFAULTS.tick_rate,
            "help": "mean simulated ticks per second per symbol, Poisson arrivals; 0 = off "
            f"(default {DEFAULTS.tick_rate:g})",
        },
    ),
    ("--seed", {"type": integer(), "default": DEFAULTS.seed, "help": "seed for a reproducible feed"}),
    ("--no-feed", {"action": "store_true", "help": "no simulator: only POST /api/publish makes ticks"}),
    (
        "--broker",
        {
            "type": _typed("broker", _broker, "memory or redis://HOST:PORT/DB", shown=public_url),
            "default": DEFAULTS.broker,
            "help": "memory (default) or redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS): "
            "several server processes share one Redis",
        },
    ),
    (
        "--workers",
        {
            "type": integer(1, 64),
            "default": DEFAULTS.workers,
            "help": "server processes on one port, so every core serves; over 1 needs a Redis broker (default 1)",
        },
    ),
    (
        "--publish-token",
        {"default": DEFAULTS.publish_token, "help": "bearer token for POST /api/publish (unset: publishing is off)"},
    ),
    (
        "--history",
        {
            "type": _count,
            "default": DEFAULTS.history,
            "help": f"ticks kept per symbol for resume (default {DEFAULTS.history})",
        },
    ),
    (
        "--webhook-allow",
        {
            "type": _typed("CIDR", _network, "a network such as 10.0.0.0/8"),
            "nargs": "+",
            "action": "extend",
            "default": None,
            "help": "networks webhook targets may resolve into, besides loopback",
        },
    ),
    (
        "--cors",
        {
            "type": _typed("origin", _origin, "* or http(s)://HOST[:PORT]"),
            "nargs": "+",
            "action": "extend",
            "default": None,
            "help": "web origins allowed to subscribe from a browser",
        },
    ),
    (
        "--heartbeat",
        {
            "type": _seconds,
            "default": DEFAULTS.heartbeat,
            "help": f"seconds between SSE keep-alive comments (default {DEFAULTS.heartbeat:g})",
        },
    ),
    (
        "--max-connections",
        {
            "type": _count,
            "default": None,
            "help": "open connections of any kind before new ones get 503 (a WebSocket 1013) "
            "(default: the descriptor limit less a margin, {auto} here)",
        },
    ),
    (
        "--max-request-line",
        {
            "type": _count,
            "default": DEFAULTS.max_request_line,
            "help": f"bytes of a request line before 414 (default {DEFAULTS.max_request_line})",
        },
    ),
    (
        "--max-head",
        {
            "type": _count,
            "default": DEFAULTS.max_head,
            "help": f"bytes of a request head, line and headers, before 431 (default {DEFAULTS.max_head})",
        },
    ),
    (
        "--head-timeout",
        {
            "type": _seconds,
            "default": DEFAULTS.head_timeout,
            "help": "seconds a request head may take, counted from the connection's opening or the "
            f"request's first byte, before 408 (default {DEFAULTS.head_timeout:g})",
        },
    ),
    (
        "--body-timeout",
        {
            "type": _seconds,
            "default": DEFAULTS.body_timeout,
            "help": f"seconds a request body may take before the connection closes (default {DEFAULTS.body_timeout:g})",
        },
    ),
    (
        "--max-pipelined",
        {
            "type": _count,
            "default": DEFAULTS.max_pipelined,
            "help": "bytes a client may send ahead of an unfinished answer before its connection closes "
            f"(default {DEFAULTS.max_pipelined})",
        },
    ),
    (
        "--max-outgoing",
        {
            "type": _count,
            "default": DEFAULTS.max_outgoing,
            "help": "bytes waiting for a client that does not read before its connection is aborted "
            f"(default {DEFAULTS.max_outgoing})",
        },
    ),
    (
        "--ws-max-lag",
        {
            "type": _count,
            "default": None,
            "help": "ticks a stalled WebSocket client may fall behind before it is closed "
            "with 1008 (default: half of --history)",
        },
    ),
    (
        "--max-webhooks",
        {
            "type": _count,
            "default": DEFAULTS.max_webhooks,
            "help": f"registered webhook endpoints before 429 (default {DEFAULTS.max_webhooks})",
        },
    ),
    (
        "--webhook-disable-after",
        {
            "type": _seconds,
            "default": DEFAULTS.webhook_disable_after,
            "help": "disable a webhook failing this long without a success "
            f"(default {DEFAULTS.webhook_disable_after:g})",
        },
    ),
    ("--access-log", {"action": "store_true", "help": "log every request (slows fan-out)"}),
    (
        "--no-fast-path",
        {
            "action": "store_true",
            "help": "never write straight to uvicorn's sockets: serve every stream by plain ASGI "
            "(slower; for comparing, or if a uvicorn upgrade misbehaves)",
        },
    ),
    # Webhook registration and answers (issue 13, items 5 and 8).
    (
        "--webhook-token",
        {
            "default": DEFAULTS.webhook_token,
            "help": "bearer token POST /api/webhooks needs; required when --webhook-allow reaches beyond "
            "loopback (unset and loopback only: registration is open)",
        },
    ),
    (
        "--webhook-timeout",
        {
            "type": _seconds,
            "default": DEFAULTS.webhook_timeout,
            "help": "seconds one delivery attempt may take in all, the receiver's whole answer included "
            f"(default {DEFAULTS.webhook_timeout:g})",
        },
    ),
    (
        "--webhook-max-response",
        {
            "type": integer(0, 1 << 20),
            "default": DEFAULTS.webhook_max_response,
            "help": "bytes of a receiver's answer body read; past them the connection is dropped unread "
            f"(default {DEFAULTS.webhook_max_response})",
        },
    ),
]


def _env_name(flag: str) -> str:
    return "PUSHPULL_" + flag.removeprefix("--").replace("-", "_").upper()


class _BadEnv:
    """A `PUSHPULL_*` value that did not parse: an error only if the flag is not given instead."""

    def __init__(self, message: str) -> None:
        self.message = message


def _env_default(flag: str, spec: dict[str, Any], environ: dict[str, str]) -> Any:
    raw = environ.get(_env_name(flag))
    if raw is None or raw == "":
        return spec.get("default")
    if spec.get("action") == "store_true":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        return _BadEnv(f"{_env_name(flag)}: expected true or false, got {raw!r}")
    convert = spec.get("type", str)
    try:
        if spec.get("nargs") == "+":
            return [convert(part) for part in raw.replace(",", " ").split()]
        return convert(raw)
    except argparse.ArgumentTypeError as exc:
        return _BadEnv(f"{_env_name(flag)}: {exc}")


def build_parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="pushpull-server",
        description="The pushpull mini-server: simulated NSE ticks by poll, long poll, SSE and WebSocket.",
        epilog="Every flag can also be set as an env var, e.g. PUSHPULL_TICK_RATE=5 or PUSHPULL_NO_FEED=1.",
    )
    parser.add_argument("--version", action="version", version=f"pushpull-server {__version__}")
    auto = str(default_max_connections())  # (after start-up raised the descriptor limit)
    for flag, spec in OPTIONS:
        shown = {"help": spec["help"].replace("{auto}", auto)} if "help" in spec else {}
        parser.add_argument(flag, **{**spec, **shown, "default": _env_default(flag, spec, environ)})
    return parser


def parse_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ) if environ is None else environ
    args = build_parser(environ).parse_args(list(sys.argv[1:] if argv is None else argv))
    for value in vars(args).values():
        if isinstance(value, _BadEnv):
            raise UsageError(value.message)
    history: int = args.history
    if args.ws_max_lag is not None and args.ws_max_lag >= history:
        raise UsageError(f"--ws-max-lag ({args.ws_max_lag}) must be below --history ({history})")
    if args.workers > 1 and args.broker == "memory":
        raise UsageError(
            f"--workers {args.workers} needs --broker redis://...: with the in-process broker every worker "
            "would run its own feed and count seq on its own, so clients would see different ticks"
        )
    webhook_token: str | None = args.webhook_token or None
    if webhook_token is None and reaches_beyond_loopback(args.webhook_allow or ()):
        raise UsageError(
            "--webhook-allow reaches beyond loopback: set --webhook-token (or PUSHPULL_WEBHOOK_TOKEN), or anyone "
            "who can reach this server could make it send requests into those networks"
        )
    return Settings(
        workers=args.workers,
        host=args.host,
        port=args.port,
        symbols=tuple(args.symbols),
        tick_rate=0.0 if args.no_feed else args.tick_rate,
        seed=args.seed,
        broker=args.broker,
        publish_token=args.publish_token or None,
        history=history,
        webhook_allow=tuple(args.webhook_allow or ()),
        cors=tuple(args.cors or ()),
        heartbeat=args.heartbeat,
        max_connections=args.max_connections or 0,
        max_request_line=args.max_request_line,
        max_head=args.max_head,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        max_pipelined=args.max_pipelined,
        max_outgoing=args.max_outgoing,
        ws_max_lag=args.ws_max_lag or 0,
        access_log=args.access_log,
        fast_path=not args.no_fast_path,
        max_webhooks=args.max_webhooks,
        webhook_disable_after=args.webhook_disable_after,
        webhook_token=webhook_token,
        webhook_timeout=args.webhook_timeout,
        webhook_max_response=args.webhook_max_response,
    )
