"""A section or front page -> the links on it that look like articles of the same site.

Navigation, headers, footers, sidebars and share bars are left out, and so are links
courlan's filters call navigation, not crawlable or not HTML. A link looks like an
article when its path carries a date (/2026/05/01/, 2026-05-01, 20260501), or is at
least two segments deep and ends in a slug of several words or a long numeric id.
An operator's `links` (CSS selector) or `pattern` (regular expression) narrows the
choice and stands in for that shape test.
"""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urljoin, urlsplit

from courlan.filters import (
    extension_filter,
    is_navigation_page,
    is_not_crawlable,
    path_filter,
    type_filter,
)
from lxml import etree
from lxml import html as lxml_html
from lxml.cssselect import CSSSelector

_BOILERPLATE_TAGS = ("nav", "header", "footer", "aside", "form", "menu")
_BOILERPLATE_WORDS = re.compile(
    r"(^|[\s_-])(nav|navbar|navigation|menu|breadcrumbs?|footer|header|masthead|sidebar|"
    r"social|share|sharing|subscribe|newsletter|cookie|pagination|pager|skip)($|[\s_-])",
    re.IGNORECASE)
_BOILERPLATE_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search")
_DATE_IN_PATH = re.compile(r"/(19|20)\d{2}[/-](0?[1-9]|1[0-2])([/-]|$)|/(19|20)\d{6}(\D|$)")
_SLUG = re.compile(r"^[\w%]+(-[\w%]+){2,}(\.\w{2,5})?$")
_LONG_ID = re.compile(r"\d{5,}")
MAX_LINKS = 2000  # kept per page: more is a sitemap, not a section page


def _boilerplate(el: etree._Element) -> bool:
    if el.tag in _BOILERPLATE_TAGS:
        return True
    if (el.get("role") or "").lower() in _BOILERPLATE_ROLES:
        return True
    marks = f"{el.get('class') or ''} {el.get('id') or ''}"
    return bool(marks.strip()) and bool(_BOILERPLATE_WORDS.search(marks))


def _strip_boilerplate(doc: etree._Element) -> None:
    for el in list(doc.iter(*_BOILERPLATE_TAGS, "div", "section", "ul", "ol", "span")):
        if el.getparent() is not None and _boilerplate(el):
            el.drop_tree()


def _same_site(url: str, page: str) -> bool:
    a, b = urlsplit(url), urlsplit(page)
    host, home = (a.hostname or ""), (b.hostname or "")
    host, home = host.removeprefix("www."), home.removeprefix("www.")
    return a.scheme in ("http", "https") and host == home and a.port == b.port


def looks_like_article(url: str) -> bool:
    parts = urlsplit(url)
    path = parts.path
    if _DATE_IN_PATH.search(path):
        return True
    segments = [s for s in path.split("/") if s]
    if len(segments) < 2:
        return False
    last = segments[-1]
    return bool(_SLUG.match(last)) or bool(_LONG_ID.search(last))


def _acceptable(url: str) -> bool:
    """courlan's filters: not a navigation page, nothing that is not crawled, HTML only."""
    parts = urlsplit(url)
    return (extension_filter(parts.path) and path_filter(parts.path, parts.query)
            and type_filter(url, strict=True) and not is_navigation_page(url)
            and not is_not_crawlable(url))


def article_links(body: bytes, page_url: str, selector: str | None = None,
                  pattern: str | None = None) -> list[tuple[str, str]]:
    """(url, link text) of the page's article links, in page order, each once."""
    try:
        doc = lxml_html.fromstring(body)
    except (etree.ParserError, ValueError):
        return []
    base = page_url
    for b in doc.iter("base"):
        if b.get("href"):
            base = urljoin(page_url, b.get("href", ""))
            break
    if selector:
        chosen = CSSSelector(selector)(doc)
        anchors = [a for el in chosen for a in
                   ([el] if el.tag == "a" else el.iter("a"))]
    else:
        _strip_boilerplate(doc)
        anchors = list(doc.iter("a"))
    wanted = re.compile(pattern) if pattern else None
    found: dict[str, str] = {}
    own = urldefrag(page_url)[0]
    for a in anchors:
        href = (a.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            continue
        try:
            url = urldefrag(urljoin(base, href))[0]
        except ValueError:
            continue
        if url in found or url == own or not _same_site(url, page_url):
            continue
        if wanted is not None:
            if not wanted.search(url):
                continue
        elif not selector and not looks_like_article(url):
            continue
        if not _acceptable(url):
            continue
        found[url] = " ".join(a.text_content().split())
        if len(found) >= MAX_LINKS:
            break
    return list(found.items())
