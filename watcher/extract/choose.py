"""Which text an article keeps: the page's or the feed's own; signed once, here."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.core.identity import signature, to_bytes
from watcher.core.models import ArticleText, Entry, Extracted, TextSource

# Below this share of the feed's own text, the page extraction probably missed
# the story (a paywall teaser, a cookie wall), so the feed text is better.
SHORT_RATIO = 0.6


@dataclass(frozen=True)
class ChosenText:
    body: str
    source: TextSource


def choose_text(extracted: Extracted | None, entry: Entry) -> ChosenText:
    """Prefer the page; fall back to the feed's content, then its summary.

    The page loses when it could not be fetched, came out empty, or is much
    shorter than what the feed itself carried.
    """
    feed_text, feed_source = (
        (entry.content, "feed-content") if entry.content.strip()
        else (entry.summary, "feed-summary")
    )
    page = extracted.text if extracted else ""
    if page and len(page) >= SHORT_RATIO * len(feed_text.strip()):
        return ChosenText(page, "page")
    if feed_text.strip():
        return ChosenText(feed_text.strip(), feed_source)  # type: ignore[arg-type]
    if page:
        return ChosenText(page, "page")
    return ChosenText("", "none")


def keep_text(extracted: Extracted | None, entry: Entry, sign: bool = True) -> ArticleText:
    """The text the article keeps, and its signature: made here, once, where the
    text is final (in the extraction worker when a page came, else in the daemon).
    `sign=False` when nothing will compare it (story folding is off)."""
    chosen = choose_text(extracted, entry)
    sig = signature(chosen.body) if sign and chosen.body else None
    return ArticleText(chosen.body, chosen.source, to_bytes(sig) if sig is not None else None)
