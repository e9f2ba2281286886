"""/healthz and /metrics (Prometheus text format) on an optional loopback port.

Counters and histograms are updated by ingest and dispatch as work happens, from the
moment /metrics is served (prometheus_client is imported then, not at every start);
state that lives in the database (feeds by state, the outbox backlog) is read
at scrape time through a callback, so the figures can never drift from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("watcher.service.metrics")


class _Metric:
    """A Prometheus metric made when /metrics is first served. Until then nothing can
    read it (`run --once` never serves it), so counting would only cost the import of
    prometheus_client at every start; what happens before the server starts is not
    counted, as a restart resets the counters anyway."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self._make = make
        self._real: Any = None

    def enable(self, registry: Any) -> None:
        if self._real is None:
            self._real = self._make(registry)

    def labels(self, *values: str) -> Any:
        return _IDLE if self._real is None else self._real.labels(*values)

    def inc(self, amount: float = 1.0) -> None:
        if self._real is not None:
            self._real.inc(amount)

    def observe(self, value: float) -> None:
        if self._real is not None:
            self._real.observe(value)


class _Idle:
    def inc(self, amount: float = 1.0) -> None:
        pass


_IDLE = _Idle()


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> _Metric:
    def make(registry: Any) -> Any:
        from prometheus_client import Counter

        return Counter(name, doc, list(labels), registry=registry)

    return _Metric(make)


def _histogram(name: str, doc: str, buckets: tuple[float, ...]) -> _Metric:
    def make(registry: Any) -> Any:
        from prometheus_client import Histogram

        return Histogram(name, doc, registry=registry, buckets=buckets)

    return _Metric(make)


FETCHES = _counter("watcher_fetches", "Feed fetches by outcome (ok, not_modified, error, gone)",
                   ("outcome",))
FETCH_SECONDS = _histogram("watcher_fetch_duration_seconds", "Time to fetch and parse one feed",
                           (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
EXTRACT_SECONDS = _histogram("watcher_extract_duration_seconds",
                             "Time to extract one article page",
                             (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
ARTICLES = _counter("watcher_articles_stored", "Articles stored")
MATCHES = _counter("watcher_matches", "Rule matches", ("rule",))
DELIVERIES = _counter("watcher_deliveries", "Delivery attempts by channel and result "
                      "(sent, retrying, dead)", ("channel", "status"))
_METRICS = (FETCHES, FETCH_SECONDS, EXTRACT_SECONDS, ARTICLES, MATCHES, DELIVERIES)
_registry: Any = None


def registry() -> Any:
    """The process's CollectorRegistry, with every metric above in it."""
    global _registry
    if _registry is None:
        from prometheus_client import CollectorRegistry

        _registry = CollectorRegistry(auto_describe=True)
        for metric in _METRICS:
            metric.enable(_registry)
    return _registry


StateReader = Callable[[], Mapping[str, Any]]
HealthCheck = Callable[[], tuple[bool, str]]


class _StateCollector:
    """Registered when /metrics is served (a prometheus_client Collector by shape)."""

    def __init__(self, read: StateReader) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            state = self.read()
        except Exception as exc:  # a scrape must not take the daemon down
            log.warning("metrics: cannot read state: %s", exc)
            return
        from prometheus_client.core import GaugeMetricFamily

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
        registry().register(self._collector)
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
            registry().unregister(self._collector)

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
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                body = await asyncio.to_thread(generate_latest, registry())
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
