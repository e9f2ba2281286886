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
_SINGLE_BYTE_LATIN = {"cp1250", "cp1252", "cp1257", "latin_1", "iso8859_15", "iso8859_2",
                      "iso8859_13", "iso8859_4", "cp1254", "iso8859_9"}
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
    for i, name in enumerate(candidates):
        codec = _codec(name)
        if i == 1 and codec and codec.startswith(("utf-16", "utf-32")):
            # A meta tag could only be read because the bytes are ASCII-compatible:
            # the HTML standard reads such a page as UTF-8.
            codec = "utf-8"
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
        if best is None:
            return body.decode("windows-1252", errors="replace")
        if best.encoding in _SINGLE_BYTE_LATIN:
            # Detection cannot tell these apart on short English text; the HTML
            # standard's default for undeclared Western pages is windows-1252.
            return body.decode("windows-1252", errors="replace")
        return str(best)


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
