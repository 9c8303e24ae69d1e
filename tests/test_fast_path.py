"""The fast path's contract with uvicorn: everything `server/fast_path.py` touches is there, on the
uvicorn range pyproject allows, and the server says at start-up whether it is on."""

from __future__ import annotations

import inspect
from importlib.metadata import requires, version

import httpx
from packaging.requirements import Requirement
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from server.fast_path import TOUCHED, FastPath, missing
from tests.helpers import ServerFactory


def test_the_installed_uvicorn_has_every_attribute_the_fast_path_touches() -> None:
    assert missing() == []
    assert FastPath.detect().on


def test_an_attribute_uvicorn_lacks_is_named_and_turns_the_fast_path_off() -> None:
    """The check can fail: a name uvicorn does not use is reported, class and all."""
    touched = {**TOUCHED, RequestResponseCycle: (*TOUCHED[RequestResponseCycle], "renamed_in_a_future_uvicorn")}
    assert missing(touched) == ["RequestResponseCycle.renamed_in_a_future_uvicorn"]


def test_the_dependency_range_is_the_tested_one_and_refuses_older_uvicorns() -> None:
    """uvicorn 0.50-0.52 broke the fast path (no `disconnected` on the sans-I/O protocol): the range
    must refuse them, and admit the version installed here, the one the suite just ran on."""
    [declared] = [Requirement(r) for r in requires("pushpull-tui") or [] if Requirement(r).name == "uvicorn"]
    assert version("uvicorn") in declared.specifier
    for older in ("0.34.0", "0.49.0", "0.50.0", "0.52.0"):
        assert older not in declared.specifier, older
    assert "0.55.0" not in declared.specifier  # untested: a new minor version may move its internals


async def test_the_server_says_whether_the_fast_path_is_on(server_factory: ServerFactory) -> None:
    """One line at start-up and a field in /api/stats, either way."""
    for flags, on in (((), True), (("--no-fast-path",), False)):
        server = server_factory("--no-feed", *flags)
        async with httpx.AsyncClient(timeout=10) as client:
            stats = (await client.get(server.url + "/api/stats")).json()
        code, output = server.stop()
        assert code == 0, output
        assert stats["fast_path"]["on"] is on, stats["fast_path"]
        line = f"fast path {'on' if on else 'off'}: "
        assert any(row.startswith(line) for row in output.splitlines()), output
        assert ("uvicorn " + version("uvicorn")) in stats["fast_path"]["reason"]


def test_uvicorn_still_builds_its_protocols_the_way_ours_are_fitted_in() -> None:
    """`http_protocol` and `ws_protocol` stand in for uvicorn's protocol classes, and the first
    hands connections back to uvicorn's httptools protocol: both rely on how uvicorn calls them."""
    for cls in (HttpToolsProtocol,):
        parameters = inspect.signature(cls).parameters
        assert {"config", "server_state", "app_state"} <= set(parameters), parameters
    upgrade = inspect.getsource(HttpToolsProtocol.handle_websocket_upgrade)
    assert "config=self.config" in upgrade and "server_state=self.server_state" in upgrade, upgrade
