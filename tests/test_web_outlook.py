"""The archive, the outbox and the feeds in the console, through the ASGI client on a
real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from tests.test_web_hostile import EVIL, assert_inert
from tests.web_helpers import NOW, Web, add_article, make_web, match_all
from watcher.core.digest import classify
from watcher.core.intents import FeedFailed


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = make_web(tmp_path)
    add_article(w.store, "e1", "Kim inspects tactical missiles", "A tactical missile.",
                url="https://news.test/kim")
    add_article(w.store, "e2", f"Weather {EVIL}", f"Sunny. {EVIL}", url="javascript:x()")
    match_all(w.store, w.settings)
    yield w
    w.store.close()


def bearer(web: Web) -> dict[str, str]:
    return {"Authorization": f"Bearer {web.admin_token}"}


def test_archive_search_api_and_page(web: Web) -> None:
    body = web.client.get("/api/v1/articles?q=missile", headers=bearer(web)).json()
    assert [a["title"] for a in body["articles"]] == ["Kim inspects tactical missiles"]
    assert "[" in body["articles"][0]["snippet"]
    assert web.client.get('/api/v1/articles?q="open', headers=bearer(web)).status_code == 422
    one = web.client.get(f"/api/v1/articles/{body['articles'][0]['id']}",
                         headers=bearer(web)).json()
    assert one["matches"][0]["rule"] == "arms" and one["deliveries"][0]["channel"] == "console"
    assert one["sources"][0]["feed"] == "wire"
    assert web.client.get("/api/v1/articles/999", headers=bearer(web)).status_code == 404
    web.login()
    page = web.client.get("/archive?q=sunny").text
    assert "1 article(s)" in page and "Weather" in page
    assert_inert(page)
    assert "not a date" in web.client.get("/archive?q=sunny&since=yesterday").text
    assert "cannot run query" in web.client.get('/archive?q="open').text


def test_deliveries_are_listed_and_dead_ones_retried(web: Web) -> None:
    [d] = web.store.deliveries()
    web.store.apply_holds(classify(*web.store.hold_candidates(), {}, UTC), NOW)
    claimed = web.store.claim_deliveries(NOW, 60, 10, ignore_schedule=True)
    assert [c.id for c in claimed] == [d.id]
    web.store.mark_failed([c.id for c in claimed], NOW, "webhook answered 500", None)
    assert web.store.deliveries()[0].status == "dead"
    body = web.client.get("/api/v1/deliveries?status=dead", headers=bearer(web)).json()
    assert [x["id"] for x in body["deliveries"]] == [d.id]
    csrf = web.login()
    page = web.client.get("/deliveries").text
    assert "webhook answered 500" in page and "Retry" in page
    r = web.client.post(f"/deliveries/{d.id}/retry", data={"csrf": csrf},
                        follow_redirects=False)
    assert r.status_code == 303 and web.store.deliveries()[0].status == "pending"
    assert web.client.post(f"/deliveries/{d.id}/retry", data={}).status_code == 403
    r = web.client.post("/api/v1/deliveries/nope/retry", headers=bearer(web))
    assert r.status_code == 404


def test_feeds_show_their_state(web: Web) -> None:
    web.store.record_poll(FeedFailed("wire", NOW - timedelta(minutes=5),
                                     NOW + timedelta(minutes=10),
                                     "fetch: feed 'wire' answered 503"))
    body = web.client.get("/api/v1/feeds", headers=bearer(web)).json()
    [feed] = body["feeds"]
    assert feed["name"] == "wire" and feed["state"] == "failing"
    assert "503" in feed["last_error"]
    web.login()
    page = web.client.get("/feeds").text
    assert "failing" in page and "answered 503" in page


def test_the_overview_shows_alerts_backlog_and_failing_feeds(web: Web) -> None:
    web.store.record_poll(FeedFailed("wire", NOW - timedelta(minutes=5),
                                     NOW + timedelta(minutes=10),
                                     "fetch: feed 'wire' answered 503"))
    web.login()
    page = web.client.get("/").text
    assert "<h1>Overview</h1>" in page and 'href="/alerts?rule=arms"' in page
    assert "Backlog: 1 waiting" in page and "1 failing" in page and "answered 503" in page
    assert_inert(page)


def _older(page: str) -> str:
    """The page's "Older articles" link."""
    link = page.split('rel="next"')[0].rsplit('<a href="', 1)[1].split('"', 1)[0]
    assert link.startswith("/archive?"), link
    return link.replace("&amp;", "&")


def test_the_archive_pages_on_newest_first(tmp_path: Path) -> None:
    w = make_web(tmp_path)
    try:
        for i in range(205):
            add_article(w.store, f"p{i}", f"Harbour story {i}", f"The harbour, day {i}.",
                        when=NOW - timedelta(hours=i))
        titles, before = [], None
        while True:
            query = "/api/v1/articles?q=harbour&limit=60" + (f"&before={before}" if before
                                                              else "")
            body = w.client.get(query, headers=bearer(w)).json()
            titles += [a["title"] for a in body["articles"]]
            if body["next_before"] is None:
                break
            before = body["next_before"]
        assert titles == [f"Harbour story {i}" for i in range(205)]
        w.login()
        page = w.client.get("/archive?q=harbour").text
        assert "Harbour story 0<" in page and "Harbour story 99<" in page
        second = w.client.get(_older(page)).text
        assert "Harbour story 100<" in second and "Harbour story 199<" in second
        assert "Harbour story 99<" not in second and "older than the previous page" in second
        third = w.client.get(_older(second)).text
        assert "Harbour story 204<" in third and 'rel="next"' not in third
    finally:
        w.store.close()
