"""The running service: the only importer of apscheduler. Jobs, signals, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from watcher.core.decide import StoryPolicy
from watcher.core.digest import Policy
from watcher.core.errors import RuleError, WatcherError
from watcher.core.intents import Retention
from watcher.core.models import Alert, Feed
from watcher.delivery.channels import Channel, build_channels
from watcher.delivery.dispatch import Dispatcher, DispatchReport
from watcher.fetch.client import Fetcher, HttpLimits
from watcher.rules import CompiledRules, RuleSet, compile_rules, parse_rules
from watcher.rules.load import digest_of
from watcher.service import metrics
from watcher.service.ingest import FeedOutcome, IngestContext, ingest_feed, rematch_unmatched
from watcher.service.metrics import MetricsServer
from watcher.service.workers import ExtractPool
from watcher.settings import Settings, load_settings
from watcher.store import open_store, prune

log = logging.getLogger("watcher.service.daemon")
# How long a stopping daemon gives work under way (and the alerts it made) to finish.
GRACE_S = 20.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (for stale delivery claims)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _cpu_seconds() -> float:
    """User + system CPU of this process (every thread) and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Daemon:
    def __init__(self, settings: Settings, rules: CompiledRules,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self.settings = settings
        self.rules = rules
        self._rules_refused: str | None = None  # digest of the last rules.yaml refused
        self.feeds: dict[str, Feed] = {f.name: f for f in settings.feed_models()}
        self.store = open_store(settings.database)
        self.store.sync_feeds(self.feeds.values())
        self.channels = dict(channels) if channels is not None else build_channels(
            settings.channels)
        fetch = settings.fetch
        limits = HttpLimits(timeout_s=fetch.timeout, max_feed_bytes=fetch.max_feed_bytes,
                            max_page_bytes=fetch.max_page_bytes,
                            concurrency=settings.poll.concurrency,
                            per_host=settings.poll.per_host,
                            **({"user_agent": fetch.user_agent} if fetch.user_agent else {}))
        self.fetcher = Fetcher(limits, local_feeds=self.feeds.values())
        self.extractor = ExtractPool(fetch.extract_workers or None, fetch.extract_timeout)
        self.ctx = IngestContext(
            fetcher=self.fetcher, store=self.store, rules=lambda: self.rules,
            channels_by_rule=self._channels_by_rule, clock=utcnow,
            max_backoff_s=settings.poll.max_backoff,
            max_server_wait_s=settings.poll.max_server_wait, fetch_pages=fetch.fetch_pages,
            extractor=self.extractor, unhealthy_after_s=settings.alerts.unhealthy_after,
            on_unhealthy=self._feed_unhealthy, stories=self._story_policy())
        self._in_flight: set[str] = set()
        self._notices: set[asyncio.Task[object]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._stopping = asyncio.Event()
        self._wake_dispatch = asyncio.Event()
        self._dispatching: asyncio.Task[None] | None = None
        self._dispatch_lock = asyncio.Lock()
        delivery = settings.delivery
        self.dispatcher = Dispatcher(
            self.store, self.channels, utcnow, max_age_s=delivery.max_age,
            backoff=delivery.backoff, policies=self._policies,
            tz=ZoneInfo(delivery.timezone), limit=delivery.batch,
            failure_channels=[c for c in settings.alerts.delivery_failures
                              if c in self.channels],
            counted=lambda channel, status, n: metrics.DELIVERIES.labels(channel, status).inc(n))

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
            title=f"Feed {feed!r} is unhealthy", url=state.url if state else None, feed=feed,
            published=None, field="feed", snippet=notice)
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
        return {r.name: Policy(r.cooldown_s, r.digest) for r in self.rules.rules}

    def _channels_by_rule(self) -> dict[str, Sequence[str]]:
        return {r.name: [c for c in r.notify if c in self.channels] for r in self.rules.rules}

    # -- jobs ---------------------------------------------------------------

    async def poll(self, names: Sequence[str] | None = None,
                   dispatch_now: bool = True) -> list[FeedOutcome]:
        """Poll the named feeds (default: the due ones), skipping any still in flight."""
        if names is None:
            names = self.store.due_feeds(utcnow(), self.feeds)
        todo = [n for n in names if n not in self._in_flight and n in self.feeds]
        if not todo:
            return []
        self._in_flight.update(todo)

        async def one(name: str) -> FeedOutcome:
            try:
                return await ingest_feed(self.feeds[name], self.ctx)
            except Exception as exc:  # a bug on one feed must not stop the others
                log.exception("ingest: feed %r: unexpected error", name)
                return FeedOutcome(name, ok=False, error=f"ingest: feed {name!r}: {exc}")
            finally:
                self._in_flight.discard(name)

        # A fixed set of workers rather than a task per feed: with thousands of
        # feeds due at once, memory stays bounded, and the HTTP limits still
        # decide how many requests are in flight.
        queue = list(reversed(todo))
        outcomes: list[FeedOutcome] = []

        async def worker() -> None:
            while queue:
                outcome = await one(queue.pop())
                outcomes.append(outcome)
                if dispatch_now and outcome.deliveries:
                    self._wake_dispatch.set()  # new alerts leave now, not at the next tick

        workers = min(len(todo), self.settings.poll.concurrency * 2)
        await asyncio.gather(*(worker() for _ in range(workers)))
        return outcomes

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
            try:
                await self.dispatch()
            except Exception:  # a bug in one pass must not end delivery for good
                log.exception("deliver: dispatch pass failed; the next one retries")

    def _stop(self) -> None:
        self._stopping.set()
        self._wake_dispatch.set()

    # -- modes --------------------------------------------------------------

    async def run_once(self, stats_path: Path | None = None) -> int:
        """Poll every feed, deliver everything; 1 if any feed failed.

        `stats_path`: also write the cycle's figures there as JSON (benchmarks/ reads
        them, so its timings leave out interpreter start-up and config loading).
        """
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        try:
            await rematch_unmatched(self.ctx)
            self.dispatcher.release_orphans(pid_alive)
            # Every feed, except those gone or whose server said to wait (Retry-After).
            names = self.store.pollable_feeds(utcnow(), self.feeds)
            outcomes = await self.poll(names, dispatch_now=False)
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

    async def run_forever(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        self._scheduler = scheduler
        await rematch_unmatched(self.ctx)
        self.dispatcher.release_orphans(pid_alive)
        scheduler.add_job(self.poll, "interval", seconds=self.settings.poll.tick,
                          id="poll", max_instances=1, coalesce=True, next_run_time=utcnow(),
                          misfire_grace_time=None)
        scheduler.add_job(self.reload_rules_if_changed, "interval", seconds=1,
                          id="rules-reload", max_instances=1, coalesce=True,
                          misfire_grace_time=None)
        scheduler.add_job(self.prune, "interval", hours=24, id="prune", max_instances=1,
                          coalesce=True, misfire_grace_time=None,
                          next_run_time=utcnow() + timedelta(minutes=5))
        metrics_server = None
        if self.settings.metrics.listen:
            metrics_server = MetricsServer(self.settings.metrics.listen, self.health,
                                           self._metrics_state)
            await metrics_server.start()
        scheduler.start()
        self._dispatching = loop.create_task(self._dispatch_loop())
        log.info("daemon: watching %d feed(s) with %d rule(s); database %s",
                 len(self.feeds), len(self.rules.rules), self.settings.database)
        try:
            await self._stopping.wait()
        finally:
            log.info("daemon: stopping")
            # Pause, drain, then shut down: shutting down the scheduler first would
            # cancel jobs mid-send (APScheduler 3 cancels its running futures).
            scheduler.pause()
            started = time.monotonic()
            await self._drain()
            # Alerts matched by the fetches that just finished go out now, within
            # what is left of the grace period; any that cannot stay in the outbox.
            left = GRACE_S - (time.monotonic() - started)
            if left > 1:
                try:
                    await asyncio.wait_for(self.dispatch(), left)
                except TimeoutError:
                    log.warning("daemon: grace period over; undelivered alerts stay queued")
            scheduler.shutdown(wait=False)
            if metrics_server is not None:
                await metrics_server.stop()
            await self.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("daemon: stopped")
        return 0

    # -- health, metrics, upkeep ---------------------------------------------

    def health(self) -> tuple[bool, str]:
        """200 while the scheduler runs and the database answers."""
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running or self._stopping.is_set():
            return False, "scheduler not running"
        try:
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

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload_config())
        self._notices.add(task)  # kept alive until done, awaited at close
        task.add_done_callback(self._notices.discard)

    async def reload_config(self) -> bool:
        """SIGHUP: read config and rules again; a bad file is refused, the old kept."""
        source = self.settings.source
        try:
            settings = await asyncio.to_thread(load_settings, source)
            ruleset, compiled = await asyncio.to_thread(
                lambda: self._compile_rules_for(settings))
            channels = build_channels(settings.channels)
        except WatcherError as exc:
            log.error("%s\nconfig: reload of %s refused; the running configuration stays",
                      exc, source)
            return False
        async with self._dispatch_lock:  # no send is under way while channels change
            old = dict(self.channels)
            self.channels.clear()
            self.channels.update(channels)
            self.settings = settings
            self.feeds = {f.name: f for f in settings.feed_models()}
            self.store.sync_feeds(self.feeds.values())
            self.fetcher.configure_local_feeds(self.feeds.values())
            self.rules = compiled
        for ch in old.values():
            await ch.aclose()
        log.info("config: reloaded %s: %d feed(s), %d channel(s), %d rule(s)", source,
                 len(self.feeds), len(self.channels), len(ruleset.rules))
        return True

    def _compile_rules_for(self, settings: Settings) -> tuple[RuleSet, CompiledRules]:
        text = Path(settings.rules).read_text(encoding="utf-8")
        ruleset = parse_rules(text, str(settings.rules), channels=settings.channels.keys(),
                              unusable_channels=settings.unusable_channels)
        compiled = compile_rules(ruleset)
        compiled.warm()
        return ruleset, compiled

    async def reload_rules_if_changed(self) -> bool:
        """Swap in rules.yaml when its content changed and it is valid, in one step.

        A file that does not validate is logged with every problem, once per
        version, and the last good rules stay in force.
        """
        path = Path(self.settings.rules)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"rules: {path}: cannot read: {exc}"
            if problem != self._rules_refused:
                self._rules_refused = problem
                log.error("%s; the %d rule(s) in force stay", problem, len(self.rules.rules))
            return False
        digest = digest_of(text)
        if digest in (self.rules.ruleset.digest, self._rules_refused):
            return False
        try:
            ruleset, compiled = await asyncio.to_thread(self._compile_rules, text, str(path))
        except RuleError as exc:
            self._rules_refused = digest
            log.error("%s\nrules: %s changed but was refused; the %d rule(s) in force stay",
                      exc, path, len(self.rules.rules))
            return False
        self.rules = compiled
        self._rules_refused = None
        log.info("rules: reloaded %s: %d rule(s)", path, len(ruleset.rules))
        return True

    def _compile_rules(self, text: str, source: str) -> tuple[RuleSet, CompiledRules]:
        ruleset = parse_rules(text, source, channels=self.settings.channels.keys(),
                              unusable_channels=self.settings.unusable_channels)
        compiled = compile_rules(ruleset)
        compiled.warm()
        return ruleset, compiled

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
        await self.fetcher.aclose()
        await asyncio.to_thread(self.extractor.close)
        for ch in self.channels.values():
            await ch.aclose()
        self.store.close()
