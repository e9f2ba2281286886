"""Feed bytes + response headers -> entries. RSS and Atom via feedparser; JSON Feed by hand."""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

from watcher.core.errors import ParseError
from watcher.core.models import Entry, ParsedFeed
from watcher.core.websub import hub_links

# feedparser's loose parser expands internal entity declarations: a small
# document could grow to gigabytes (billion laughs), so refuse them outright.
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_JSON_FEED_VERSION = re.compile(r"^https://jsonfeed\.org/version/1(\.1)?$")


def declares_entities(body: bytes) -> bool:
    """True when the document declares entities, in whatever encoding it is written.

    A UTF-16 or UTF-32 document hides `<!ENTITY` from a byte search, and the
    parser would still expand it, so wide encodings are decoded before looking.
    """
    if _ENTITY_DECL.search(body):
        return True
    head = body[:4]
    if b"\x00" not in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    for codec in ("utf-32", "utf-16", "utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be"):
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            continue
        if "<!entity" in text.lower():
            return True
    return False


def html_to_text(fragment: str) -> str:
    """Feed summaries and content are often HTML: keep only their text."""
    if not fragment or ("<" not in fragment and "&" not in fragment):
        return (fragment or "").strip()
    from lxml import html as lxml_html  # a feed answering 304 is never parsed

    try:
        doc = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except Exception:  # lxml raises several types on odd input; text is all we need
        return html.unescape(re.sub(r"<[^>]*>", " ", fragment)).strip()
    for bad in doc.xpath(".//script|.//style"):
        bad.drop_tree()
    # Block elements become line breaks so words in adjacent paragraphs stay apart;
    # inline markup boundaries separate words too (<b>tactical</b><i>missile</i>).
    for el in doc.iter():
        if el is doc or not isinstance(el.tag, str):
            continue
        if el.tag in ("p", "br", "div", "li", "h1", "h2", "h3", "h4", "tr", "blockquote"):
            el.tail = "\n" + (el.tail or "")
        else:
            el.text = " " + (el.text or "")
            el.tail = " " + (el.tail or "")
    text = doc.text_content()
    text = re.sub(r"[ \t\r\f\v]+", " ", re.sub(r"\n\s*\n+", "\n\n", text))
    # The spaces added at inline boundaries must not detach punctuation.
    return re.sub(r" +([,.;:!?)\]])", r"\1", text).strip()


def _entry_id(raw_id: str | None, link: str | None, title: str, published: str) -> str:
    if raw_id:
        return raw_id.strip()
    if link:
        return link.strip()
    return "sha256:" + hashlib.sha256(f"{title}\x00{published}".encode()).hexdigest()[:32]


def _struct_to_dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _iso_to_dt(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _join(base: str, link: str | None) -> str | None:
    if not link:
        return None
    link = link.strip()
    return urljoin(base, link) if base else link


_SY_PERIODS = {"hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0,
               "monthly": 30 * 86400.0, "yearly": 365 * 86400.0}


def update_period_s(period: str | None, frequency: str | None) -> float | None:
    """RSS syndication module: sy:updatePeriod / sy:updateFrequency -> seconds between updates."""
    if not period:
        return None
    base = _SY_PERIODS.get(period.strip().lower())
    if base is None:
        return None
    try:
        freq = max(int(str(frequency).strip()), 1) if frequency else 1
    except ValueError:
        freq = 1
    return base / freq


def looks_like_json_feed(body: bytes, headers: Mapping[str, str]) -> bool:
    ctype = headers.get("content-type", "").lower()
    if "json" in ctype:
        return True
    return body.lstrip()[:1] == b"{"


def parse_json_feed(body: bytes, base_url: str = "") -> ParsedFeed:
    """JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not _JSON_FEED_VERSION.match(str(doc.get("version", ""))):
        raise ParseError("JSON document is not a JSON Feed (no jsonfeed.org 'version')")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed has no 'items' list")
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        link = _join(base_url, item.get("url") or item.get("external_url"))
        title = html_to_text(str(item.get("title") or ""))
        published = item.get("date_published") or item.get("date_modified")
        content = str(item.get("content_text") or "") or html_to_text(
            str(item.get("content_html") or ""))
        authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
        author = next((a.get("name") for a in authors if isinstance(a, dict) and a.get("name")),
                      None)
        raw_id = item.get("id")
        entries.append(Entry(
            entry_id=_entry_id(str(raw_id) if raw_id not in (None, "") else None, link, title,
                               str(published or "")),
            link=link,
            title=title,
            summary=html_to_text(str(item.get("summary") or "")),
            content=content,
            published=_iso_to_dt(published),
            author=author,
        ))
    return ParsedFeed(title=str(doc.get("title") or ""), entries=tuple(entries))


_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']",
                              re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"),
         (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe", "utf-16-le"),
         (b"\xfe\xff", "utf-16-be"))


def declared_encodings(body: bytes, headers: Mapping[str, str]) -> list[str]:
    """The encodings the document says it is in, in feedparser's order of belief:
    byte-order mark, HTTP charset, XML declaration; UTF-8 (XML's default) when none."""
    found: list[str] = [name for bom, name in _BOMS if body.startswith(bom)][:1]
    for match in (_CHARSET.search(headers.get("content-type", "")),
                  _XML_DECLARATION.search(body[:512])):
        if match:
            name = match.group(1)
            name = name.decode("ascii") if isinstance(name, bytes) else name
            try:
                found.append(codecs.lookup(name).name)
            except LookupError:
                continue
    return list(dict.fromkeys(found)) or ["utf-8"]


def repair_encoding(body: bytes, headers: Mapping[str, str]
                    ) -> tuple[bytes, dict[str, str]]:
    """A document whose bytes are invalid in every encoding it declares, made valid
    UTF-8 with U+FFFD in their place (and declared as such), so that one bad byte
    costs the entry holding it, not its neighbours: given invalid bytes, feedparser
    decodes the whole document with another encoding. A document valid in one of
    its declared encodings passes unchanged."""
    declared = declared_encodings(body, headers)
    for encoding in declared:
        try:
            body.decode(encoding)
            return body, dict(headers)
        except UnicodeDecodeError:
            continue
    text = body.decode(declared[0], errors="replace").lstrip("\ufeff")
    fixed = text.encode("utf-8")
    fixed = _XML_DECLARATION.sub(
        lambda m: m.group(0).replace(m.group(1), b"utf-8"), fixed, count=1)
    out = dict(headers)
    ctype = out.get("content-type", "")
    out["content-type"] = (_CHARSET.sub("charset=utf-8", ctype) if _CHARSET.search(ctype)
                           else (ctype + "; charset=utf-8" if ctype else
                                 "application/xml; charset=utf-8"))
    return fixed, out


def parse_feed(body: bytes, headers: Mapping[str, str], base_url: str = "") -> ParsedFeed:
    """Parse a feed document. `headers` are the response headers, lower-cased.

    Raises ParseError when the bytes are not a feed at all; a feed with a few
    malformed entries still yields the good ones.
    """
    if not body.strip():
        raise ParseError("empty document")
    if declares_entities(body):
        raise ParseError("document declares XML entities (<!ENTITY); refused")
    body, headers = repair_encoding(body, headers)
    if looks_like_json_feed(body, headers):
        return parse_json_feed(body, base_url)
    # feedparser only reads these headers; give them so charset detection
    # follows the HTTP header, and never a URL (it would fetch by itself).
    response_headers = {k: v for k, v in headers.items()
                        if k in ("content-type", "content-location", "content-language")}
    import feedparser  # here: a cycle whose feeds all answer 304 never parses one

    parsed = feedparser.parse(body, response_headers=response_headers,
                              sanitize_html=False, resolve_relative_uris=False)
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise ParseError(f"not an RSS, Atom or JSON feed ({reason or 'no feed elements found'})")
    entries: list[Entry] = []
    for e in parsed.entries:
        link = _join(base_url, e.get("link"))
        title = html_to_text(e.get("title", ""))
        content = "\n\n".join(html_to_text(c.get("value", "")) for c in e.get("content", []) or [])
        published_raw = e.get("published") or e.get("updated") or ""
        entries.append(Entry(
            entry_id=_entry_id(e.get("id"), link, title, published_raw),
            link=link,
            title=title,
            summary=html_to_text(e.get("summary", "")),
            content=content,
            published=_struct_to_dt(e.get("published_parsed") or e.get("updated_parsed")),
            author=e.get("author") or None,
        ))
    ttl = parsed.feed.get("ttl")
    try:
        ttl_minutes = int(ttl) if ttl else None
    except (TypeError, ValueError):
        ttl_minutes = None
    hub, topic = hub_links([(str(link.get("rel") or ""), str(link.get("href") or ""))
                            for link in parsed.feed.get("links") or []], base_url)
    return ParsedFeed(title=html_to_text(parsed.feed.get("title", "")),
                      entries=tuple(entries), ttl_minutes=ttl_minutes,
                      sy_period_s=update_period_s(parsed.feed.get("sy_updateperiod"),
                                                  parsed.feed.get("sy_updatefrequency")),
                      hub=hub, topic=topic)


_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/json", "application/rdf+xml", "text/xml", "application/xml")


def looks_like_html(body: bytes, headers: Mapping[str, str]) -> bool:
    if "html" in headers.get("content-type", "").lower():
        return True
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def discover_feeds(body: bytes, base_url: str) -> list[str]:
    """The feeds an HTML page advertises with <link rel="alternate" type="...">."""
    from lxml import html as lxml_html

    try:
        doc = lxml_html.document_fromstring(body)
    except Exception:  # lxml raises several types on odd input
        return []
    found: list[str] = []
    for link in doc.xpath("//link[@href]"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower().split(";")[0].strip()
        if "alternate" in rel and kind in _FEED_TYPES:
            url = urljoin(base_url, link.get("href").strip())
            if url not in found:
                found.append(url)
    return found
