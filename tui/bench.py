"""`pushpull-bench`: every mode side by side against one feed, headless, with the same mode clients
the app uses; a comparison table on the terminal and the same figures as JSON.

Percentiles are exact (nearest rank over every delay recorded), not averages of averages.
Against several servers (`--server URL1,URL2`, sharing one broker) client i of every mode talks to
server i mod n, and the server figures are read from each: summed, and per instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from server.commandline import ArgumentParser, UsageError, exit_on_usage_error, fail, integer, number
from tui import __version__
from tui.arguments import (
    add_feed_options,
    add_link_options,
    add_webhook_token_option,
    bundled_server_args,
    link_profile,
    mode_list,
    refused_with_server,
    server_urls,
)
from tui.defaults import DEFAULT_SYMBOL
from tui.embedded import EmbeddedServer, EmbeddedServerError
from tui.format import NO_VALUE
from tui.link import Link, LinkProfile
from tui.link.clients import through_link
from tui.modes import MODES, ModeClient, make_client
from tui.modes.stats import percentile
from tui.server_figures import held_connections, requests_served
from tui.symbols import unknown_symbol
from tui.theory import mode_theory

__all__ = ["main", "run_bench"]

PROG = "pushpull-bench"
DEFAULT_MODES = tuple(MODES)
"""Every mode."""


MEMORY_SAMPLE = 200
"""Open connections below which the server's RSS growth says more about the allocator than them."""


SAMPLES_BEYOND = 5
"""A percentile is shown only with at least this many samples beyond it (p99: 500 samples)."""


def samples_needed(fraction: float) -> int:
    """Delays needed before the `fraction` percentile is a figure, not an anecdote."""
    return math.ceil(SAMPLES_BEYOND / (1 - fraction) - 1e-9)


def summarize(clients: Sequence[ModeClient]) -> dict[str, Any]:
    """One mode's figures, summed over its clients; delays pooled for exact percentiles."""
    stats = [c.stats for c in clients]
    delays = sorted(d for s in stats for d in (s.all_delays_ms or []))
    updates = sum(s.updates for s in stats)
    missed = sum(s.missed for s in stats)
    requests = sum(s.requests for s in stats)
    received = sum(s.bytes_received for s in stats)
    wire = sum(s.wire_bytes for s in stats)

    def ratio(value: int) -> float | None:
        return round(value / updates, 3) if updates else None

    def pct(fraction: float) -> float | None:
        if len(delays) < samples_needed(fraction):
            return None  # nearest rank on too few samples is just one of the largest: no figure
        return round(percentile(delays, fraction), 3)

    return {
        "clients": len(clients),
        "updates": updates,
        "missed": missed,
        "duplicates": sum(s.duplicates for s in stats),
        "requests": requests,
        "empty_responses": sum(s.empty_responses for s in stats),
        "bytes": received,
        "wire_bytes": wire,
        "rejected": sum(s.rejected for s in stats),
        "reconnects": sum(s.reconnects for s in stats),
        "delay_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": delays[-1] if delays else None},
        "delay_samples": len(delays),
        "requests_per_update": ratio(requests),
        "bytes_per_update": ratio(received),
        "wire_bytes_per_update": ratio(wire),
        "missed_fraction": round(missed / (updates + missed), 4) if updates + missed else None,
    }


def table(results: dict[str, dict[str, Any]], title: str) -> Table:
    grid = Table(title=title)
    for column in (
        "mode",
        "updates",
        "missed",
        "dup",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "requests",
        "empty",
        "wire bytes",
        "req/upd",
        "wire/upd",
    ):
        grid.add_column(column, justify="left" if column == "mode" else "right")
    for mode, r in results.items():
        d = r["delay_ms"]
        grid.add_row(
            mode,
            f"{r['updates']:,}",
            f"{r['missed']:,}",
            f"{r['duplicates']:,}",
            *(fmt(d[k]) for k in ("p50", "p95", "p99", "max")),
            f"{r['requests']:,}",
            f"{r['empty_responses']:,}",
            f"{r['wire_bytes']:,}",
            fmt(r["requests_per_update"], 2),
            fmt(r["wire_bytes_per_update"], 1),
        )
    return grid


def theory_report(mode: str, rate: float | None, poll_interval: float, latency_s: float) -> dict[str, Any] | None:
    """What `mode` should measure at this feed and link (`tui/theory.py`), as the JSON holds it;
    None when the tick rate is not one number (several feeds) or zero."""
    theory = mode_theory(mode, rate, interval=poll_interval, latency_s=latency_s) if rate else None
    if theory is None:
        return None

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    return {
        "delay_ms_p50": ms(theory.delay_p50_s),
        "delay_ms_p99": ms(theory.delay_p99_s),
        "requests_per_update": round(theory.requests_per_update, 3),
        "missed_fraction": round(theory.missed_fraction, 4),
        "note": theory.note,
    }


def theory_table(results: dict[str, dict[str, Any]], title: str) -> Table:
    """Each mode's figures beside theory's, `measured / theory` per cell, and what dominates."""
    grid = Table(title=title, caption=f"each cell: measured / theory; {NO_VALUE}: too few samples, or not derived")
    for column in ("mode", "delay p50 ms", "delay p99 ms", "req/upd", "missed %", "what dominates"):
        grid.add_column(column, justify="left" if column in ("mode", "what dominates") else "right")
    for mode, r in results.items():
        theory = r.get("theory")
        if theory is None:
            continue
        missed = r["missed_fraction"]
        grid.add_row(
            mode,
            f"{fmt(r['delay_ms']['p50'])} / {fmt(theory['delay_ms_p50'])}",
            f"{fmt(r['delay_ms']['p99'])} / {fmt(theory['delay_ms_p99'])}",
            f"{fmt(r['requests_per_update'], 2)} / {fmt(theory['requests_per_update'], 2)}",
            f"{fmt(None if missed is None else 100 * missed)} / {fmt(100 * theory['missed_fraction'])}",
            theory["note"],
        )
    return grid


def fmt(value: float | None, digits: int = 1) -> str:
    return NO_VALUE if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


async def server_stats(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url + "/api/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def instance_report(url: str, clients: int, before: dict[str, Any], during: dict[str, Any]) -> dict[str, Any]:
    """One server's side of the run: who it is, what it held and served, its memory."""
    opened = held_connections(during) - held_connections(before)
    rss_delta = during["rss_bytes"] - before["rss_bytes"]
    return {
        "url": url,
        "instance": during.get("instance"),
        "broker": during.get("broker"),
        "epoch": during.get("epoch"),
        "clients": clients,
        "rss_bytes_before": before["rss_bytes"],
        "rss_bytes_during": during["rss_bytes"],
        "open_connections": opened,
        "rss_bytes_per_connection": round(rss_delta / opened, 1) if opened > 0 else None,
        "requests": requests_served(during) - requests_served(before),
        "ticks_published": during["ticks_published"] - before["ticks_published"],
    }


async def run_bench(
    urls: str | Sequence[str],
    *,
    modes: Sequence[str],
    clients: int,
    duration: float,
    poll_interval: float,
    symbol: str,
    console: Console,
    webhook_token: str | None = None,
    latency_s: float | None = None,
    link: LinkProfile | None = None,
) -> dict[str, Any]:
    """Connect every client (client i of each mode to server i mod n), measure for `duration`
    seconds, and return the JSON document. With `link`, every client talks through an emulated
    link (`tui.link`; webhooks' deliveries too). Theory beside each mode is for a link of one-way
    latency `latency_s` (by default the link's; 0 on loopback)."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    if latency_s is None:
        latency_s = link.latency_ms / 1000 if link is not None and link.emulates else 0.0
    async with open_link(link) as relays, httpx.AsyncClient(timeout=10.0) as http:
        before = [await server_stats(http, url) for url in urls]
        for url in urls:
            problem = await unknown_symbol(http, url, symbol)
            if problem is not None:
                raise UsageError(problem if len(urls) == 1 else f"{url}: {problem}")

        def new_client(mode: str, i: int) -> ModeClient:
            """Client i of `mode`, on server i mod n (through the link's relay, with one)."""
            target, options = through_link(relays, mode, urls[i % len(urls)])
            if mode == "webhook":
                options["webhook_token"] = webhook_token
            return make_client(
                mode, target, symbol, poll_interval=poll_interval, keep_all_delays=True, seed=i, **options
            )

        by_mode = {mode: [new_client(mode, i) for i in range(clients)] for mode in modes}
        everyone = [c for group in by_mode.values() for c in group]
        tasks = [asyncio.create_task(c.run()) for c in everyone]
        started = time.monotonic()
        try:
            with Live(console=console, refresh_per_second=4, transient=True) as live:
                while (elapsed := time.monotonic() - started) < duration:
                    live.update(
                        f"measuring {elapsed:4.1f} / {duration:g} s · "
                        + " · ".join(f"{m} {sum(c.stats.updates for c in g):,}" for m, g in by_mode.items())
                    )
                    await asyncio.sleep(0.25)
            during = [await server_stats(http, url) for url in urls]
        finally:
            for client in everyone:
                await client.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
    modes_report = {mode: summarize(group) for mode, group in by_mode.items()}
    # Several servers' simulators may feed one broker: theory needs the one rate there is.
    rate = during[0].get("tick_rate") if len(urls) == 1 else None
    if not isinstance(rate, int | float):
        rate = None
    for mode, report in modes_report.items():
        report["theory"] = theory_report(mode, rate, poll_interval, latency_s)
    instances = [  # server `index` has clients index, index + n, ... of each mode
        instance_report(url, len(range(index, clients, len(urls))), before[index], during[index])
        for index, url in enumerate(urls)
    ]
    opened = sum(instance["open_connections"] for instance in instances)
    rss_before = sum(instance["rss_bytes_before"] for instance in instances)
    rss_during = sum(instance["rss_bytes_during"] for instance in instances)
    return {
        "config": {
            "server": ",".join(urls),
            "servers": urls,
            "modes": list(modes),
            "clients": clients,
            "duration_s": duration,
            "poll_interval_s": poll_interval,
            "symbol": symbol,
            "tick_rate": rate,
            "latency_s": latency_s,
            "network": None if link is None or not link.emulates else link.describe(),
            "version": __version__,
        },
        "modes": modes_report,
        "server": {
            # Summed over the servers: each counts the connections it holds and the ticks published through it.
            "rss_bytes_before": rss_before,
            "rss_bytes_during": rss_during,
            "open_connections": opened,
            "rss_bytes_per_connection": round((rss_during - rss_before) / opened, 1) if opened > 0 else None,
            "ticks_published": sum(instance["ticks_published"] for instance in instances),
            "instances": instances,
        },
    }


@contextlib.asynccontextmanager
async def open_link(link: LinkProfile | None) -> AsyncIterator[Link | None]:
    """The link's relays for the run (None when `link` emulates nothing), closed after it."""
    if link is None or not link.emulates:
        yield None
        return
    relays = Link(link, seed=0)
    try:
        yield relays
    finally:
        await asyncio.to_thread(relays.close)


def unreachable(exc: httpx.HTTPError, urls: Sequence[str]) -> str:
    """Which of the servers a failed request went to (all of them, if it cannot be told)."""
    try:
        asked = str(exc.request.url)
    except RuntimeError:  # an error raised without its request
        asked = ""
    return next((url for url in urls if asked.startswith(url + "/")), ", ".join(urls))


def instance_lines(instances: Sequence[dict[str, Any]]) -> list[str]:
    """Each server's share of the run, a line each: where the clients went and what it held; and
    a warning when they do not share one feed."""
    lines = []
    for instance in instances:
        rss, opened = instance["rss_bytes_per_connection"], instance["open_connections"]
        per_connection = f", {rss / 1000:.1f} KB each" if rss is not None and opened >= MEMORY_SAMPLE else ""
        lines.append(
            f"server {instance['url']} ({instance['instance']}, broker {instance['broker']}): "
            f"{instance['clients']} client(s) per mode, {opened} connections{per_connection}, "
            f"{instance['requests']:,} requests, {instance['ticks_published']:,} ticks published"
        )
    if len({instance["epoch"] for instance in instances}) > 1:
        lines.append(
            "the servers report different epochs: separate feeds, not one broker (each client measured its own)"
        )
    return lines


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Measure every delivery mode side by side, headless.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--server",
        type=server_urls,
        metavar="URL[,URL...]",
        help="a running pushpull-server (default: start the bundled one); several (sharing a broker): "
        "client i of each mode talks to URL i mod n",
    )
    parser.add_argument(
        "--modes",
        type=mode_list,
        default=list(DEFAULT_MODES),
        help=f"comma-separated (default {','.join(DEFAULT_MODES)})",
    )
    parser.add_argument(
        "--clients",
        type=integer(1, 10_000),
        default=None,
        help="subscribers per mode, 1 to 10000, spread over the servers (default 1 per server)",
    )
    parser.add_argument(
        "--duration",
        type=number(0, 3600, low_open=True),
        default=10.0,
        help="seconds to measure, up to 3600 (default 10)",
    )
    add_feed_options(parser)
    add_webhook_token_option(parser)
    add_link_options(parser)
    parser.add_argument("--symbol", default=DEFAULT_SYMBOL, type=str.upper, help=f"(default {DEFAULT_SYMBOL})")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    console = Console(stderr=True)
    with exit_on_usage_error(PROG):
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        problem = refused_with_server(args)
        if problem is not None:
            raise UsageError(problem)
        try:
            args.link = link_profile(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.link is not None and args.link.emulates and any(u.startswith("https:") for u in args.server or ()):
            raise UsageError("an emulated link relays plain http:// only (TLS would be checked against 127.0.0.1)")
        servers = len(args.server or ()) or 1
        if args.clients is None:
            args.clients = servers
        elif args.clients < servers:
            raise UsageError(
                f"--clients {args.clients} leaves {servers - args.clients} of the {servers} servers without "
                f"clients (client i goes to server i mod {servers}); give --clients {servers} or more"
            )
    modes: list[str] = args.modes
    embedded: EmbeddedServer | None = None
    urls: list[str] = args.server or []
    try:
        if not urls:
            embedded = EmbeddedServer([*bundled_server_args(args), "--symbols", args.symbol])
            urls = [embedded.start()]
        results = asyncio.run(
            run_bench(
                urls,
                modes=modes,
                clients=args.clients,
                duration=args.duration,
                poll_interval=args.poll_interval,
                symbol=args.symbol,
                console=console,
                webhook_token=args.webhook_token,
                link=args.link,
            )
        )
    except (EmbeddedServerError, UsageError) as exc:
        fail(PROG, str(exc))
    except httpx.HTTPError as exc:
        fail(PROG, f"cannot reach {unreachable(exc, urls)}: {exc}")
    finally:
        if embedded is not None:
            embedded.stop()
    rss = results["server"]["rss_bytes_per_connection"]
    out = Console(width=None if sys.stdout.isatty() else 140)
    network = results["config"]["network"]
    over = f" · over {network}" if network else ""
    out.print(table(results["modes"], f"pushpull-bench · {args.duration:g} s · {', '.join(urls)}{over}"))
    short = [
        f"{mode} p{round(fraction * 100)}"
        for mode, figures in results["modes"].items()
        for fraction in (0.5, 0.95, 0.99)
        if figures["delay_samples"] and figures["delay_ms"][f"p{round(fraction * 100)}"] is None
    ]
    if short:
        out.print(
            f"not shown, too few delays for them: {', '.join(short)} (p95 needs {samples_needed(0.95)}, "
            f"p99 {samples_needed(0.99)}; run longer, with more --clients"
            + (")" if args.server else " or a higher --tick-rate)")
        )
    opened = results["server"]["open_connections"]
    if opened < MEMORY_SAMPLE:  # suggest enough clients for MEMORY_SAMPLE held connections, in tens
        enough = math.ceil(MEMORY_SAMPLE * args.clients / max(opened, 1) / 10) * 10
        memory = (
            f"server memory per open connection: not shown, {opened} connections are too few (try --clients {enough})"
        )
    else:
        memory = f"server memory per open connection: {fmt(rss / 1000 if rss else None)} KB ({opened} connections)"
    out.print(f"{memory}; ticks published: {results['server']['ticks_published']}")
    if len(urls) > 1:
        for line in instance_lines(results["server"]["instances"]):
            out.print(line)
    config = results["config"]
    if any(figures["theory"] is not None for figures in results["modes"].values()):
        out.print(
            theory_table(
                results["modes"],
                f"against theory: Poisson ticks at {config['tick_rate']:g}/s, a poll every {args.poll_interval:g} s, "
                f"one-way latency {1000 * config['latency_s']:g} ms",
            )
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
