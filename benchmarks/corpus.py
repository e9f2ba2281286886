"""A synthetic news corpus: N feeds of M items, each item linking to a heavy article page.

Everything is derived from a seed, so two runs (and the watcher and naive runs of one
benchmark) see byte-identical feeds and pages. Item metadata is cheap to build; page
HTML is rendered on demand (the server renders it once, up front).

Pages look like real news pages as far as an extractor is concerned: navigation, ad
slots with inline scripts, a body of 300 to 1,500 words, related links, comments and
a footer, 20 to 150 KB in all. A known share of items carries the phrase "tactical
missile" in one of several written forms; some others carry decoys that a correct
pipeline must not alert on (the phrase only in the related-links box, "missile
tactics", or the phrase next to "video game", which the benchmark rule excludes).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Literal
from xml.sax.saxutils import escape

FeedFormat = Literal["rss", "atom", "json"]
ItemKind = Literal["target", "plain", "decoy-boilerplate", "decoy-near", "decoy-excluded"]

# Forms a reader would still call "tactical missile"; all must match the rule.
TARGET_FORMS = ("tactical missile", "Tactical Missile", "tactical missiles", "Tactical Missiles",
                "tactical-missile", "tactical\nmissile", "TACTICAL MISSILE", "tactical  missiles")
BASE_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

_VOCABULARY = """
the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will
more can said who out up about than into them some could two time may only new year years
people first over after also other most any these many those now then like between under
government minister officials report week city state country police court council company
market prices workers union election party leader president talks agreement border region
army troops defence forces ministry budget spending plan programme policy economy bank rates
inflation growth trade exports energy power grid water climate storm flood coast river valley
school hospital health doctors patients study research university scientists data system
network service transport rail airport flights road traffic project construction housing rent
families children village town residents community local national international foreign
statement spokesman spokeswoman interview press conference announced confirmed denied warned
expected reported according sources analysts experts critics supporters opposition members
parliament committee vote bill law rules regulators investigation inquiry evidence trial
judge lawyers case appeal decision ruling sentence prison charges arrested suspect victims
crowd protest march rally strike talks deal contract price costs billion million percent
quarter month morning evening night weekend yesterday today tomorrow recent latest early late
major small large growing falling rising strong weak high low long short public private
security safety emergency response support funding aid help crisis recovery damage loss
"""
_SECTIONS = ("Home World Politics Business Markets Technology Science Health Sport Culture "
             "Opinion Travel Weather Video Podcasts Newsletters Subscribe Login Search")
_WORDS = _VOCABULARY.split()
_NAV = _SECTIONS.split()


@dataclass(frozen=True)
class CorpusSpec:
    seed: int = 7
    feeds: int = 100
    items: int = 20
    target_share: float = 0.1
    # False: items carry no link, so there are no pages (cheap warm state at scale).
    pages: bool = True


@dataclass
class Item:
    feed: str
    index: int
    guid: str
    title: str
    summary: str
    published: datetime
    kind: ItemKind
    phrase: str | None  # the target form used, for target and decoy items
    page_bytes: int  # the size the page is padded to
    body_words: int
    has_link: bool = True


@dataclass
class FeedDoc:
    name: str
    format: FeedFormat
    items: list[Item] = field(default_factory=list)  # newest first


def feed_names(spec: CorpusSpec) -> list[str]:
    return [f"feed-{i:05d}" for i in range(spec.feeds)]


def _sentence(rng: random.Random, lo: int = 8, hi: int = 24) -> str:
    words = rng.choices(_WORDS, k=rng.randint(lo, hi))
    if len(words) > 10 and rng.random() < 0.4:
        words[rng.randint(3, len(words) - 4)] += ","
    return " ".join(words).capitalize() + "."


def _title(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(6, 11))).capitalize()


def make_item(spec: CorpusSpec, feed: str, index: int, kind: ItemKind | None = None
              ) -> Item:
    """Item `index` of `feed`, the same for a given seed whatever else is generated."""
    rng = random.Random(f"{spec.seed}:{feed}:{index}")
    if kind is None:
        roll = rng.random()
        if roll < spec.target_share:
            kind = "target"
        elif roll < spec.target_share + 0.03:
            kind = "decoy-boilerplate"
        elif roll < spec.target_share + 0.06:
            kind = "decoy-near"
        elif roll < spec.target_share + 0.08:
            kind = "decoy-excluded"
        else:
            kind = "plain"
    phrase = rng.choice(TARGET_FORMS) if kind != "plain" else None
    title = _title(rng)
    summary = " ".join(_sentence(rng) for _ in range(rng.randint(1, 2)))
    if kind == "target" and rng.random() < 0.3:
        title = f"{title} as {phrase.replace(chr(10), ' ')} test reported"  # type: ignore[union-attr]
    if not spec.pages and kind == "target":
        # Without a page the feed's own text is all there is: carry the phrase there.
        summary = f"{summary} Officials described a new {phrase} system."
    gap = timedelta(minutes=20 + rng.randint(0, 160))
    feed_no = int(feed.rsplit("-", 1)[-1]) if feed.rsplit("-", 1)[-1].isdigit() else 0
    published = BASE_TIME - timedelta(minutes=feed_no % 97) - gap * index
    return Item(feed=feed, index=index, guid=f"urn:bench:{spec.seed}:{feed}:{index}",
                title=title, summary=summary, published=published, kind=kind, phrase=phrase,
                # Log-uniform between 20 and 150 KB: most pages mid-sized, some heavy.
                page_bytes=int(20_000 * (148 / 20) ** rng.random()),
                body_words=rng.randint(300, 1500), has_link=spec.pages)


def build(spec: CorpusSpec) -> list[FeedDoc]:
    """Feed metadata (cheap: no HTML is rendered here)."""
    formats: tuple[FeedFormat, ...] = ("rss", "atom", "json")
    rng = random.Random(spec.seed)
    docs = []
    for name in feed_names(spec):
        doc = FeedDoc(name, rng.choice(formats))
        doc.items = [make_item(spec, name, i) for i in range(spec.items)]
        docs.append(doc)
    return docs


def expected_alerts(docs: list[FeedDoc]) -> int:
    """Items the benchmark's tactical-missile rule must alert on."""
    return sum(1 for d in docs for it in d.items if it.kind == "target")


def page_path(item: Item) -> str:
    return f"/p/{item.feed}/{item.index}"


def feed_path(name: str) -> str:
    return f"/f/{name}"


# -- rendering ---------------------------------------------------------------

def render_feed(doc: FeedDoc, base: str) -> tuple[bytes, str]:
    """The feed document and its content type."""
    link = f"{base}/site/{doc.name}"
    if doc.format == "json":
        items = []
        for it in doc.items:
            entry: dict[str, object] = {
                "id": it.guid, "title": it.title, "summary": it.summary,
                "date_published": it.published.isoformat().replace("+00:00", "Z")}
            if it.has_link:
                entry["url"] = base + page_path(it)
            items.append(entry)
        body = {"version": "https://jsonfeed.org/version/1.1", "title": f"Bench {doc.name}",
                "home_page_url": link, "feed_url": base + feed_path(doc.name), "items": items}
        return json.dumps(body).encode(), "application/feed+json"
    parts: list[str] = []
    if doc.format == "rss":
        parts.append('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
                     f"<title>Bench {doc.name}</title><link>{link}</link>"
                     "<description>Synthetic news for benchmarks</description>")
        for it in doc.items:
            parts.append(
                f"<item><title>{escape(it.title)}</title>"
                + (f"<link>{base}{page_path(it)}</link>" if it.has_link else "")
                + f'<guid isPermaLink="false">{it.guid}</guid>'
                f"<pubDate>{format_datetime(it.published, usegmt=True)}</pubDate>"
                f"<description>{escape(it.summary)}</description></item>")
        parts.append("</channel></rss>")
        return "".join(parts).encode(), "application/rss+xml; charset=utf-8"
    updated = doc.items[0].published.isoformat() if doc.items else BASE_TIME.isoformat()
    parts.append('<?xml version="1.0" encoding="utf-8"?>\n'
                 '<feed xmlns="http://www.w3.org/2005/Atom">'
                 f"<title>Bench {doc.name}</title><id>urn:bench:{doc.name}</id>"
                 f'<link href="{link}" rel="alternate"/><updated>{updated}</updated>')
    for it in doc.items:
        parts.append(
            f"<entry><title>{escape(it.title)}</title><id>{it.guid}</id>"
            + (f'<link href="{base}{page_path(it)}" rel="alternate"/>' if it.has_link else "")
            + f"<published>{it.published.isoformat()}</published>"
            f"<updated>{it.published.isoformat()}</updated>"
            f"<summary>{escape(it.summary)}</summary></entry>")
    parts.append("</feed>")
    return "".join(parts).encode(), "application/atom+xml; charset=utf-8"


def _paragraphs(rng: random.Random, words: int) -> list[str]:
    out: list[str] = []
    count = 0
    while count < words:
        para = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        count += para.count(" ") + 1
        out.append(para)
    return out


def _script(rng: random.Random) -> str:
    """An ad or tracking blob: real pages carry kilobytes of inline script."""
    keys = rng.choices(_WORDS, k=rng.randint(40, 160))
    cfg = ",".join(f'"{k}{i}":"{rng.getrandbits(64):016x}"' for i, k in enumerate(keys))
    return f'<script>window.__ads=window.__ads||[];window.__ads.push({{{cfg}}});</script>'


def render_page(item: Item, base: str) -> bytes:
    rng = random.Random(f"page:{item.guid}")
    nav = "".join(f'<li><a href="{base}/section/{w.lower()}">{w}</a></li>'
                  for w in rng.sample(_NAV, k=len(_NAV)))
    nav += "".join(f'<li><a href="{base}/topic/{w}">{w.capitalize()}</a></li>'
                   for w in rng.choices(_WORDS, k=rng.randint(30, 90)))
    paras = _paragraphs(rng, item.body_words)
    if item.kind in ("target", "decoy-excluded"):
        i = rng.randrange(len(paras))
        paras[i] = f"{paras[i]} The ministry said the {item.phrase} was tested again."
    if item.kind == "decoy-excluded":
        paras[-1] += " The weapon appears only in a popular video game, its makers said."
    if item.kind == "decoy-near":
        paras[rng.randrange(len(paras))] += (" Analysts compared missile tactics across"
                                              " the region, a tactical shift.")
    body = "".join(f"<p>{p}</p>" for p in paras)
    related = [_title(rng) for _ in range(rng.randint(10, 40))]
    if item.kind == "decoy-boilerplate":
        related.insert(rng.randrange(len(related)), f"New {item.phrase} unveiled at parade")
    related_html = "".join(f'<li><a href="{base}/story/{rng.getrandbits(40):x}">{escape(t)}</a>'
                           "</li>" for t in related)
    footer = "".join(f'<a href="{base}/about/{w}">{w.capitalize()}</a> '
                     for w in rng.choices(_WORDS, k=rng.randint(30, 80)))
    head = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(item.title)} | Bench News</title>"
            f'<meta property="og:title" content="{escape(item.title)}">'
            f'<meta name="author" content="Reporter {item.index % 50}">'
            f'<meta property="article:published_time" content="{item.published.isoformat()}">'
            f'<link rel="stylesheet" href="{base}/static/site.css">{_script(rng)}</head>')
    top = (f'<body><header class="site-header"><div class="logo">Bench News</div>'
           f'<nav class="main-nav"><ul>{nav}</ul></nav></header>'
           f'<div class="ad ad-leaderboard" id="ad-top">{_script(rng)}</div>'
           f'<main><article class="story"><h1>{escape(item.title)}</h1>'
           f'<div class="byline">By Reporter {item.index % 50} · '
           f"{item.published.strftime('%d %B %Y')}</div>"
           f'<div class="story-body">{body}</div></article>'
           f'<aside class="related"><h2>Related stories</h2><ul>{related_html}</ul></aside>')
    tail = f'</main><footer class="site-footer"><nav>{footer}</nav><p>© Bench News</p></footer>'
    # Comments, then ad scripts, until the page reaches its size.
    comments: list[str] = []
    size = len(head) + len(top) + len(tail) + 200
    while size < item.page_bytes * 0.75 and len(comments) < 60:
        c = (f'<li class="comment"><span class="user">reader{rng.randint(1, 9999)}</span>'
             f"<p>{' '.join(_sentence(rng) for _ in range(rng.randint(1, 4)))}</p></li>")
        comments.append(c)
        size += len(c)
    ads: list[str] = []
    while size < item.page_bytes:
        ad = f'<div class="ad ad-inline">{_script(rng)}</div>'
        ads.append(ad)
        size += len(ad)
    html = (head + top + '<section class="comments"><h2>Comments</h2><ol>' + "".join(comments)
            + "</ol></section>" + "".join(ads) + tail + "</body></html>")
    return html.encode()
