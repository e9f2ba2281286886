"""watcher.core.parse: feed bytes + headers -> entries, or a ParseError."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.core.errors import ParseError
from watcher.core.parse import html_to_text, parse_feed

ROOT = Path(__file__).resolve().parents[1]
RSS_HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Demo &amp; Co</title><ttl>30</ttl>
<item>
  <title>One</title><link>/a/1.html</link><guid isPermaLink="false">g-1</guid>
  <pubDate>Tue, 21 May 2024 11:15:00 +0000</pubDate>
  <description>&lt;p&gt;Hello &lt;b&gt;bold&lt;/b&gt; world&lt;/p&gt;&lt;p&gt;Second para&lt;/p&gt;\
&lt;script&gt;evil()&lt;/script&gt;</description>
  <author>ann@example.org (Ann)</author>
</item>
<item>
  <title>Two</title><link>rel/2.html</link>
  <pubDate>Wed, 22 May 2024 11:15:00 +0200</pubDate><description>plain</description>
</item>
<item><title>Three</title><pubDate>Wed, 22 May 2024 12:00:00 +0000</pubDate></item>
<item><title>Four</title><description><![CDATA[<div>CDATA <i>html</i> &amp; more</div>]]>\
</description></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Demo</title><id>urn:feed</id>
<updated>2024-05-21T10:00:00Z</updated>
<entry>
  <title type="html">A &lt;em&gt;first&lt;/em&gt; story</title><id>urn:uuid:1</id>
  <link rel="alternate" href="stories/1"/>
  <updated>2024-05-21T10:00:00Z</updated><published>2024-05-20T09:00:00+02:00</published>
  <summary type="html">&lt;p&gt;Short &lt;b&gt;sum&lt;/b&gt;&lt;/p&gt;</summary>
  <content type="html">&lt;p&gt;Body one&lt;/p&gt;&lt;p&gt;Body two&lt;/p&gt;</content>
  <author><name>Bob</name></author>
</entry>
</feed>"""

JSON_FEED = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "JSON Demo", "items": [
 {"id": "1", "url": "/p/1", "title": "J one", "content_html": "<p>Hi <b>there</b></p>",
  "summary": "S", "date_published": "2024-05-21T10:00:00Z", "authors": [{"name": "Cy"}]},
 {"id": 2, "external_url": "https://other.example/2", "title": "J two",
  "content_text": "plain text", "date_published": "2024-05-21T10:00:00"},
 {"title": "J three", "date_published": "2024-05-21T10:00:00Z"},
 {"id": "", "url": "x/4", "title": "J four"},
 "not an item"
]}"""


def test_rss_2_0() -> None:
    feed = parse_feed(RSS, RSS_HEADERS, "https://news.example/feeds/world.xml")
    assert feed.title == "Demo & Co"
    assert feed.ttl_minutes == 30
    assert [e.title for e in feed.entries] == ["One", "Two", "Three", "Four"]
    one, two, three, four = feed.entries
    assert one.entry_id == "g-1"
    assert one.link == "https://news.example/a/1.html"
    assert one.published == datetime(2024, 5, 21, 11, 15, tzinfo=UTC)
    assert one.author == "ann@example.org (Ann)"
    assert two.published == datetime(2024, 5, 22, 9, 15, tzinfo=UTC)
    assert three.link is None and three.summary == ""
    assert four.published is None


def test_atom_1_0() -> None:
    feed = parse_feed(ATOM, {"content-type": "application/atom+xml"},
                      "https://news.example/atom/")
    assert feed.title == "Atom Demo"
    assert feed.ttl_minutes is None
    (e,) = feed.entries
    assert e.entry_id == "urn:uuid:1"
    assert e.title == "A first story"
    assert e.link == "https://news.example/atom/stories/1"
    assert e.summary == "Short sum"
    assert e.content == "Body one\nBody two"
    assert e.published == datetime(2024, 5, 20, 7, 0, tzinfo=UTC)
    assert e.author == "Bob"


def test_json_feed_1_1() -> None:
    feed = parse_feed(JSON_FEED, {"content-type": "application/feed+json"},
                      "https://j.example/feed.json")
    assert feed.title == "JSON Demo"
    assert [e.title for e in feed.entries] == ["J one", "J two", "J three", "J four"]
    one, two, three, four = feed.entries
    assert (one.entry_id, one.link, one.content, one.summary, one.author) == (
        "1", "https://j.example/p/1", "Hi there", "S", "Cy")
    assert one.published == datetime(2024, 5, 21, 10, 0, tzinfo=UTC)
    assert (two.entry_id, two.link, two.content) == ("2", "https://other.example/2",
                                                      "plain text")
    assert two.published == datetime(2024, 5, 21, 10, 0, tzinfo=UTC)  # naive -> UTC
    assert three.link is None and three.entry_id.startswith("sha256:")
    assert four.entry_id == "https://j.example/x/4"


def test_json_feed_detected_without_content_type() -> None:
    feed = parse_feed(b"  \n" + JSON_FEED, {})
    assert feed.entries[0].link == "/p/1"  # no base URL: left as it is


def test_relative_links_resolved_against_base_url() -> None:
    feed = parse_feed(RSS, RSS_HEADERS, "https://news.example/feeds/world.xml")
    assert [e.link for e in feed.entries[:2]] == [
        "https://news.example/a/1.html", "https://news.example/feeds/rel/2.html"]
    feed = parse_feed(RSS, RSS_HEADERS, "file:///srv/seeds/feeds/world.xml")
    assert feed.entries[1].link == "file:///srv/seeds/feeds/rel/2.html"


def test_entry_id_falls_back_guid_then_link_then_stable_hash() -> None:
    feed = parse_feed(RSS, RSS_HEADERS, "https://news.example/feeds/world.xml")
    one, two, three, four = feed.entries
    assert one.entry_id == "g-1"  # guid
    assert two.entry_id == "https://news.example/feeds/rel/2.html"  # resolved link
    assert three.entry_id.startswith("sha256:") and len(three.entry_id) == 7 + 32
    assert four.entry_id.startswith("sha256:")
    assert three.entry_id != four.entry_id
    again = parse_feed(RSS, RSS_HEADERS, "https://elsewhere.example/")
    assert again.entries[2].entry_id == three.entry_id  # stable across parses


def test_hash_id_depends_on_title_and_date() -> None:
    def one(title: str, date: str) -> str:
        doc = (f'<rss version="2.0"><channel><title>t</title><item><title>{title}</title>'
               f"<pubDate>{date}</pubDate></item></channel></rss>").encode()
        return parse_feed(doc, RSS_HEADERS).entries[0].entry_id

    base = one("Same", "Wed, 22 May 2024 12:00:00 +0000")
    assert base == one("Same", "Wed, 22 May 2024 12:00:00 +0000")
    assert base != one("Other", "Wed, 22 May 2024 12:00:00 +0000")
    assert base != one("Same", "Thu, 23 May 2024 12:00:00 +0000")


def test_html_in_summaries_becomes_text() -> None:
    feed = parse_feed(RSS, RSS_HEADERS)
    assert feed.entries[0].summary == "Hello bold world\nSecond para"
    assert "evil" not in feed.entries[0].summary
    assert feed.entries[3].summary == "CDATA html & more"


@pytest.mark.parametrize(("fragment", "text"), [
    ("plain text", "plain text"),
    ("  padded  ", "padded"),
    ("<p>a</p><p>b</p>", "a\nb"),
    ("one<br>two", "one\ntwo"),
    ("<ul><li>x</li><li>y</li></ul>", "x\ny"),
    ("Fish &amp; chips &eacute;", "Fish & chips é"),
    ("<style>p{color:red}</style><p>shown</p><script>hidden()</script>", "shown"),
    ("<b>tactical</b><i>missile</i>", "tactical missile"),  # markup separates words
    ("", ""),
])
def test_html_to_text(fragment: str, text: str) -> None:
    assert html_to_text(fragment) == text


def test_billion_laughs_refused_quickly() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title></item>
</channel></rss>"""
    start = time.monotonic()
    with pytest.raises(ParseError, match="ENTITY"):
        parse_feed(bomb, RSS_HEADERS)
    assert time.monotonic() - start < 2.0


def test_lowercase_entity_declaration_refused() -> None:
    doc = b'<!DOCTYPE r [<!entity a "b">]><rss version="2.0"><channel></channel></rss>'
    with pytest.raises(ParseError, match="ENTITY"):
        parse_feed(doc, RSS_HEADERS)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_entity_declaration_refused_in_utf16_and_utf32(encoding: str) -> None:
    # Small on purpose: expands to 100 characters if the check is bypassed.
    doc = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE rss [<!ENTITY a "AAAAAAAAAA">'
           '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><rss version="2.0"><channel>'
           "<title>T</title><item><title>&b;</title><guid>g</guid></item></channel></rss>")
    with pytest.raises(ParseError, match="ENTITY"):
        parse_feed(doc.encode(encoding), {"content-type": "application/rss+xml"})


@pytest.mark.parametrize(("body", "headers", "reason"), [
    (b"\x00\xff\xfe garbage \x89PNG\r\n", {}, "not an RSS, Atom or JSON feed"),
    (b"just some words", {}, "not an RSS, Atom or JSON feed"),
    (b"<html><body>hi</body></html>", {"content-type": "text/html"},
     "not an RSS, Atom or JSON feed"),
    (b"", {}, "empty document"),
    (b"  \n\t ", RSS_HEADERS, "empty document"),
    (b"{not json", {}, "not valid JSON"),
    (b'{"version": "1", "items": []}', {}, "not a JSON Feed"),
    (b'{"version": "https://jsonfeed.org/version/1.1"}', {}, "no 'items' list"),
    (b"[1, 2]", {"content-type": "application/json"}, "not a JSON Feed"),
])
def test_not_a_feed_raises_parse_error(body: bytes, headers: dict[str, str],
                                       reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_feed(body, headers)
    assert str(info.value).startswith("parse: ")
    assert reason in str(info.value)


def test_iso_8859_1_declared_in_content_type_header() -> None:
    doc = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Café Nouvelles</title>'
           "<item><title>Zürich façade rénovée</title><guid>z1</guid>"
           "<description>Grüße aus München</description></item></channel></rss>")
    feed = parse_feed(doc.encode("iso-8859-1"),
                      {"content-type": "application/rss+xml; charset=ISO-8859-1"})
    assert feed.title == "Café Nouvelles"
    (e,) = feed.entries
    assert e.title == "Zürich façade rénovée"
    assert e.summary == "Grüße aus München"


def test_bundled_demo_feed() -> None:
    path = ROOT / "seeds" / "feeds" / "world.xml"
    feed = parse_feed(path.read_bytes(), {"content-type": "application/rss+xml"},
                      path.as_uri())
    assert feed.title == "Demo World News"
    assert feed.ttl_minutes == 5
    assert len(feed.entries) == 5
    assert [e.entry_id for e in feed.entries] == [
        f"demo-world-000{i}" for i in (5, 4, 3, 1, 2)]
    for e in feed.entries:
        assert e.link is not None
        assert e.link.startswith((path.parent / "articles").as_uri() + "/")
        assert e.link.endswith(".html")
        assert e.published is not None and e.published.tzinfo is not None
        assert e.summary
    seed = next(e for e in feed.entries if e.entry_id == "demo-world-0001")
    assert "tactical missile system" in seed.summary
    assert seed.published == datetime(2024, 5, 15, 3, 12, tzinfo=UTC)
    tram = next(e for e in feed.entries if e.entry_id == "demo-world-0002")
    assert "£480m" in tram.title


def test_rss_syndication_update_period() -> None:
    doc = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>
<title>t</title><sy:updatePeriod>hourly</sy:updatePeriod>
<sy:updateFrequency>4</sy:updateFrequency>
<item><title>x</title><guid>x</guid></item></channel></rss>"""
    feed = parse_feed(doc, RSS_HEADERS)
    assert feed.sy_period_s == 900.0
    assert feed.ttl_minutes is None
    assert parse_feed(RSS, RSS_HEADERS).sy_period_s is None


BAD_BYTE_FEED = (b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                 b"<title>x</title><item><guid>1</guid><title>broken \xff byte</title>"
                 b"<description>fine</description></item><item><guid>2</guid>"
                 b"<title>other</title><description>Stra\xc3\x9fe closed</description>"
                 b"</item></channel></rss>")


@pytest.mark.parametrize("headers", [
    {"content-type": "application/rss+xml; charset=utf-8"},
    {"content-type": "application/rss+xml"},
    {},
])
def test_one_invalid_byte_costs_only_its_own_entry(headers: dict[str, str]) -> None:
    parsed = parse_feed(BAD_BYTE_FEED, headers)
    assert [(e.title, e.summary) for e in parsed.entries] == [
        ("broken \ufffd byte", "fine"), ("other", "Straße closed")]


@pytest.mark.parametrize(("body", "headers", "titles"), [
    # declared single-byte encodings are read as declared
    (BAD_BYTE_FEED.replace(b'encoding="UTF-8"', b'encoding="windows-1252"'), {},
     ["broken ÿ byte", "other"]),
    # the HTTP charset wins over the declaration, as feedparser reads it
    (BAD_BYTE_FEED, {"content-type": "text/xml; charset=iso-8859-1"},
     ["broken ÿ byte", "other"]),
    # UTF-16 with a byte-order mark and an odd trailing byte
    ('<?xml version="1.0" encoding="UTF-16"?><rss version="2.0"><channel><title>x</title>'
     "<item><guid>1</guid><title>Straße</title></item></channel></rss>".encode("utf-16")
     + b"\x00", {}, ["Straße"]),
    # JSON Feed: JSON is UTF-8
    (b'{"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": ['
     b'{"id": "1", "title": "bad \xff", "content_text": "x"},'
     b'{"id": "2", "title": "Stra\xc3\x9fe", "content_text": "y"}]}',
     {"content-type": "application/feed+json"}, ["bad \ufffd", "Straße"]),
])
def test_documents_are_read_in_their_declared_encoding(body: bytes, headers: dict[str, str],
                                                       titles: list[str]) -> None:
    assert [e.title for e in parse_feed(body, headers).entries] == titles
