"""Article page -> main text and metadata (trafilatura), and the choice of which text to keep."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import trafilatura

from watcher.errors import ExtractError
from watcher.models import Entry, Extracted, TextSource

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
# Below this share of the feed's own text, the page extraction probably missed
# the story (a paywall teaser, a cookie wall), so the feed text is better.
SHORT_RATIO = 0.6


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_page(body: bytes, content_type: str | None) -> str:
    """Bytes -> text: the HTTP charset, else the page's meta tag, else detection."""
    declared = _CHARSET.search(content_type or "")
    candidates = [declared.group(1) if declared else None]
    meta = _META_CHARSET.search(body[:4096])
    candidates.append(meta.group(1).decode("ascii", "ignore") if meta else None)
    for name in candidates:
        codec = _codec(name)
        if codec:
            try:
                return body.decode(codec)
            except UnicodeDecodeError:
                continue
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes  # installed with trafilatura/httpx

        best = from_bytes(body).best()
        return str(best) if best is not None else body.decode("latin-1")


def extract_page(body: bytes, url: str | None = None, content_type: str | None = None
                 ) -> Extracted:
    """Main text without navigation, related links, comments or footer."""
    text = decode_page(body, content_type)
    try:
        doc = trafilatura.bare_extraction(
            text, url=url, with_metadata=True, include_comments=False,
            include_tables=True, favor_precision=True,
        )
    except Exception as exc:  # trafilatura can raise from deep inside lxml
        raise ExtractError(f"{url or 'page'}: trafilatura failed: {exc}") from None
    if doc is None:
        return Extracted(text="")
    return Extracted(
        text=(doc.text or "").strip(),
        title=doc.title or None,
        author=doc.author or None,
        date=doc.date or None,
        language=doc.language or None,
        sitename=doc.sitename or None,
    )


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
