"""Matches -> the deliveries they make, each with its alert frozen at match time. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from watcher.core.display import shorten
from watcher.core.intents import NewDelivery
from watcher.core.models import Alert, Article, Match, StoryRef

# An alert's title, at most: the article keeps its whole title, a message needs no more.
ALERT_TITLE_LIMIT = 300


def delivery_id(rule: str, feed: str, entry_id: str, channel: str) -> str:
    """Stable across retries, restarts and databases: receivers can drop repeats by it."""
    digest = hashlib.sha256("\x00".join((rule, feed, entry_id, channel)).encode()).hexdigest()
    return "wd_" + digest[:32]


def iso(value: datetime | None) -> str | None:
    """An alert's `published`: the fixed-width UTC form the store also writes."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def new_deliveries(article: Article, story: StoryRef, matches: Sequence[Match],
                   channels_by_rule: Mapping[str, Sequence[str]]) -> tuple[NewDelivery, ...]:
    """One delivery per (rule, story, channel), named after the story's first copy,
    so that every later copy of the story maps to the same id.

    The alert says what this copy matched; it is frozen now, so a later edit of
    rules.yaml does not change what a waiting delivery says.
    """
    if article.id is None:
        raise ValueError("new_deliveries needs a stored article (no id)")
    out: list[NewDelivery] = []
    for m in matches:
        for channel in channels_by_rule.get(m.rule, ()):
            did = delivery_id(m.rule, story.feed, story.entry_id, channel)
            alert = Alert(
                delivery_id=did, rule=m.rule, query=m.query,
                title=shorten(article.title, ALERT_TITLE_LIMIT),
                url=article.url, feed=article.feed, published=iso(article.published),
                field=m.field, snippet=m.snippet,
                matched=tuple(dict.fromkeys(h.matched for h in m.hits)),
                article_id=article.id, text_source=article.text_source)
            out.append(NewDelivery(did, m.rule, channel, alert))
    return tuple(out)
