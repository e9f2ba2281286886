"""Feed content is written by strangers: titles, summaries, bodies and links carrying
markup, script, javascript: links, a </textarea> and a right-to-left override stay
inert on every page and in every API answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.web_helpers import HOSTILE, RULES, Web, add_article, make_web, match_all

EVIL = " ".join(HOSTILE.values())
LINKS = ["javascript:alert(1)", " JaVaScRiPt:alert(2)", "data:text/html,<script>x</script>",
         'https://ok.test/"onmouseover="alert(3)']


class Tags(HTMLParser):
    """Every element and attribute of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    parser = Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert tag not in ("img", "iframe", "object", "embed", "b"), (tag, attrs)
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "action", "formaction") and value:
                scheme = re.match(r"\s*([a-zA-Z][a-zA-Z0-9+.-]*):", value)
                assert scheme is None or scheme.group(1).lower() in ("http", "https"), value
        if tag == "a" and attrs.get("target") == "_blank":
            assert attrs.get("rel") == "noopener noreferrer"
    # A right-to-left override only inside an isolating element: it cannot reorder
    # the page around it.
    outside = re.sub(r"<bdi>.*?</bdi>|<textarea.*?</textarea>", "", html, flags=re.S)
    assert "\u202e" not in outside


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = make_web(tmp_path)
    for i, link in enumerate(LINKS):
        add_article(w.store, f"e{i}", f"Tactical missile {EVIL}",
                    f"{EVIL} The tactical missile {EVIL} was shown. {EVIL}", url=link)
    match_all(w.store, w.settings)
    yield w
    w.store.close()


def test_hostile_text_is_stored_as_it_came(web: Web) -> None:
    alerts = web.store.alerts()
    assert len(alerts) == len(LINKS) and all(EVIL in a.title for a in alerts)


def test_every_page_keeps_hostile_content_inert(web: Web) -> None:
    csrf = web.login()
    ids = [a.article_id for a in web.store.alerts()]
    pages = [web.client.get("/alerts"), web.client.get("/alerts?q=tactical"),
             web.client.get("/rules"), web.client.get("/archive?q=tactical"),
             web.client.get("/deliveries?status=pending"), web.client.get("/feeds")]
    pages += [web.client.get(f"/articles/{i}?rule=arms") for i in ids]
    form = {"csrf": csrf, "rules_yaml": RULES, "version": "", "rule": "arms", "since": "30d"}
    pages.append(web.client.post("/rules/preview", data=form))
    pages.append(web.client.post("/rules/preview", data=form, headers={"HX-Request": "true"}))
    for r in pages:
        assert r.status_code == 200, r.url
        assert r.headers["content-type"].startswith("text/html")
        assert "&lt;script&gt;" in r.text or r.url.path in ("/rules", "/feeds"), r.url
        assert_inert(r.text)


def test_every_api_answer_keeps_hostile_content_as_data(web: Web) -> None:
    head = {"Authorization": f"Bearer {web.admin_token}"}
    answers = [web.client.get("/api/v1/alerts", headers=head),
               web.client.post("/api/v1/rules/preview", headers=head,
                               json={"rules_yaml": RULES, "rule": "arms"})]
    ids = [a.article_id for a in web.store.alerts()]
    answers += [web.client.post("/api/v1/rules/explain", headers=head,
                                json={"rule": "arms", "article_id": i}) for i in ids]
    for r in answers:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-content-type-options"] == "nosniff"
    items = answers[0].json()["alerts"] + answers[1].json()["matches"]
    assert len(items) == 2 * len(LINKS)
    for item in items:
        assert EVIL in item["title"]  # data, unchanged: the client escapes it
        assert item["url"] in (None, 'https://ok.test/"onmouseover="alert(3)')
    assert sum(item["url"] is None for item in items) == 2 * 3  # not http(s): no link
