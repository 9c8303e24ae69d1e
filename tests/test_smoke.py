"""A new user's first minute: the server answers and a tick can be published and read back."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer, prices, publish


async def test_published_tick_is_the_latest_price(server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        stored = await publish(client, server, "RELIANCE", prices(3))
        response = await client.get(server.url + "/api/price/RELIANCE")
    assert response.status_code == 200
    assert response.json() == stored[-1]
    assert [t["seq"] for t in stored] == [2, 3, 4]
