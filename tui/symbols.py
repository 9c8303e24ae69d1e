"""Is a symbol one the server publishes? Asked once before watching or measuring it."""

from __future__ import annotations

import httpx

__all__ = ["unknown_symbol"]


async def unknown_symbol(http: httpx.AsyncClient, url: str, symbol: str) -> str | None:
    """A one-line complaint if the server answers 404 for `symbol`, else None (also when the
    server cannot be reached: that is for the caller's own retries to report)."""
    try:
        if (await http.get(f"{url}/api/price/{symbol}")).status_code != 404:
            return None
        listed = (await http.get(url + "/api/symbols")).json()
    except (httpx.HTTPError, ValueError):
        return None
    names = ", ".join(str(t.get("symbol")) for t in listed if isinstance(t, dict)) if isinstance(listed, list) else ""
    return f"the server does not publish {symbol}; it publishes {names or 'nothing'}"
