"""A page's title, author, language, site name and canonical link, from its markup."""

from __future__ import annotations

import json
from typing import Any


def _first(tree: Any, *xpaths: str) -> str | None:
    for xp in xpaths:
        found = tree.xpath(xp)
        if found:
            value = str(found[0]).strip()
            if value:
                return value
    return None


def _first_of(*values: str | None) -> str | None:
    """The first value present and not blank; as `_first`, a blank one does not
    stand for its kind (the next kind is tried, not the next element)."""
    for value in values:
        if value is not None and (value := value.strip()):
            return value
    return None


def _head_values(root: Any) -> dict[tuple[str, str], str]:
    """In one walk of the document, what `//meta[@A='V']/@content`, `//link[@rel='V']/@href`,
    `//title/text()` and `//time/@datetime` would each find first: a dozen XPath
    scans of the whole page cost four times as much."""
    found: dict[tuple[str, str], str] = {}
    for element in root.iter("meta", "link", "title", "time"):
        tag = element.tag
        if tag == "meta":
            content = element.get("content")
            if content is not None:
                for attribute in ("property", "name", "http-equiv"):
                    value = element.get(attribute)
                    if value is not None:
                        found.setdefault((attribute, value), content)
        elif tag == "link":
            rel, href = element.get("rel"), element.get("href")
            if rel is not None and href is not None:
                found.setdefault(("rel", rel), href)
        elif tag == "title":
            if element.text is not None:  # no text node: the next title's counts
                found.setdefault(("title", ""), element.text)
        else:
            value = element.get("datetime")
            if value is not None:
                found.setdefault(("time", ""), value)
    return found


def _ld_author(tree: Any) -> str | None:
    """schema.org JSON-LD: {"author": {"name": ...}} or a list of them."""
    for script in tree.xpath("//script[@type='application/ld+json']/text()")[:5]:
        try:
            data = json.loads(script)
        except ValueError:
            continue
        for item in data if isinstance(data, list) else [data]:
            author = item.get("author") if isinstance(item, dict) else None
            if isinstance(author, list):
                author = author[0] if author else None
            name = author.get("name") if isinstance(author, dict) else author
            if isinstance(name, str) and name.strip():
                return name.strip()
    return None


def page_metadata(tree: Any) -> dict[str, str | None]:
    """Title, author, language, site name and canonical link from the page's markup.

    Read directly: trafilatura's own metadata pass (dates, categories) costs
    more than the text extraction, and the feed already says when it was published.
    """
    # From the document's root, as the absolute paths: `tree` may be a fragment's element.
    root = tree.getroottree().getroot()
    head = _head_values(root)
    return {
        "title": _first_of(head.get(("property", "og:title")), head.get(("title", "")))
                 or _first(tree, "//h1//text()"),
        "author": _first_of(head.get(("name", "author")),
                            head.get(("property", "article:author")))
                  or _first(tree, "//*[@rel='author']//text()",
                            "//*[contains(concat(' ', normalize-space(@class), ' '), ' author ')]"
                            "//text()") or _ld_author(tree),
        "language": _first_of(root.get("lang") if root.tag == "html" else None,
                              head.get(("http-equiv", "content-language")),
                              head.get(("property", "og:locale"))),
        "sitename": _first_of(head.get(("property", "og:site_name"))),
        "canonical": _first_of(head.get(("rel", "canonical"))),
        "date": _first_of(head.get(("property", "article:published_time")),
                          head.get(("name", "date")), head.get(("time", ""))),
    }
