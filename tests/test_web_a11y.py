"""Accessibility basics on every page of the console, read as a screen reader's
browser builds its tree (lxml's HTML parser): the page's language, landmarks, every
form control with an accessible name, every table with header cells, and a visible
focus style."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import html as lxml_html

from tests.web_helpers import RULES, Web, add_article, make_web, match_all
from watcher.web.app import STATIC

CONTROLS = ("input", "select", "textarea", "button")
NAMELESS_INPUTS = ("hidden",)


def _text(el: lxml_html.HtmlElement) -> str:
    return " ".join(el.text_content().split())


def accessible_name(el: lxml_html.HtmlElement, doc: lxml_html.HtmlElement) -> str:
    """The name a control gets, in the order of the HTML-AAM computation's sources that
    these pages use: aria-labelledby, aria-label, a <label for>, an enclosing <label>,
    a button's content or value, then the title."""
    ids = (el.get("aria-labelledby") or "").split()
    by = " ".join(_text(x) for i in ids for x in doc.xpath("//*[@id=$i]", i=i))
    if by.strip():
        return by
    if (el.get("aria-label") or "").strip():
        return el.get("aria-label", "")
    if el.get("id"):
        labels = doc.xpath("//label[@for=$i]", i=el.get("id"))
        if labels and any(_text(x) for x in labels):
            return " ".join(_text(x) for x in labels)
    for parent in el.iterancestors("label"):
        if _text(parent):
            return _text(parent)
    if el.tag == "button" and _text(el):
        return _text(el)
    if el.tag == "input" and el.get("type") in ("submit", "button", "reset") and el.get("value"):
        return el.get("value", "")
    return (el.get("title") or "").strip()


def problems(page: str, fragment: bool = False) -> list[str]:
    doc = lxml_html.document_fromstring(page)
    found = []
    if not fragment:
        if not (doc.get("lang") or "").strip():
            found.append("<html> has no lang")
        for landmark in ("header", "nav", "main"):
            if not doc.xpath(f"//{landmark}"):
                found.append(f"no <{landmark}> landmark")
        if not doc.xpath("//h1"):
            found.append("no <h1>")
    for el in doc.iter(*CONTROLS):
        if el.tag == "input" and el.get("type") in NAMELESS_INPUTS:
            continue
        if not accessible_name(el, doc).strip():
            found.append(f"<{el.tag} name={el.get('name')!r} id={el.get('id')!r}> "
                         "has no accessible name")
    for table in doc.iter("table"):
        if not table.xpath(".//th"):
            found.append(f"a table without header cells: {_text(table)[:60]!r}")
        if not table.xpath("./caption") and not table.get("aria-label") \
                and not table.get("aria-labelledby"):
            found.append(f"a table without a caption or label: {_text(table)[:60]!r}")
    return found


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = make_web(tmp_path)
    add_article(w.store, "e1", "Tactical missile shown", "A new tactical missile was shown.",
                url="https://news.test/1")
    match_all(w.store, w.settings)
    yield w
    w.store.close()


def test_every_page_labels_its_controls_and_has_landmarks(web: Web) -> None:
    found = {"/login": problems(web.client.get("/login").text)}
    csrf = web.login()
    article = web.store.alerts()[0].article_id
    for path in ("/", "/alerts", "/rules", "/archive", "/archive?q=tactical", "/feeds",
                 "/deliveries", f"/articles/{article}", f"/articles/{article}?rule=arms"):
        r = web.client.get(path)
        assert r.status_code == 200, path
        found[path] = problems(r.text)
    form = {"csrf": csrf, "rules_yaml": RULES, "version": "", "rule": "arms", "since": "30d"}
    for path in ("/rules/preview", "/rules/check"):
        r = web.client.post(path, data=form, headers={"HX-Request": "true"})
        assert r.status_code == 200, path
        found[path + " (live part)"] = problems(r.text, fragment=True)
    assert {k: v for k, v in found.items() if v} == {}


def test_the_walk_finds_what_it_checks() -> None:
    """A page missing each thing is caught, so the test above can fail."""
    bad = ("<html><body><form><input name=q><select name=s><option>a</select>"
           "<button></button><input type=hidden name=csrf></form>"
           "<table><tr><td>1</td></tr></table></body></html>")
    assert problems(bad) == [
        "<html> has no lang", "no <header> landmark", "no <nav> landmark",
        "no <main> landmark", "no <h1>",
        "<input name='q' id=None> has no accessible name",
        "<select name='s' id=None> has no accessible name",
        "<button name=None id=None> has no accessible name",
        "a table without header cells: '1'", "a table without a caption or label: '1'"]
    good = ('<html lang="en"><body><header><nav></nav></header><main><h1>x</h1>'
            '<label for="q">Words</label><input id="q" name="q">'
            '<label>Feed <select name="s"><option>a</option></select></label>'
            '<button aria-label="Mute">⏸</button><input type="submit" value="Go">'
            '<table><caption>Rows</caption><tr><th>n</th></tr></table></main></body></html>')
    assert problems(good) == []


def test_focus_is_visible() -> None:
    css = (STATIC / "app.css").read_text(encoding="utf-8")
    assert ":focus-visible" in css
    rule = css.split(":focus-visible", 1)[1].split("}", 1)[0]
    assert "outline" in rule and "outline: none" not in rule and "outline:none" not in rule
