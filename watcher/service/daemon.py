"""The running service: the only importer of apscheduler. Jobs, signals, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from watcher.core.decide import StoryPolicy
from watcher.core.digest import Policy
from watcher.core.display import redact
from watcher.core.errors import StoreError
from watcher.core.intents import Retention
from watcher.core.models import Alert, Feed
from watcher.core.sitemap import SitemapLimits
from watcher.delivery.channels import Channel, build_channels
from watcher.delivery.dispatch import Dispatcher, DispatchReport, claim_owner
from watcher.fetch.client import Fetcher, HttpLimits
from watcher.rules import CompiledRules
from watcher.service import metrics
from watcher.service.ingest import FeedOutcome, IngestContext, rematch_unmatched
from watcher.service.metrics import MetricsServer
from watcher.service.polling import FeedQueue, StorageHealth
from watcher.service.reload import Reloading
from watcher.service.sharing import Sharing, utcnow
from watcher.service.sources import ingest_source
from watcher.service.websub import Door, start_websub
from watcher.service.workers import ExtractPool
from watcher.settings import Settings
from watcher.store import open_store, prune

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("watcher.service.daemon")
# How long a stopping daemon gives work under way (and the alerts it made) to finish.
GRACE_S = 20.0
# Feed leases (poll.lease) are renewed this often, for as long as the polls last.
LEASE_RENEW_S = 10.0


def _cpu_seconds() -> float:
    """User + system CPU of this process (every thread) and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Daemon(Sharing, Reloading):
    def __init__(self, settings: Settings, rules: CompiledRules,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self.settings = settings
        self.rules = rules
        # the web server's way in for WebSub callbacks, given by `watcher run`
        self.websub_door: Door | None = None
        self._rules_refused: str | None = None  # digest of the last rules.yaml refused
        self.feeds: dict[str, Feed] = {f.name: f for f in settings.feed_models()}
        self.store = open_store(settings.database)
        # Refuse to start on a database that cannot take writes (read-only, full):
        # polling would fetch everything and store nothing.
        self.store.check_writable()
        self.store.sync_feeds(self.feeds.values())
        self.storage = StorageHealth(utcnow)
        self.feed_queue = FeedQueue(self._poll_one, settings.poll.concurrency * 2,
                                    on_room=self._on_room)
        self._nothing_due = False  # until the next tick: a claim found nothing
        # who this daemon is to the others sharing the database: its feed leases, its
        # delivery claims and its row in the daemons' registry
        self.owner = claim_owner(socket.gethostname(), os.getpid())
        self.started_at = utcnow()
        self._exit_code = 0
        self._channel_map: tuple[object, tuple[str, ...], Mapping[str, Sequence[str]]] = (
            None, (), {})
        self.channels = dict(channels) if channels is not None else build_channels(
            settings.channels)
        fetch = settings.fetch
        limits = HttpLimits(timeout_s=fetch.timeout, max_feed_bytes=fetch.max_feed_bytes,
                            max_page_bytes=fetch.max_page_bytes,
                            max_sitemap_bytes=fetch.sitemap_max_bytes,
                            concurrency=settings.poll.concurrency,
                            per_host=settings.poll.per_host,
                            **({"user_agent": fetch.user_agent} if fetch.user_agent else {}))
        self.fetcher = Fetcher(limits, local_feeds=self.feeds.values())
        # Always in processes (spawn_at=0): a page that hangs in extraction is cut off
        # only where a process can be killed.
        self.extractor = ExtractPool(fetch.extract_workers or None, fetch.extract_timeout,
                                     spawn_at=0, max_workers=fetch.extract_max_workers or None,
                                     recycle_after=fetch.extract_recycle_after)
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()  # set with _stopping: pages are no longer waited for
        self._wake_dispatch = asyncio.Event()
        self.ctx = IngestContext(
            fetcher=self.fetcher, store=self.store, rules=lambda: self.rules,
            channels_by_rule=self._channels_by_rule, clock=utcnow,
            max_backoff_s=settings.poll.max_backoff,
            max_server_wait_s=settings.poll.max_server_wait, fetch_pages=fetch.fetch_pages,
            extractor=self.extractor, unhealthy_after_s=settings.alerts.unhealthy_after,
            on_unhealthy=self._feed_unhealthy, stories=self._story_policy(),
            max_pages=fetch.max_pages_per_poll, hurry=self._hurry,
            on_alerts=self._wake_dispatch.set,
            sitemaps=SitemapLimits(fetch.sitemap_max_depth, fetch.sitemap_max_files,
                                   fetch.sitemap_max_urls))
        self._notices: set[asyncio.Task[object]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._dispatching: asyncio.Task[None] | None = None
        self._dispatch_lock = asyncio.Lock()
        delivery = settings.delivery
        self.dispatcher = Dispatcher(
            self.store, self.channels, utcnow, max_age_s=delivery.max_age,
            backoff=delivery.backoff, policies=self._policies,
            tz=ZoneInfo(delivery.timezone), limit=delivery.batch,
            failure_channels=[c for c in settings.alerts.delivery_failures
                              if c in self.channels],
            counted=lambda channel, status, n: metrics.DELIVERIES.labels(channel, status).inc(n),
            owner=self.owner, lease_s=delivery.lease)

    def _story_policy(self) -> StoryPolicy | None:
        cfg = self.settings.stories
        if not cfg.enabled:
            return None
        return StoryPolicy(cfg.threshold, timedelta(seconds=cfg.window))

    def _feed_unhealthy(self, feed: str, notice: str) -> None:
        """Tell the channels in alerts.feed_health; best effort, like delivery notices."""
        if not self.settings.alerts.feed_health:
            return
        task = asyncio.get_running_loop().create_task(self._send_feed_notice(feed, notice))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _send_feed_notice(self, feed: str, notice: str) -> None:
        state = self.feeds.get(feed)
        alert = Alert(
            delivery_id=f"wh_{feed}_{utcnow():%Y%m%d%H%M}", rule="_feed_health",
            query=f"feed {feed!r} failing for more than "
                  f"{self.settings.alerts.unhealthy_after / 3600:g} h",
            title=f"Feed {feed!r} is unhealthy", feed=feed, published=None, field="feed",
            url=redact(state.url, self.settings.secrets) if state else None,
            snippet=redact(notice, self.settings.secrets))
        for name in self.settings.alerts.feed_health:
            channel = self.channels.get(name)
            if channel is None:
                log.error("config: alerts.feed_health names unknown channel %r", name)
                continue
            try:
                await channel.send(alert)
            except Exception as exc:
                log.error("deliver: could not tell channel %r that feed %r is unhealthy: %s",
                          name, feed, exc)

    def _policies(self) -> dict[str, Policy]:
        # Mutes are set from the web console, another process: read at each pass.
        mutes = self.store.mutes(utcnow())
        drops = self.store.dropping_mutes(utcnow()) if mutes else set()
        return {r.name: Policy(r.cooldown_s, r.digest, mutes.get(r.name), r.name in drops)
                for r in self.rules.rules}

    def _channels_by_rule(self) -> Mapping[str, Sequence[str]]:
        """Rule -> its usable channels; built once per rules and channels in force,
        not per article (thousands of rules times a feed's articles)."""
        rules, channels, built = self._channel_map
        if rules is not self.rules or channels != tuple(self.channels):
            built = {r.name: [c for c in r.notify if c in self.channels]
                     for r in self.rules.rules}
            self._channel_map = (self.rules, tuple(self.channels), built)
        return built

    async def tick(self) -> None:
        """The scheduler's job: hand the due feeds to the feed workers, and return."""
        if not self.storage.may_try():
            return
        try:
            self.store.check_intact()
        except StoreError as exc:
            self._fatal(exc)
            return
        try:
            self.store.heartbeat(self.owner, utcnow(), *self._hashes())
        except StoreError as exc:
            self.storage.failed(exc)
            return
        self._nothing_due = False
        self._claim(self.feed_queue.room)

    async def poll(self, names: Sequence[str] | None = None) -> list[FeedOutcome]:
        """Poll the named feeds (not gone nor held by Retry-After), or by default the due
        ones, and wait for them. Each is claimed first: a feed another daemon holds is
        left to it, one queued or being polled here is left to that poll."""
        claimed = self.store.claim_feeds(
            self.owner, utcnow(), self.settings.poll.lease,
            [n for n in names if n in self.feeds] if names is not None else self.feeds,
            due_only=names is None)
        futures = self.feed_queue.submit(claimed)
        done = await asyncio.gather(*futures, return_exceptions=True)
        return [o for o in done if isinstance(o, FeedOutcome)]

    async def _poll_one(self, name: str) -> FeedOutcome:
        feed = self.feeds.get(name)
        if feed is None:  # removed by a reload while it waited
            return FeedOutcome(name, ok=False, error=f"ingest: feed {name!r} is not configured")
        try:
            outcome = await ingest_source(feed, self.ctx)
        except StoreError as exc:
            self.storage.failed(exc)
            return FeedOutcome(name, ok=False, error=str(exc))
        except Exception as exc:  # a bug on one feed must not stop the others
            log.exception("ingest: feed %r: unexpected error", name)
            return FeedOutcome(name, ok=False, error=f"ingest: feed {name!r}: {exc}")
        self.storage.succeeded()
        if outcome.deliveries:
            self._wake_dispatch.set()  # new alerts leave now, not at the next tick
        return outcome

    def _fatal(self, exc: StoreError) -> None:
        """The database is gone from under us: stop, and say so (exit status 3,
        which the systemd unit does not restart on: a restart would begin with an
        empty database and alert on everything again)."""
        if self._exit_code == 0:
            log.error("%s", exc)
        self._exit_code = 3
        self._stop()

    async def dispatch(self, ignore_schedule: bool = False) -> DispatchReport:
        """One pass over the outbox: the only way anything is sent. A pass at a time."""
        async with self._dispatch_lock:
            return await self.dispatcher.dispatch_due(ignore_schedule)

    async def _dispatch_loop(self) -> None:
        """A pass every `delivery.tick`, and at once when a feed made new alerts (a
        wake-up during a pass makes one more pass, for the alerts its claim missed)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_dispatch.wait(), self.settings.delivery.tick)
            self._wake_dispatch.clear()
            if self._stopping.is_set():
                return
            if not self.storage.may_try():
                continue
            try:
                await self.dispatch()
            except StoreError as exc:
                self.storage.failed(exc)
            except Exception:  # a bug in one pass must not end delivery for good
                log.exception("deliver: dispatch pass failed; the next one retries")

    def _stop(self) -> None:
        self._stopping.set()
        self._hurry.set()
        self._wake_dispatch.set()

    # -- modes --------------------------------------------------------------

    async def run_once(self, stats_path: Path | None = None) -> int:
        """Poll every feed, deliver everything; 1 if any feed failed.

        `stats_path`: also write the cycle's figures there as JSON (benchmarks/ reads
        them, so its timings leave out interpreter start-up and config loading).
        """
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        try:
            self._register()
            await rematch_unmatched(self.ctx)
            self._release_orphans()
            # Every feed, except those gone or whose server said to wait (Retry-After).
            names = self.store.pollable_feeds(utcnow(), self.feeds)
            outcomes = await self.poll(names)
            await self.ctx.jobs.wait()  # pages still to come (over a feed's cap: next run)
            report = await self.dispatch(ignore_schedule=True)
            failed = [o for o in outcomes if not o.ok]
            log.info("cycle: %d feed(s) polled, %d failed, %d new article(s), %d match(es); "
                     "%d alert(s) sent, %d to retry, %d dead", len(outcomes), len(failed),
                     sum(o.new_articles for o in outcomes), sum(o.matches for o in outcomes),
                     report.sent, report.retrying, report.dead)
            if stats_path is not None:
                stats_path.write_text(json.dumps({
                    "wall_s": time.perf_counter() - started,
                    "cpu_s": _cpu_seconds() - cpu_started,
                    "feeds_polled": len(outcomes), "feeds_failed": len(failed),
                    "feeds_304": sum(o.not_modified for o in outcomes),
                    "new_articles": sum(o.new_articles for o in outcomes),
                    "matches": sum(o.matches for o in outcomes),
                    "alerts_sent": report.sent,
                    # CPU the extraction workers spent inside extraction itself
                    "extract_cpu_s": self.extractor.worker_cpu_s,
                    "extract_pages": self.extractor.worker_pages,
                    "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                }))
            return 1 if failed else 0
        finally:
            await self.close()

    def _add_jobs(self, scheduler: AsyncIOScheduler) -> None:
        def every(job: Callable[[], Awaitable[object]], job_id: str, **when: Any) -> None:
            scheduler.add_job(job, "interval", id=job_id, max_instances=1, coalesce=True,
                              misfire_grace_time=None, **when)
        every(self._renew_leases, "leases",
              seconds=min(LEASE_RENEW_S, self.settings.poll.lease / 3))
        every(self.tick, "poll", seconds=self.settings.poll.tick, next_run_time=utcnow())
        every(self.reload_rules_if_changed, "rules-reload", seconds=1)
        every(self.reload_config_if_changed, "config-reload", seconds=1)
        every(self.prune, "prune", hours=24, next_run_time=utcnow() + timedelta(minutes=5))

    async def run_forever(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        from apscheduler.schedulers.asyncio import AsyncIOScheduler  # not for run --once

        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        self._scheduler = scheduler
        # The daemon waits for a feed's pages only so long (run --once waits for all).
        self.ctx = replace(self.ctx, page_wait_s=self.settings.fetch.page_wait)
        if self.settings.fetch.fetch_pages and self.feeds:
            self.extractor.expect(1)  # the workers start now, not with the first page
        self._register()
        await rematch_unmatched(self.ctx)
        self._release_orphans()
        self._add_jobs(scheduler)
        websub = await start_websub(self, scheduler)
        metrics_server = None
        if self.settings.metrics.listen:
            metrics_server = MetricsServer(self.settings.metrics.listen, self.health,
                                           self._metrics_state)
            await metrics_server.start()
        scheduler.start()
        self._dispatching = loop.create_task(self._dispatch_loop())
        log.info("daemon: watching %d feed(s) with %d rule(s); database %s",
                 len(self.feeds), len(self.rules.rules), self.settings.database_shown)
        try:
            await self._stopping.wait()
        finally:
            log.info("daemon: stopping")
            self.feed_queue.cancel_queued()
            self.ctx.jobs.cancel()  # pages to come stay marked: fetched after the restart
            # Pause, drain, then shut down: shutting down the scheduler first would
            # cancel jobs mid-send (APScheduler 3 cancels its running futures).
            scheduler.pause()
            started = time.monotonic()
            await self._drain()
            # Alerts matched by the fetches that just finished go out now, within
            # what is left of the grace period; any that cannot stay in the outbox.
            left = GRACE_S - (time.monotonic() - started)
            if left > 1 and self._exit_code == 0:
                try:
                    await asyncio.wait_for(self.dispatch(), left)
                except TimeoutError:
                    log.warning("daemon: grace period over; undelivered alerts stay queued")
            scheduler.shutdown(wait=False)
            if metrics_server is not None:
                await metrics_server.stop()
            if websub is not None:
                await websub.stop()
            await self.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("daemon: stopped")
        return self._exit_code

    # -- health, metrics, upkeep ---------------------------------------------

    def health(self) -> tuple[bool, str]:
        """200 while the scheduler runs and the database answers."""
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running or self._stopping.is_set():
            return False, "scheduler not running"
        if self.storage.problem is not None:
            return False, self.storage.problem
        try:
            self.store.check_intact()
            self.store.ping()
        except Exception as exc:
            return False, f"database not answering: {exc}"
        return True, "ok"

    def _metrics_state(self) -> dict[str, object]:
        now = utcnow()
        report = self.store.status_report(now, now)
        feeds = report.feeds
        oldest = report.backlog_oldest
        return {
            "feeds": {"healthy": feeds.healthy, "failing": feeds.failing,
                      "unhealthy": feeds.unhealthy, "gone": feeds.gone},
            "deliveries": report.deliveries, "backlog": report.backlog,
            "backlog_oldest_age_s": (now - oldest).total_seconds() if oldest else 0.0,
        }

    async def prune(self) -> int:
        retention = self.settings.retention
        removed = await asyncio.to_thread(
            prune, self.store, utcnow(), Retention(retention.days, retention.matched_days))
        log.info("store: retention removed %d article(s)", removed)
        return removed

    async def _drain(self, grace_s: float = GRACE_S) -> None:
        """Let fetches and deliveries already under way finish, up to a grace period."""
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not others:
            return
        _, pending = await asyncio.wait(others, timeout=grace_s)
        for t in pending:
            t.cancel()

    async def close(self) -> None:
        if self._notices:
            await asyncio.wait(list(self._notices), timeout=10)
        if self._exit_code != 3:  # (3: the database is gone)
            with contextlib.suppress(StoreError):
                self.store.release_feeds(self.owner, self.feeds)
                self.store.deregister_daemon(self.owner)
        await self.fetcher.aclose()
        await asyncio.to_thread(self.extractor.close)
        for ch in self.channels.values():
            await ch.aclose()
        self.store.close()
