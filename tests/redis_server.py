"""A real `redis-server` for the tests that need one: started on a free port with no persistence
(unless a test asks for a dump file), stopped by its PID.

Outside CI a machine without `redis-server` skips those tests with one line saying why; in CI
(`CI=true`) they must run, so a missing `redis-server` fails them instead.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

import pytest

__all__ = ["RedisServer", "require_redis_server"]

STARTUP_WAIT = 10.0


def require_redis_server() -> str:
    """The path of `redis-server`, or skip (fail in CI) saying how to get it."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the Redis tests")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One `redis-server` process on 127.0.0.1. `url(db)` names a database in it: every server a test
    starts gets a database of its own (`next_url`), so histories never mix unless a test shares one."""

    DATABASES = 4096

    def __init__(self, *extra: str, port: int | None = None, directory: str | None = None) -> None:
        self.executable = require_redis_server()
        self.port = port or _free_port()
        self.extra: Sequence[str] = extra
        self.directory = directory
        self.process: subprocess.Popen[str] | None = None
        self._databases = itertools.count(1)
        self.start()

    def start(self) -> None:
        """Start it (again, on the same port: a restart), and wait until it answers."""
        persistence = ["--save", "", "--appendonly", "no"]
        if self.directory is not None:
            persistence = ["--dir", self.directory, "--dbfilename", "dump.rdb", "--appendonly", "no"]
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", *persistence]
        argv += ["--databases", str(self.DATABASES), *self.extra]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + STARTUP_WAIT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it by its PID (SIGTERM saves a dump first when it has a directory)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def url(self, db: int = 0, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def next_url(self) -> str:
        """A database no server has used yet."""
        db = next(self._databases)
        assert db < self.DATABASES, "more servers than Redis databases: raise RedisServer.DATABASES"
        return self.url(db)
