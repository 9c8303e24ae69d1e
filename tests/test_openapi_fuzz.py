"""Whatever the OpenAPI schema lets a client send, the server answers without a 5xx.

schemathesis reads the real server's `/openapi.json` and generates requests for every operation,
valid and invalid, a few dozen each (bounded, no deadline: a shared machine is slow at times).
Every request carries the publish token, so publish bodies get past the token to be checked.
Generated symbols are nearly always unknown (404), so the fuzzing phase uses a real one (the
coverage phase still sends odd ones), and the feed publishes fast enough (100 ticks/s) that a held
long poll or an event stream (cut after 20 events) ends within a second.
The server must also end cleanly, with no traceback logged: a client's mistake is not one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.schemas import BaseSchema

from tests.helpers import RunningServer, start_server

SYMBOLS = ("RELIANCE", "TCS")
EXAMPLES = 50
"""Cases per operation and generation phase (about 10 s in all)."""
REQUEST_TIMEOUT = 10.0
"""Seconds a request may take, an event stream included (it is cut after 20 events: ~0.2 s)."""


@pytest.fixture(scope="module")
def fuzzed_server() -> Iterator[RunningServer]:
    server = start_server("--symbols", ",".join(SYMBOLS), "--tick-rate", "100", "--heartbeat", "1")
    try:
        yield server
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: RunningServer) -> BaseSchema:
    schema = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")

    @schema.hook
    def map_path_parameters(context: Any, path_parameters: Any) -> Any:
        """A symbol the server has, to get past the 404 to the query and headers."""
        if isinstance(path_parameters, dict) and "symbol" in path_parameters:
            return {**path_parameters, "symbol": SYMBOLS[0]}
        return path_parameters

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:
        """The same for a publish body (`symbol`, or each of its `ticks`) and a webhook's `symbols`."""
        return with_known_symbols(body)

    return schema


def with_known_symbols(body: Any) -> Any:
    """`body` with every symbol in it (where the API takes one) replaced by one the server has."""
    if not isinstance(body, dict):
        return body
    known = dict(body)
    if isinstance(known.get("symbol"), str):
        known["symbol"] = SYMBOLS[0]
    if isinstance(known.get("symbols"), list):
        known["symbols"] = list(SYMBOLS)
    if isinstance(known.get("ticks"), list):
        known["ticks"] = [with_known_symbols(tick) for tick in known["ticks"]]
    return known


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: Case[Any], fuzzed_server: RunningServer) -> None:
    response = case.call(headers=fuzzed_server.auth, timeout=REQUEST_TIMEOUT)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"reproduce: {case.as_curl_command(headers=fuzzed_server.auth)}"
    )
