"""A reader on a machine without internet opens /docs or /redoc and sees the API.

FastAPI's own pages load Swagger UI and ReDoc from a CDN; server/docs_ui.py serves them from a
local package. These fetch what a browser would, from a real server behind the front door.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.helpers import RunningServer

ABSOLUTE_URL = re.compile(r"https?://[^\s\"'<>)]+")


@dataclass(frozen=True)
class Asset:
    kind: str
    """`script`, `stylesheet` or `icon`."""
    url: str
    """As written in the page."""


class _AssetFinder(HTMLParser):
    """Collects what a browser fetches to show a page: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[Asset] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {name: value or "" for name, value in attrs}
        rel = named.get("rel", "").split()
        if tag == "script" and named.get("src"):
            self.assets.append(Asset("script", named["src"]))
        elif tag == "link" and "stylesheet" in rel:
            self.assets.append(Asset("stylesheet", named["href"]))
        elif tag == "link" and "icon" in rel:
            self.assets.append(Asset("icon", named["href"]))


def assets_of(html: str) -> list[Asset]:
    finder = _AssetFinder()
    finder.feed(html)
    return finder.assets


CONTENT_TYPES = {"script": "javascript", "stylesheet": "text/css", "icon": "image/"}
MIN_BYTES = {"script": 100_000, "stylesheet": 10_000, "icon": 500}
"""Swagger UI's bundle is ~1.5 MB, ReDoc's ~1 MB, the stylesheet ~180 kB, the icon ~5 kB."""

PAGES = {
    "/docs": ({"script", "stylesheet", "icon"}, "SwaggerUIBundle"),
    "/redoc": ({"script", "icon"}, "Redoc"),
}
"""Each page: the kinds of asset it must load, and the global its script must define."""


@pytest.mark.parametrize("page", PAGES)
async def test_the_docs_page_names_nothing_outside_this_server(server: RunningServer, page: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(server.url + page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    elsewhere = [url for url in ABSOLUTE_URL.findall(response.text) if not url.startswith(server.url + "/")]
    assert elsewhere == []
    for asset in assets_of(response.text):
        assert urlsplit(urljoin(server.url + page, asset.url)).netloc == urlsplit(server.url).netloc, asset


@pytest.mark.parametrize("page", PAGES)
async def test_every_asset_the_docs_page_loads_is_served_here(server: RunningServer, page: str) -> None:
    kinds, global_name = PAGES[page]
    async with httpx.AsyncClient() as client:
        html = (await client.get(server.url + page)).text
        assets = assets_of(html)
        assert {asset.kind for asset in assets} == kinds
        for asset in assets:
            response = await client.get(urljoin(server.url + page, asset.url))
            assert response.status_code == 200, asset
            assert CONTENT_TYPES[asset.kind] in response.headers["content-type"], asset
            assert len(response.content) >= MIN_BYTES[asset.kind], asset
            if asset.kind == "script":
                assert global_name in response.text, asset


async def test_the_openapi_document_is_reachable_and_whole(server: RunningServer) -> None:
    """Every `$ref` points inside the document: Swagger UI shows "Resolver error" and ReDoc
    nothing at all for one that does not."""
    async with httpx.AsyncClient() as client:
        response = await client.get(server.url + "/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert "/api/publish" in paths
    # The hot routes, served past FastAPI, are documented from their one declaration.
    parameters = {
        (path, method): {(p["name"], p["in"]) for p in operation.get("parameters", [])}
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert parameters[("/api/price/{symbol}", "get")] == {("symbol", "path"), ("If-None-Match", "header")}
    assert parameters[("/api/longpoll/{symbol}", "get")] == {
        ("symbol", "path"), ("after", "query"), ("timeout", "query"), ("epoch", "query"),
    }  # fmt: skip
    assert ("Last-Event-ID", "header") in parameters[("/api/stream/{symbol}", "get")]
    assert set(paths["/api/longpoll/{symbol}"]["get"]["responses"]) >= {"200", "204", "404", "422"}
    assert "requestBody" in paths["/api/publish"]["post"]
    refs = refs_in(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target: Any = document
        for key in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and key in target, ref
            target = target[key]


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs_in(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs_in(item)]
    return []
