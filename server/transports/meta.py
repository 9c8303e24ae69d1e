"""The small API around the feed: health, clock, symbols, stats."""

from __future__ import annotations

import time
from typing import Annotated, Any

import psutil
from fastapi import APIRouter, Depends, HTTPException

from server import __version__
from server.runtime import Runtime, get_runtime
from server.schema import Tick

__all__ = ["router"]

router = APIRouter(tags=["meta"])


@router.get("/healthz", responses={503: {"description": "The broker (Redis) is unreachable; says why."}})
async def healthz(runtime: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, str]:
    """200 while this process can serve every tick; 503 with the reason while its broker cannot."""
    problem = runtime.broker.problem
    if problem is not None:
        raise HTTPException(503, problem)
    return {"status": "ok"}


@router.get("/api/time")
async def server_time() -> dict[str, float]:
    """The server's clock, for clients estimating their offset (NTP-style midpoint)."""
    return {"ts": time.time()}


@router.get("/api/symbols", response_model=list[Tick])
async def symbols(runtime: Annotated[Runtime, Depends(get_runtime)]) -> list[Tick]:
    """The latest tick of every symbol."""
    return [t.latest.tick for t in runtime.hub.topics.values() if t.latest is not None]


@router.get("/api/stats")
async def stats(runtime: Annotated[Runtime, Depends(get_runtime)]) -> dict[str, Any]:
    """Uptime, ticks published, memory, broker, whether the fast path is on, open connections
    against the cap (and those refused or cut by a limit), and per-transport counters."""
    settings = runtime.settings
    return {
        "version": __version__,
        "uptime_s": round(time.monotonic() - runtime.started_monotonic, 3),
        "ticks_published": runtime.stats.ticks_published,
        "rss_bytes": psutil.Process().memory_info().rss,  # (per call: a worker is a fork of the supervisor)
        "broker": runtime.broker.name,
        "broker_problem": runtime.broker.problem,
        "leases": sorted(runtime.broker.held),
        "fast_path": {"on": runtime.fast_path.on, "reason": runtime.fast_path.reason},
        "instance": runtime.instance,
        "simulated": settings.tick_rate > 0,
        "epoch": runtime.hub.epoch,
        "symbols": list(runtime.hub.topics),
        "tick_rate": settings.tick_rate,
        "history": settings.history,
        "connections": runtime.door.stats(),
        "transports": runtime.stats.transports(),
        "webhooks": {
            "endpoints": len(runtime.webhooks.endpoints),
            "deliveries": runtime.webhooks.deliveries,
            "failures": runtime.webhooks.failures,
        },
    }
