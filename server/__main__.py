"""`pushpull-server`: run the mini-server; Ctrl+C / SIGTERM ends every stream and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, cast

import uvicorn

from server.app import create_app
from server.broker import public_url
from server.cli import parse_settings
from server.commandline import UsageError, fail
from server.fast_path import WS_PROTOCOL, FastPath, http_protocol, ws_protocol
from server.gate import Gate, raise_fd_limit
from server.gc_tuning import tune_gc
from server.runtime import Runtime
from server.schema import MAX_MESSAGE_BYTES
from server.settings import Settings
from server.transports.http_socket import HotHttpSocket
from server.transports.ws_socket import WebSocketSocket
from server.workers import supervise

__all__ = ["main"]

FLUSH_WAIT = 0.5
"""Seconds a connection gets at shutdown to flush what it has to send (a stream's last chunk, a
close frame) before its socket is aborted, if by then its client has not read it."""


class _Server(uvicorn.Server):
    """uvicorn, told to finish our streams first on a signal, and not to re-raise it afterwards.

    A client that stopped reading holds its connection open at shutdown (a close waits for the
    buffer to drain): uvicorn would wait its whole graceful timeout, then cancel the streams'
    tasks, each logging a traceback. Such sockets are aborted after `FLUSH_WAIT` instead.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.runtime.hub.close)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        aborter = asyncio.get_running_loop().call_later(FLUSH_WAIT, self.abort_stalled)
        try:
            await super().shutdown(sockets)
        finally:
            aborter.cancel()

    def abort_stalled(self) -> None:
        """Abort every connection whose socket still holds unsent bytes: its client is not reading."""
        for connection in list(self.server_state.connections):
            transport = cast(asyncio.Transport | None, getattr(connection, "transport", None))
            if transport is not None and transport.get_write_buffer_size() > 0:  # (uvloop's is no subclass)
                transport.abort()


class _RefusalIsNotAnError(logging.Filter):
    """Lines uvicorn (0.54, sans-I/O WebSockets) logs as errors for what is no server error.

    "ASGI callable returned without completing handshake" comes even after the app refused the
    handshake with a proper HTTP response, as a WebSocket past --max-connections is (503): our
    WebSocket handler always either accepts or refuses that way. "Invalid UTF-8 sequence received
    from client." comes with a traceback for a client's mistake, which uvicorn has answered
    properly (close 1007), as our own protocol does without a word."""

    NOISE = frozenset(
        ("ASGI callable returned without completing handshake.", "Invalid UTF-8 sequence received from client.")
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.NOISE


def http_protocol_for(runtime: Runtime) -> type[asyncio.Protocol]:
    """Every connection behind the gate (`server.gate`: counted, bounded, refused cleanly when
    full), served by our own protocol for poll and long poll GETs on the fast path (it hands
    anything else to uvicorn's httptools protocol), by uvicorn's alone otherwise and with
    `--access-log`, whose lines uvicorn writes."""
    door = runtime.door
    ours = runtime.fast_path.on and not runtime.settings.access_log

    def make(
        connections: set[Any],
        defaults: Callable[[], bytes],
        uvicorns: Callable[[], asyncio.Protocol],
        keep_alive: float,
    ) -> asyncio.Protocol:
        if ours:
            return Gate(door, lambda: HotHttpSocket(runtime, connections, defaults, uvicorns, keep_alive))
        return Gate(door, uvicorns)

    return cast(type[asyncio.Protocol], http_protocol(make))


def web_sockets(runtime: Runtime) -> str | type[asyncio.Protocol]:
    """Our own WebSocket protocol on the fast path; uvicorn's sans-I/O one (through ASGI) otherwise.

    uvicorn only calls what it is given (with keywords), so a factory serves as the "class"."""
    if not runtime.fast_path.on:
        return WS_PROTOCOL
    return cast(type[asyncio.Protocol], ws_protocol(functools.partial(WebSocketSocket, runtime)))


def bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {reason}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, sock: socket.socket) -> int:
    """Run one server process on a bound socket until a signal; its exit status."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        http=http_protocol_for(app.runtime),
        ws=web_sockets(app.runtime),
        log_level="warning",
        access_log=settings.access_log,
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_per_message_deflate=False,  # ticks are ~100 bytes; per-client compression state would cost more
        timeout_graceful_shutdown=3,
        lifespan="on",
        proxy_headers=False,  # no proxy in front by default; saves a layer on every request
    )
    logging.getLogger("uvicorn.error").addFilter(_RefusalIsNotAnError())
    ours = logging.getLogger("pushpull")  # warnings (Redis lost and back...), one line each; say which worker
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("worker %(process)d: %(message)s" if settings.workers > 1 else "%(message)s")
    )
    ours.addHandler(handler)
    ours.setLevel(logging.WARNING)
    ours.propagate = False
    if settings.access_log:  # uvicorn's access lines are INFO; the rest of its logging stays at warning
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = _Server(config, app.runtime)
    tune_gc()
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> None:
    raise_fd_limit()  # first: the default --max-connections is a margin under it
    try:
        settings = parse_settings(argv)
        sock = bind(settings)
    except UsageError as exc:
        fail("pushpull-server", str(exc))
    if settings.broker != "memory":
        from server.broker.redis import reachable

        problem = reachable(settings.broker)
        if problem is not None:
            sock.close()
            fail("pushpull-server", problem)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    print(
        f"pushpull-server listening on http://{shown_host}:{port} (broker {public_url(settings.broker)}, "
        f"{len(settings.symbols)} symbols, {settings.tick_rate:g} ticks/s each{workers})",
        flush=True,
    )
    fast_path = FastPath.detect(settings.fast_path)
    print(f"fast path {'on' if fast_path.on else 'off'}: {fast_path.reason}", flush=True)
    if settings.workers > 1:
        raise SystemExit(supervise(settings.workers, functools.partial(serve, settings, sock), "pushpull-server"))
    raise SystemExit(serve(settings, sock))


if __name__ == "__main__":
    main()
