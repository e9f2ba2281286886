"""Shared pieces for the delivery tests: stored matches, a recording channel, a clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.core.alerts import new_deliveries
from watcher.core.digest import classify
from watcher.core.errors import DeliveryError
from watcher.core.intents import Matched, NewArticle
from watcher.core.models import Alert, Article, Digest, Hit, Match
from watcher.store.sqlite import SqliteStore as Store

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def alert(n: int = 1, rule: str = "missiles", **kw: object) -> Alert:
    base = Alert(
        delivery_id=f"wd_{n:032d}", rule=rule, query='"tactical missile"',
        title=f"Story {n}: a new tactical missile", url=f"https://news.example.org/{n}",
        feed="world", published="2026-03-02T09:00:00.000000Z", field="summary",
        snippet=f"The army showed a new tactical missile system (story {n}).",
        matched=("tactical missile",), article_id=n)
    return replace(base, **kw)  # type: ignore[arg-type]


def add_match(store: Store, n: int, now: datetime, rule: str = "missiles",
              channels: tuple[str, ...] = ("hook",), feed: str = "world") -> None:
    """Store an article and its match; its deliveries are created with `now`."""
    article = Article(
        feed=feed, entry_id=f"entry-{n}", url=f"https://news.example.org/{n}",
        title=f"Story {n}: a new tactical missile",
        summary=f"The army showed a new tactical missile system (story {n}).",
        body="", text_source="feed-summary", published=now - timedelta(hours=1),
        fetched_at=now)
    article_id = store.add_article(NewArticle(article))
    assert article_id is not None
    match = Match(rule=rule, hits=(Hit("summary", "tactical missile", 28, 44,
                                       "tactical missile"),),
                  field="summary", snippet=article.summary, query='"tactical missile"')
    record_match(store, replace(article, id=article_id), [match], {rule: list(channels)}, now)


def record_match(store: Store, article: Article, matches: list[Match],
                 channels_by_rule: dict[str, list[str]], now: datetime) -> int:
    """What ingest does with a stored article's matches: the deliveries they make,
    written with them."""
    assert article.id is not None
    story = store.story_of(article.id)
    assert story is not None
    return store.record_matches(Matched(article.id, story.id, tuple(matches),
                                        new_deliveries(article, story, matches,
                                                       channels_by_rule), now))


def classify_all(store: Store, now: datetime) -> None:
    """No rule holds anything: every new delivery goes out at once."""
    store.apply_holds(classify(*store.hold_candidates(), {}, UTC), now)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordingChannel:
    """Takes alerts and digests in memory; `fail` makes the next sends fail."""

    name: str = "hook"
    sent: list[Alert | Digest] = field(default_factory=list)
    fail: list[DeliveryError] = field(default_factory=list)

    async def send(self, alert: Alert) -> None:
        self._maybe_fail()
        self.sent.append(alert)

    async def send_digest(self, digest: Digest) -> None:
        self._maybe_fail()
        self.sent.append(digest)

    def _maybe_fail(self) -> None:
        if self.fail:
            raise self.fail.pop(0)

    async def aclose(self) -> None:
        return None

    def alert_ids(self) -> list[str]:
        out = []
        for m in self.sent:
            out += [a.delivery_id for a in m.alerts] if isinstance(m, Digest) \
                else [m.delivery_id]
        return out


def statuses(store: Store) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in store.deliveries():
        out[row.status] = out.get(row.status, 0) + 1
    return out


def store_at(tmp_path: Path) -> Store:
    return Store(tmp_path / "watcher.db")
