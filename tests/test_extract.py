"""watcher.extract.page: page bytes -> main text; which text an article keeps."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.core.models import Article, Entry, Extracted
from watcher.extract.choose import SHORT_RATIO, choose_text
from watcher.extract.page import decode_page, extract_page
from watcher.rules import compile_rules, parse_rules

ARTICLES = Path(__file__).resolve().parents[1] / "seeds" / "feeds" / "articles"
HTML = "text/html; charset=utf-8"
SEED = "kim-jong-un-inspects-new-missile-system.html"
WILDFIRE = "crews-contain-pine-hollow-wildfire.html"
VELLMARK = "vellmark-signs-deal-to-re-equip-artillery-brigades.html"


def extract(name: str):
    return extract_page((ARTICLES / name).read_bytes(),
                        f"https://www.example-news.test/world/{name}", HTML)


def test_seed_story_text_and_metadata() -> None:
    x = extract(SEED)
    assert "tactical missile system" in x.text
    assert "\nSEOUL, May 15 (UPI) -- North Korean leader Kim Jong Un" in x.text
    # the story's own header (headline, standfirst) is text; the site's is not
    lines = x.text.splitlines()
    assert lines.index(x.title) < lines.index(next(s for s in lines if s.startswith("SEOUL")))
    assert not any(chrome in x.text for chrome in ("Sign in", "Subscribe", "Share on"))
    assert x.title == "Kim Jong Un inspects new missile system amid growing Russia military ties"
    assert x.date == "2024-05-15"
    assert x.author == "UPI"
    assert x.sitename == "Example News"


def test_boilerplate_only_phrase_is_not_extracted() -> None:
    raw = (ARTICLES / WILDFIRE).read_text(encoding="utf-8")
    assert "tactical missile" in raw  # only in nav/aside boilerplate
    x = extract(WILDFIRE)
    assert "tactical missile" not in x.text.lower()
    assert "missile" not in x.text.lower()
    assert "Firefighters" in x.text
    assert x.title == "Crews contain Pine Hollow wildfire after week-long battle"


@pytest.mark.parametrize("name", sorted(p.name for p in ARTICLES.glob("*.html")))
def test_every_seed_page_extracts_body_without_chrome(name: str) -> None:
    x = extract(name)
    assert len(x.text) > 1000
    for chrome in ("Trending", "Related stories", "Most read", "Sign up", "All rights reserved"):
        assert chrome not in x.text
    assert x.sitename == "Example News"
    assert x.date is not None and x.date.startswith("2024-05-")


def test_variant_forms_in_page_body_match_the_rule() -> None:
    x = extract(VELLMARK)
    rules = compile_rules(parse_rules(
        'rules:\n  - {name: tm, any: ["tactical missile"], notify: [c]}\n', "r.yaml"))
    article = Article(feed="demo", entry_id="demo-world-0005", url=None, title="Vellmark deal",
                      summary="", body=x.text, text_source="page", published=None,
                      fetched_at=datetime(2024, 5, 21, tzinfo=UTC))
    (m,) = rules.match(article)
    matched = [h.matched for h in m.hits]
    assert "Tactical Missiles" in matched
    assert "tactical-missile" in matched
    assert all(h.field == "body" for h in m.hits)
    assert len(matched) >= 3
    wild = extract(WILDFIRE)
    assert rules.match(Article(feed="demo", entry_id="4", url=None, title="", summary="",
                               body=wild.text, text_source="page", published=None,
                               fetched_at=datetime(2024, 5, 21, tzinfo=UTC))) == []


def test_empty_and_trivial_pages() -> None:
    assert extract_page(b"", None, HTML).text == ""
    assert extract_page(b"<html><body></body></html>", None, HTML).text == ""


_PARA = ("The council met on Tuesday and agreed the budget for the coming year after a "
         "long debate about rail fares, school repairs and the harbour wall. ") * 6


@pytest.mark.parametrize("page", [
    # libxml2 drops what follows a doctype with a "/" on the first line unless repaired
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html><body><article>'
    f"<p>{_PARA}</p></article></body></html>",
    # a self-closed <html/> would otherwise end the document at once
    f'<html lang="en"/>\n<head><title>T</title></head><body><article><p>{_PARA}</p>'
    "</article></body></html>",
], ids=["xhtml-doctype", "self-closed-html"])
def test_faulty_page_starts_are_repaired(page: str) -> None:
    assert "harbour wall" in extract_page(page.encode(), None, HTML).text


def test_characters_xml_cannot_hold_are_dropped_not_fatal() -> None:
    noisy = _PARA.replace("council", "coun\x01cil\x00").replace("budget", "bud\x0bget\ufffe")
    text = extract_page(f"<html><body><article><p>{noisy}</p></article></body></html>"
                        .encode(), None, HTML).text
    assert "council met" in text and "budget for" in text
    assert not any(ch in text for ch in "\x00\x01\x0b\ufffe")


def test_non_html_bytes_extract_to_nothing() -> None:
    assert extract_page(b"just some words, not a web page " * 20, None, HTML).text == ""
    assert extract_page(b"   \n ", None, HTML).text == ""


_FORUM = (
    '<html><head><script type="application/ld+json">{"@context": "https://schema.org", '
    '"@type": "DiscussionForumPosting", "headline": "Rail fares"}</script></head><body>'
    '<nav><a href="/">Home</a> <a href="/f">Forums</a></nav><main><h1>Rail fares</h1>'
    f"<p>{_PARA}</p>"
    '<div class="comments"><div class="comment"><p>I take the 7:40 every day and the '
    "fare went up twice this year, which nobody on the council seems to notice.</p></div>"
    '<div class="comment"><p>The harbour wall repairs were promised three budgets ago '
    "and the scaffolding is still there, rusting in the rain.</p></div></div></main>"
    '<aside>Trending now</aside><script>var ad = 1;</script> tail text after a script'
    "<footer>All rights reserved</footer></body></html>")


@pytest.mark.parametrize("name", [*sorted(p.name for p in ARTICLES.glob("*.html")), "forum"])
def test_our_parsing_and_dropping_give_trafilaturas_own_text(name: str) -> None:
    """Our own parsing (C-level element classes, bytes, repairs) and the elements
    removed before trafilatura runs change nothing: trafilatura, given the page as
    text to load and clean itself, finds the same text."""
    import trafilatura

    from watcher.extract.page import _extraction_options, fast_pass, fast_text

    body = _FORUM.encode() if name == "forum" else (ARTICLES / name).read_bytes()
    with fast_pass():  # the same settings
        untouched = trafilatura.bare_extraction(decode_page(body, HTML),
                                                options=_extraction_options(None))
    assert untouched is not None and untouched.text
    assert fast_text(decode_page(body, HTML), None)[0] == untouched.text.strip()


_SENTENCE = ("The council met on Tuesday to discuss the harbour wall, which has been "
             "crumbling for years and now threatens the fishing fleet moored behind it. ")
# Pages whose text trafilatura's fast pass misses and its fallbacks find.
_MISSED_BY_FAST = {
    "noscript": f"<html><body><noscript><div><p>{_SENTENCE * 3}</p><p>{_SENTENCE * 2}</p>"
                "</div></noscript></body></html>",
    "bare divs": "<html><body>" + f"<div class='x'>{_SENTENCE}</div>" * 6 + "</body></html>",
    "in navigation": "<html><body><nav><div>" + f"<span>{_SENTENCE}</span><br>" * 6
                     + "</div></nav></body></html>",
}


@pytest.mark.parametrize("name", [*sorted(p.name for p in ARTICLES.glob("*.html")), "forum",
                                  *_MISSED_BY_FAST])
def test_full_extraction_is_trafilaturas_default(name: str) -> None:
    """The full pass, on our parsing and with the pruning compiled to Python, keeps
    what trafilatura's own default extraction keeps from the page."""
    import trafilatura

    from watcher.extract.page import full_text

    body = (_FORUM.encode() if name == "forum" else _MISSED_BY_FAST[name].encode()
            if name in _MISSED_BY_FAST else (ARTICLES / name).read_bytes())
    text = decode_page(body, HTML)
    expected = trafilatura.extract(text, include_comments=False, include_tables=True)
    assert expected
    assert unicodedata.normalize("NFC", full_text(text, None)) == expected.strip()


@pytest.mark.parametrize("name", sorted(_MISSED_BY_FAST))
def test_a_page_the_fast_pass_misses_gets_the_full_extraction(name: str) -> None:
    from watcher.extract.page import fast_text

    page = _MISSED_BY_FAST[name]
    assert fast_text(page, None)[0] == ""
    text = extract_page(page.encode(), None, HTML).text
    assert "harbour wall" in text and len(text) > 600
    # and the article keeps it, not the feed's short summary
    chosen = choose_text(Extracted(text=text), entry("", "Harbour wall: council meets"))
    assert chosen.source == "page"


@pytest.mark.parametrize(("chars", "visible", "feed", "short"), [
    (0, 0, 0, True),                 # nothing at all
    (0, 5000, 0, True),
    (1999, 2100, 0, True),           # short
    (2000, 2100, 0, False),
    (2000, "at the share", 0, False),
    (2000, "past the share", 0, True),
    (5000, "at the share", 0, False),
    (5000, "past the share", 0, True),
    (5000, 6000, 8000, False),       # the feed's text would not win (5000 >= 0.6 * 8000)
    (5000, 6000, 8400, True),        # it would: try harder first
])
def test_cut_short(chars: int, visible: int | str, feed: int, short: bool) -> None:
    from watcher.extract.page import MIN_VISIBLE_SHARE, cut_short

    if isinstance(visible, str):  # just within, or just past, the visible share
        visible = int(chars / MIN_VISIBLE_SHARE) + (1 if visible == "past the share" else 0)
    assert cut_short("x" * chars, visible, feed) is short


def test_a_complete_fast_text_is_kept_without_the_full_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from watcher.extract import page as page_module

    page = ("<html><body><nav><a href='/'>Home</a></nav><article>"
            + "".join(f"<p>Part {i}. {_SENTENCE * 2}</p>" for i in range(10))
            + "</article></body></html>")
    fast = page_module.fast_text(page, None)[0]
    assert len(fast) > 2000

    def no_full_pass(text: str, url: str | None) -> str:
        raise AssertionError("the full extraction ran on a complete text")

    monkeypatch.setattr(page_module, "full_text", no_full_pass)
    assert extract_page(page.encode(), None, HTML).text == fast
    with pytest.raises(Exception, match="full extraction ran"):  # a longer feed text
        extract_page(page.encode(), None, HTML, feed_chars=len(fast) * 2)


def test_the_fast_pass_keeps_a_storys_header_that_trafilaturas_precision_drops() -> None:
    """The fast pass skips the precision focus's own discards (an article's <header>
    holds its headline and lead); trafilatura called directly still runs them."""
    import trafilatura

    from watcher.extract.page import _extraction_options, fast_text

    lead = "Harbour wall to be rebuilt by the spring, the council decided on Tuesday."
    page = (f"<html><body><article><header><h1>Harbour wall</h1><p>{lead}</p></header>"
            + "".join(f"<p>Part {i}. {_SENTENCE * 2}</p>" for i in range(6))
            + "</article></body></html>")
    assert lead in fast_text(page, None)[0]
    direct = trafilatura.bare_extraction(page, options=_extraction_options(None))
    assert "Part 3." in direct.text and lead not in direct.text


_OTHER = ("Fishermen say the repairs promised last spring never started, and the "
          "insurers of the boats have begun to raise their premiums. ")


def _article_and_notes(notes: int) -> str:
    """An article the fast pass keeps, and bare notes beside it that only the full
    pass reads: with enough notes, the article is a small share of what the page shows."""
    return ("<html><body><article>"
            + "".join(f"<p>Part {i}. {_SENTENCE * 2}</p>" for i in range(8)) + "</article>"
            + "".join(f"<div class='x'>Note {i}. {_OTHER}</div>" for i in range(notes))
            + "</body></html>")


def test_a_fast_text_under_the_visible_share_gets_the_full_pass_too() -> None:
    from watcher.extract.page import (
        MIN_VISIBLE_SHARE,
        SHORT_TEXT,
        fast_text,
        parse_page,
        visible_chars,
    )

    page = _article_and_notes(40)
    fast, visible, _ = fast_text(page, None)
    assert len(fast) >= SHORT_TEXT and len(fast) < MIN_VISIBLE_SHARE * visible
    assert "Note 3." not in fast
    text = extract_page(page.encode(), None, HTML).text
    assert "Part 3." in text and "Note 3." in text and "insurers of the boats" in text
    # few notes: the article is most of the page, and the fast text stands alone
    page = _article_and_notes(4)
    assert len(fast_text(page, None)[0]) >= MIN_VISIBLE_SHARE * visible_chars(parse_page(page))
    assert "Note 3." not in extract_page(page.encode(), None, HTML).text


def test_the_fast_passs_paragraphs_the_full_pass_drops_are_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from watcher.extract import page as page_module

    page = _article_and_notes(40)
    real_full = page_module.full_text

    def full_without_the_article(text: str, url: str | None) -> str:
        return "\n".join(line for line in real_full(text, url).splitlines()
                         if not line.startswith("Part "))

    monkeypatch.setattr(page_module, "full_text", full_without_the_article)
    lines = extract_page(page.encode(), None, HTML).text.splitlines()
    notes = [i for i, line in enumerate(lines) if line.startswith("Note ")]
    parts = [i for i, line in enumerate(lines) if line.startswith("Part ")]
    assert len(notes) == 40 and len(parts) == 8
    assert max(notes) < min(parts)  # the full text first, then what it lacked


@pytest.mark.parametrize(("full", "fast", "merged"), [
    ("", "", ""),
    ("a\nb", "", "a\nb"),
    ("", "a\nb", "a\nb"),
    ("one two\nthree", "one  two\n\nfour", "one two\nthree\nfour"),
    ("one two three", "two", "one two three"),     # held inside a longer paragraph
    ("x\ny", "y\nx", "x\ny"),                     # nothing missing: the full text as it is
    ("first\nsecond", "second\n  third line \nfirst", "first\nsecond\n  third line "),
])
def test_merge_texts(full: str, fast: str, merged: str) -> None:
    from watcher.extract.page import merge_texts

    assert merge_texts(full, fast) == merged


def test_the_text_is_in_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Zoë’s café reopened after the floods. ")
    page = f"<html><body><article><p>{decomposed * 70}</p></article></body></html>"
    text = extract_page(page.encode(), None, HTML).text
    assert "café" in text and unicodedata.is_normalized("NFC", text)


# --- decode_page ------------------------------------------------------------------------

PAGE = ('<html><head>{meta}<title>t</title></head><body><p>Café Zürich — “quotes” naïve '
        "façade résumé déjà vu, Straße.</p></body></html>")
TEXT = "Café Zürich — “quotes” naïve façade résumé déjà vu, Straße."


@pytest.mark.parametrize(("body", "content_type"), [
    # the HTTP header wins over the meta tag
    (PAGE.format(meta='<meta charset="utf-8">').encode("cp1252"),
     "text/html; charset=windows-1252"),
    (PAGE.format(meta='<meta charset="windows-1252">').encode("utf-8"),
     "text/html; charset=utf-8"),
    (PAGE.format(meta="").encode("cp1252"), 'text/html; charset="windows-1252"'),
    # no charset in the header: the meta tag
    (PAGE.format(meta='<meta charset="windows-1252">').encode("cp1252"), "text/html"),
    (PAGE.format(meta='<meta charset="windows-1252">').encode("cp1252"), None),
    (PAGE.format(meta='<meta http-equiv="Content-Type" content="text/html; charset=cp1252">')
     .encode("cp1252"), None),
    # an unknown header charset is skipped for the meta tag
    (PAGE.format(meta='<meta charset="windows-1252">').encode("cp1252"),
     "text/html; charset=bogus-xyz"),
    # a header charset that cannot decode the bytes falls through to the meta tag
    (PAGE.format(meta='<meta charset="windows-1252">').encode("cp1252"),
     "text/html; charset=utf-8"),
    # nothing declared: UTF-8 first
    (PAGE.format(meta="").encode("utf-8"), "text/html"),
    (PAGE.format(meta="").encode("utf-8"), None),
])
def test_decode_page_charset_precedence(body: bytes, content_type: str | None) -> None:
    assert TEXT in decode_page(body, content_type)


@pytest.mark.parametrize(("meta", "content_type"), [
    ('<meta charset="utf-8">', None),
    ("", "text/html; charset=UTF-8"),
])
def test_decode_page_declared_utf8_with_a_stray_byte_stays_utf8(
        meta: str, content_type: str | None) -> None:
    """A Latin-1 byte pasted into a UTF-8 page (in a script comment, say) is one
    replacement character, not a reason to read every umlaut as two characters."""
    body = PAGE.format(meta=meta + "<script>/* M\xe4scot */</script>").encode("utf-8")
    body = body.replace("M\xe4scot".encode(), b"M\xe4scot")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    text = decode_page(body, content_type)
    assert TEXT in text and text.count("\ufffd") == 1


def test_decode_page_detects_undeclared_german_cp1252() -> None:
    text = ("<p>Der Bürgermeister von Zürich sagte am Dienstag, dass die Straßenbahn über die "
            "Brücke fahren wird. Die Gebühren für Fahrgäste werden höher.</p>") * 5
    assert "Bürgermeister von Zürich" in decode_page(text.encode("cp1252"), None)
    assert "Straßenbahn über die Brücke" in decode_page(text.encode("cp1252"), None)


def test_decode_page_detects_non_latin_without_declaration() -> None:
    text = "<p>Привет, мир. Это тестовая страница новостей о погоде в Москве.</p>" * 3
    assert "Привет, мир" in decode_page(text.encode("koi8-r"), None)
    jp = "<p>これは日本語のテキストです。東京都のニュース。</p>" * 3
    assert "東京都のニュース" in decode_page(jp.encode("shift_jis"), "text/html")


def test_decode_page_utf16_with_bom() -> None:
    assert decode_page("\ufeff<p>Zürich</p>".encode("utf-16-le"), None).endswith("<p>Zürich</p>")


def test_decode_page_meta_utf16_means_utf8() -> None:
    body = '<meta charset="utf-16"><p>Zürich!</p>'.encode()
    assert len(body) % 2 == 0
    assert "Zürich" in decode_page(body, None)


def test_decode_page_undeclared_cp1252_english() -> None:
    text = ("<html><body>" + "<p>The café’s owner said the naïve façade of the résumé was "
            "“déjà vu” — a phrase he’d used before.</p>" * 3 + "</body></html>")
    assert "naïve façade" in decode_page(text.encode("cp1252"), "text/html")


# --- choose_text ------------------------------------------------------------------------


def entry(content: str = "", summary: str = "") -> Entry:
    return Entry(entry_id="id", link=None, title="t", summary=summary, content=content,
                 published=None)


@pytest.mark.parametrize(("page", "content", "summary", "body", "source"), [
    ("page text", "content", "summary", "page text", "page"),
    (None, "feed content", "summary", "feed content", "feed-content"),
    ("", "feed content", "summary", "feed content", "feed-content"),
    ("", "", "the summary", "the summary", "feed-summary"),
    (None, "   ", "  the summary  ", "the summary", "feed-summary"),
    (None, "", "", "", "none"),
    ("", "", "", "", "none"),
    ("short", "", "", "short", "page"),
    # page much shorter than the feed's own content: the feed content wins
    ("p" * 59, "c" * 100, "", "c" * 100, "feed-content"),
    ("p" * 60, "c" * 100, "", "p" * 60, "page"),
    ("teaser", "the full story " * 20, "", ("the full story " * 20).strip(), "feed-content"),
    # compared with the summary when there is no content
    ("p" * 10, "", "s" * 100, "s" * 100, "feed-summary"),
    ("p" * 80, "", "s" * 100, "p" * 80, "page"),
    ("  padded content  ", "", "", "  padded content  ", "page"),
])
def test_choose_text(page: str | None, content: str, summary: str, body: str,
                     source: str) -> None:
    extracted = None if page is None else Extracted(text=page)
    chosen = choose_text(extracted, entry(content, summary))
    assert (chosen.body, chosen.source) == (body, source)


def test_short_ratio_is_a_fraction() -> None:
    assert 0 < SHORT_RATIO < 1


@pytest.mark.parametrize(("page", "expected"), [
    # A blank first candidate gives way to the next kind, not to the next element.
    ('<html lang=" fr"><head><title> </title><title>T2</title><meta property="og:title">'
     '<meta property="og:title" content="OG"></head><body><h1>H</h1></body></html>',
     {"title": "OG", "language": "fr"}),
    ('<html><head><title> </title><title>T2</title></head><body><h1>H</h1></body></html>',
     {"title": "H"}),
    ('<html><head><title></title><title>T2</title></head><body><h1>H</h1></body></html>',
     {"title": "T2"}),
    ('<html><head><meta name="author" content=" "><meta property="article:author" '
     'content="Ann"><link rel="canonical" href=" /c "></head><body><time>x</time>'
     '<time datetime="2024-01-02T03:04">t</time></body></html>',
     {"author": "Ann", "canonical": "/c", "date": "2024-01-02T03:04"}),
    # A fragment: the head's values are found all the same; its element's lang is not the page's.
    ('<meta name="date" content="2020-02-02"><div lang="de"><p>x</p></div>',
     {"date": "2020-02-02", "language": None}),
])
def test_page_metadata_first_values(page: str, expected: dict[str, str | None]) -> None:
    from watcher.extract.metadata import page_metadata
    from watcher.extract.page import parse_page

    meta = page_metadata(parse_page(page))
    assert {k: meta[k] for k in expected} == expected
