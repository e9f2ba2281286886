"""What a daemon does so that several can share one database: it registers and beats,
claims only the feeds its workers can start (and more as they free), renews its leases
while it polls, and frees those of its host's dead processes. Mixed into
watcher.service.daemon.Daemon; on SQLite the same code runs for its one daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from watcher.core.errors import StoreError
from watcher.core.models import Feed
from watcher.core.records import DaemonInfo
from watcher.delivery.dispatch import Dispatcher, parse_owner
from watcher.rules import CompiledRules
from watcher.rules.ruleset import digest_of
from watcher.service.polling import FeedQueue, StorageHealth
from watcher.settings import Settings
from watcher.store import Store

log = logging.getLogger("watcher.service.daemon")


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



class Sharing:
    settings: Settings
    rules: CompiledRules
    store: Store
    owner: str
    started_at: datetime
    feeds: dict[str, Feed]
    feed_queue: FeedQueue
    storage: StorageHealth
    dispatcher: Dispatcher
    _nothing_due: bool
    _stopping: asyncio.Event
    _scheduler: object | None
    _config_digest: tuple[Settings, str]

    def _hashes(self) -> tuple[str, str]:
        """(rules, config) as this daemon runs them: `watcher status` compares daemons.
        The config's digest is taken once per loaded configuration, not per heartbeat:
        a file edited but not reloaded is not what this daemon runs."""
        cached = getattr(self, "_config_digest", None)
        if cached is None or cached[0] is not self.settings:
            try:
                digest = digest_of(Path(self.settings.source).read_text(encoding="utf-8"))
            except OSError:
                digest = "?"
            cached = (self.settings, digest)
            self._config_digest = cached
        return self.rules.ruleset.digest, cached[1]

    def _register(self) -> None:
        now = utcnow()
        self.store.register_daemon(DaemonInfo(self.owner, socket.gethostname(), os.getpid(),
                                              self.started_at, now, *self._hashes()))

    def _release_orphans(self) -> None:
        """Free the feed leases and delivery claims of processes on this host that
        died (kill -9, power cut): a restart takes their work at once, not only once
        their leases run out. Other hosts' leases run out by themselves."""
        self.dispatcher.release_orphans(pid_alive)
        host, freed = socket.gethostname(), 0
        for owner in self.store.feed_lease_owners(utcnow()):
            o_host, pid = parse_owner(owner)
            if owner != self.owner and o_host == host and pid is not None \
                    and (pid == os.getpid() or not pid_alive(pid)):
                freed += self.store.release_feed_leases_of(owner)
        if freed:
            log.info("poll: %d feed lease(s) of a stopped process released", freed)

    async def _renew_leases(self) -> None:
        """The feeds this daemon is polling stay its own while the polls last."""
        pending = self.feed_queue.pending
        if pending:
            try:
                self.store.renew_feed_leases(self.owner, pending, utcnow(),
                                             self.settings.poll.lease)
            except StoreError as exc:
                self.storage.failed(exc)

    def _claim(self, room: int) -> None:
        """Claim as many due feeds as the workers can start now, no more: the rest stay
        free for the other daemons sharing the database, and are claimed here as room
        frees (`_on_room`)."""
        if room <= 0:
            return
        try:
            names = self.store.claim_feeds(self.owner, utcnow(), self.settings.poll.lease,
                                           self.feeds, limit=room)
        except StoreError as exc:
            self.storage.failed(exc)
            return
        self._nothing_due = not names
        self.feed_queue.submit(names)

    def _on_room(self, room: int) -> None:
        if not (self._nothing_due or self._stopping.is_set() or self._scheduler is None) \
                and self.storage.may_try():
            self._claim(room)
