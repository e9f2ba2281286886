"""OPML 2.0 subscription lists: read outlines, write a document. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from watcher.core.errors import ConfigError


@dataclass(frozen=True)
class Subscription:
    title: str
    url: str
    html_url: str | None = None
    categories: tuple[str, ...] = ()
    kind: str = "rss"  # OPML's type: rss for a feed; watcher's sitemap and page sources


def read_opml(data: bytes, source: str = "OPML") -> list[Subscription]:
    """Every outline with an xmlUrl, nested folders becoming categories."""
    if re.search(rb"<!ENTITY", data, re.IGNORECASE):
        raise ConfigError(f"{source}: declares XML entities (<!ENTITY); refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{source}: not valid XML: {exc}") from None
    if root.tag != "opml":
        raise ConfigError(f"{source}: not an OPML document (root element <{root.tag}>)")
    body = root.find("body")
    if body is None:
        raise ConfigError(f"{source}: OPML document has no <body>")
    subs: list[Subscription] = []

    def walk(node: etree._Element, folders: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            title = outline.get("title") or outline.get("text") or ""
            url = outline.get("xmlUrl") or outline.get("xmlurl")
            cats = tuple(c.strip() for c in (outline.get("category") or "").split(",")
                         if c.strip().strip("/"))
            if url:
                subs.append(Subscription(title=title.strip(), url=url.strip(),
                                         html_url=outline.get("htmlUrl"),
                                         categories=folders + tuple(c.strip("/") for c in cats),
                                         kind=(outline.get("type") or "rss").strip().lower()))
            else:
                walk(outline, (*folders, title.strip()) if title.strip() else folders)

    walk(body, ())
    return subs


def write_opml(subs: list[Subscription], title: str, now: datetime) -> bytes:
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now)
    body = etree.SubElement(root, "body")
    for s in subs:
        attrs = {"type": s.kind, "text": s.title, "title": s.title, "xmlUrl": s.url}
        if s.html_url:
            attrs["htmlUrl"] = s.html_url
        if s.categories:
            attrs["category"] = ",".join(s.categories)
        etree.SubElement(body, "outline", **attrs)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def slug(text: str, fallback: str = "feed") -> str:
    """A feed name from a title or host: lower-case letters, digits and dashes."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    return s or fallback
