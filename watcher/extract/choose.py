"""Which text an article keeps: the page's or the feed's own; signed once, here."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.core.models import ArticleText, Entry, Extracted, TextSource

# Below this share of the feed's own text, the page extraction probably missed
# the story (a paywall teaser, a cookie wall), so the feed text is better.
SHORT_RATIO = 0.6


@dataclass(frozen=True)
class ChosenText:
    """The text an article is matched on, and where it came from."""

    body: str
    source: TextSource


def feed_text(entry: Entry) -> tuple[str, TextSource]:
    """The feed's own text for an entry: its content, else its summary."""
    if entry.content.strip():
        return entry.content.strip(), "feed-content"
    return entry.summary.strip(), "feed-summary"


def choose_text(extracted: Extracted | None, entry: Entry) -> ChosenText:
    """Prefer the page; fall back to the feed's content, then its summary.

    The page loses when it could not be fetched, came out empty, or is much
    shorter than what the feed itself carried.
    """
    feed, feed_source = feed_text(entry)
    page = extracted.text if extracted else ""
    if page and len(page) >= SHORT_RATIO * len(feed):
        return ChosenText(page, "page")
    if feed:
        return ChosenText(feed, feed_source)
    if page:
        return ChosenText(page, "page")
    return ChosenText("", "none")


def keep_text(extracted: Extracted | None, entry: Entry, sign: bool = True) -> ArticleText:
    """The text the article keeps, and its signature: made here, once, where the
    text is final (in the extraction worker when a page came, else in the daemon).
    `sign=False` when nothing will compare it (story folding is off)."""
    chosen = choose_text(extracted, entry)
    from watcher.core.identity import signature, to_bytes  # numpy: when there is a text

    sig = signature(chosen.body) if sign and chosen.body else None
    return ArticleText(chosen.body, chosen.source, to_bytes(sig) if sig is not None else None)
