"""/healthz and /metrics (Prometheus text format) on an optional loopback port.

Counters and histograms are updated by ingest and dispatch as work happens;
state that lives in the database (feeds by state, the outbox backlog) is read
at scrape time through a callback, so the figures can never drift from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("watcher.service.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
FETCHES = Counter("watcher_fetches", "Feed fetches by outcome (ok, not_modified, error, gone)",
                  ["outcome"], registry=REGISTRY)
FETCH_SECONDS = Histogram("watcher_fetch_duration_seconds", "Time to fetch and parse one feed",
                          registry=REGISTRY,
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
EXTRACT_SECONDS = Histogram("watcher_extract_duration_seconds",
                            "Time to extract one article page", registry=REGISTRY,
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
ARTICLES = Counter("watcher_articles_stored", "Articles stored", registry=REGISTRY)
MATCHES = Counter("watcher_matches", "Rule matches", ["rule"], registry=REGISTRY)
DELIVERIES = Counter("watcher_deliveries", "Delivery attempts by channel and result "
                     "(sent, retrying, dead)", ["channel", "status"], registry=REGISTRY)

StateReader = Callable[[], Mapping[str, Any]]
HealthCheck = Callable[[], tuple[bool, str]]


class _StateCollector(Collector):
    def __init__(self, read: StateReader) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            state = self.read()
        except Exception as exc:  # a scrape must not take the daemon down
            log.warning("metrics: cannot read state: %s", exc)
            return
        feeds = GaugeMetricFamily("watcher_feeds", "Feeds by state", labels=["state"])
        for name, n in state.get("feeds", {}).items():
            feeds.add_metric([name], float(n or 0))
        yield feeds
        deliveries = GaugeMetricFamily("watcher_outbox_deliveries",
                                       "Deliveries in the outbox by status", labels=["status"])
        for name, n in state.get("deliveries", {}).items():
            deliveries.add_metric([name], float(n or 0))
        yield deliveries
        yield GaugeMetricFamily("watcher_outbox_backlog",
                                "Deliveries waiting to be sent (pending or retrying)",
                                value=float(state.get("backlog", 0)))
        yield GaugeMetricFamily("watcher_outbox_oldest_age_seconds",
                                "Age of the oldest waiting delivery",
                                value=float(state.get("backlog_oldest_age_s", 0.0)))


class MetricsServer:
    """A tiny HTTP/1.1 server: GET /healthz and GET /metrics, nothing else."""

    def __init__(self, listen: str, health: HealthCheck, state: StateReader) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.health = health
        self._collector = _StateCollector(state)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        REGISTRY.register(self._collector)
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("metrics: serving /healthz and /metrics on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(self._collector)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()).strip():
                    pass  # headers: not needed
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif path == "/healthz":
                ok, reason = self.health()
                status, ctype, body = (200 if ok else 503), "text/plain", \
                    (reason + "\n").encode()
            elif path == "/metrics":
                body = await asyncio.to_thread(generate_latest, REGISTRY)
                status, ctype = 200, CONTENT_TYPE_LATEST
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason_phrase = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
                             503: "Service Unavailable"}[status]
            head = (f"HTTP/1.1 {status} {reason_phrase}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + (body if parts and parts[0] != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            return  # a scraper that hung up or stalled: nothing to answer
        finally:
            writer.close()
