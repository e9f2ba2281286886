"""The store, as the rest of watcher sees it: intents in, typed values out.

Written in the words of the domain (due feeds, record a poll, add articles, place
in a story, record matches, claim and mark deliveries, archive reads, prune),
never in those of a database, so that each store (watcher.store.sqlite, and the
ones that stand beside it) implements the same thing. The store decides
nothing: the decisions are pure functions in watcher.core, and their results
arrive here as intents (watcher.core.intents).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from watcher.core.intents import (
    HoldCandidate,
    HoldDecision,
    Matched,
    NewArticle,
    NewSource,
    PageArrived,
    PollResult,
    Retention,
)
from watcher.core.models import Article, Delivery, Feed, FeedState, StoryRef
from watcher.core.records import (
    AlertRecord,
    ArticleRecord,
    DaemonInfo,
    DeliveryRecord,
    FeedHealth,
    SearchHit,
    SourceRecord,
    StatusReport,
    StoryCandidate,
    WebSession,
)
from watcher.core.websub import Subscription


class FeedStore(Protocol):
    def sync_feeds(self, feeds: Iterable[Feed]) -> None:
        """Every configured feed has a row; a URL changed in the config starts afresh."""

    def feed_state(self, name: str) -> FeedState | None: ...

    def due_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        """Of `names`, those whose next poll time has come, soonest first."""

    def pollable_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        """Of `names`, those that may be polled on demand: not gone, not held."""

    def claim_feeds(self, owner: str, now: datetime, lease_s: float, names: Iterable[str],
                    due_only: bool = True, limit: int | None = None) -> list[str]:
        """Of `names`, take those due (or, not `due_only`, any not gone nor held) that no
        other owner holds, for `lease_s`; soonest due first. Several daemons may ask."""

    def renew_feed_leases(self, owner: str, names: Iterable[str], now: datetime,
                          lease_s: float) -> None: ...

    def release_feeds(self, owner: str, names: Iterable[str]) -> None: ...

    def feed_lease_owners(self, now: datetime) -> list[str]: ...

    def release_feed_leases_of(self, owner: str) -> int: ...

    def record_poll(self, result: PollResult) -> None:
        """What the poll came to; the feed's lease ends."""

    def flag_unhealthy(self, name: str, now: datetime, failing_for_s: float) -> bool:
        """True the first time a feed has been failing for longer than that."""

    def feed_health(self, now: datetime) -> list[FeedHealth]: ...

    def pause_feed(self, name: str, paused: bool, now: datetime) -> bool:
        """Pause a feed (no daemon sharing the database polls it) or resume it, due at
        once; False when the store has no such feed."""

    def items_per_day(self, since: datetime) -> dict[str, dict[str, int]]:
        """feed -> UTC day (YYYY-MM-DD) -> articles stored since then."""


class ArticleStore(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """The writes inside commit together, or not at all."""

    def known_entries(self, feed: str, entry_ids: Iterable[str]) -> set[str]: ...

    def articles_at(self, canonical_urls: Iterable[str]) -> dict[str, int]:
        """canonical URL -> id of the article stored there, for those stored."""

    def add_article(self, new: NewArticle) -> int | None:
        """The new article's id; None when its feed entry is already known."""

    def add_source(self, new: NewSource) -> bool: ...

    def pending_pages(self, feed: str, limit: int) -> list[Article]:
        """The feed's articles stored from its text whose page is still to come."""

    def page_arrived(self, arrived: PageArrived) -> None: ...

    def story_size(self, story_id: int) -> int: ...

    def lock_story_keys(self, keys: Sequence[int]) -> None:
        """Until the transaction ends, no other writer places an article sharing one of
        these band keys (the placement reads candidates, then writes)."""

    def story_candidates(self, keys: Sequence[int], since: datetime
                         ) -> list[StoryCandidate]: ...

    def story_of(self, article_id: int) -> StoryRef | None: ...

    def story_sources(self, story_ids: Iterable[int]) -> dict[int, list[SourceRecord]]: ...

    def unmatched_articles(self, limit: int = 1000) -> list[Article]: ...

    def iter_articles(self, since: datetime, batch: int = 500
                      ) -> Iterator[list[Article]]: ...

    def count_articles_since(self, since: datetime) -> int: ...

    def article(self, article_id: int) -> Article | None: ...

    def record_matches(self, matched: Matched) -> int:
        """Matches and their deliveries in one transaction; the deliveries created."""


class OutboxStore(Protocol):
    def hold_candidates(self) -> tuple[list[HoldCandidate],
                                       dict[tuple[str, str], datetime | None]]: ...

    def apply_holds(self, decisions: Sequence[HoldDecision], now: datetime) -> int: ...

    def claim_deliveries(self, now: datetime, lease_s: float, limit: int,
                         ignore_schedule: bool = False, owner: str | None = None,
                         tried_before: datetime | None = None) -> list[Delivery]: ...

    def renew_claim(self, ids: Sequence[str], owner: str, now: datetime,
                    lease_s: float) -> bool: ...

    def claim_owners(self, now: datetime) -> list[str]: ...

    def release_claims_of(self, owner: str) -> int: ...

    def mark_sent(self, ids: Sequence[str], now: datetime) -> None: ...

    def mark_failed(self, ids: Sequence[str], now: datetime, error: str,
                    next_attempt_at: datetime | None) -> None: ...

    def release(self, ids: Sequence[str]) -> None: ...

    def requeue_deliveries(self, now: datetime, ids: Sequence[str] = (),
                           all_dead: bool = False) -> list[str]: ...

    def deliveries(self, status: str | None = None, rule: str | None = None,
                   story_id: int | None = None) -> list[DeliveryRecord]: ...

    def story_sources(self, story_ids: Iterable[int]) -> dict[int, list[SourceRecord]]: ...


class ArchiveStore(Protocol):
    def search(self, query: str, since: datetime | None = None, feed: str | None = None,
               limit: int = 20, before_id: int | None = None) -> list[SearchHit]:
        """Newest first (publication time, else fetch time, then id); `before_id` pages
        on from that article (none when it is gone)."""

    def article_record(self, article_id: int) -> ArticleRecord | None: ...

    def status_report(self, now: datetime, since: datetime) -> StatusReport: ...

    def count_prunable(self, now: datetime, retention: Retention) -> int: ...

    def prune_batch(self, now: datetime, retention: Retention, batch: int = 500) -> int: ...

    def finish_prune(self, now: datetime, retention: Retention) -> None: ...


class AlertStore(Protocol):
    """Alerts as people review them (the web console), and a draft rule's candidates."""

    def alerts(self, rule: str | None = None, feed: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               text: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[AlertRecord]:
        """Newest first; `text` in the title or the snippet; `before_id` pages on."""

    def alert(self, alert_id: int) -> AlertRecord | None: ...

    def story_deliveries(self, story_ids: Iterable[int]) -> dict[int, list[DeliveryRecord]]:
        """Each story's deliveries, by rule then channel: a page of alerts in one read."""

    def record_feedback(self, alert_id: int, verdict: str, now: datetime) -> bool:
        """One verdict per alert, the last wins; False when there is no such alert."""

    def feedback_counts(self, verdict: str = "not_relevant") -> dict[str, int]:
        """rule -> alerts given this verdict (kept after retention removes the alerts)."""

    def alert_counts(self, since: datetime) -> dict[str, int]:
        """rule -> alerts since then."""

    def alerts_per_day(self, since: datetime) -> dict[str, dict[str, int]]:
        """rule -> UTC day (YYYY-MM-DD) -> alerts that day, since then."""

    def mute_rule(self, rule: str, until: datetime | None, now: datetime,
                  drop: bool = False) -> None:
        """Hold the rule's deliveries until then (None: unmute); the dispatcher sends
        what was held as one digest when the mute ends, or, `drop`, marks them dropped."""

    def dropping_mutes(self, now: datetime) -> set[str]:
        """The rules muted now whose deliveries are dropped rather than held."""

    def mutes(self, now: datetime) -> dict[str, datetime]:
        """rule -> until when it is muted, for the mutes not over yet."""

    def search_articles(self, query: str, since: datetime, limit: int = 10000
                        ) -> list[Article]:
        """Articles fetched since then that full-text search (watcher.core.search's
        syntax) finds, newest first: the candidates a rule's matcher then confirms."""


class WebSubStore(Protocol):
    def websub_subscriptions(self) -> list[Subscription]: ...

    def save_websub(self, sub: Subscription) -> None:
        """Add or replace the feed's subscription."""

    def drop_websub(self, feed: str) -> None: ...


class DaemonStore(Protocol):
    def register_daemon(self, info: DaemonInfo) -> None: ...

    def heartbeat(self, daemon_id: str, now: datetime, rules_hash: str,
                  config_hash: str) -> None: ...

    def deregister_daemon(self, daemon_id: str) -> None: ...

    def live_daemons(self, since: datetime) -> list[DaemonInfo]: ...


class SessionStore(Protocol):
    def open_web_session(self, session: WebSession) -> None:
        """Keep a new login (and forget the ones expired by its creation time)."""

    def web_session(self, token_hash: str, now: datetime) -> WebSession | None:
        """The login with this token digest, unless it expired before `now`."""

    def close_web_session(self, token_hash: str) -> None: ...

    def close_web_sessions(self, name: str, keep_credential: str | None = None) -> int:
        """End every login of `name` except those opened with `keep_credential` (after
        a password change, the logins made with the old password); how many."""


class Store(FeedStore, ArticleStore, OutboxStore, ArchiveStore, AlertStore, DaemonStore,
            WebSubStore, SessionStore, Protocol):
    def schema_version(self) -> tuple[int, int]:
        """(version of the database's schema, version this watcher knows)."""

    def migrate(self) -> int:
        """Apply the migrations not applied yet; how many."""

    def ping(self) -> None:
        """Raises StoreError if the database does not answer."""

    def check_writable(self) -> None:
        """Raises StoreError unless a write can be committed now."""

    def check_intact(self) -> None:
        """Raises StoreError when the database opened is gone or was replaced."""

    def close(self) -> None: ...
