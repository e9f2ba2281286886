"""The console's feeds: adding one by URL after discovery (a real feed server on
loopback), pausing, resuming, removing, OPML in and out, through the ASGI test client,
on a real SQLite file and a real config file edited in place."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LoopbackServer
from tests.test_web_hostile import EVIL, assert_inert
from tests.web_helpers import NOW, Web, add_article, make_web
from watcher.core.intents import FeedFailed, FeedFetched
from watcher.rules.load import digest_of
from watcher.settings import load_settings
from watcher.settings.opml import read_opml

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Coast News</title>
<link>https://coast.test/</link>
<item><title>Storm hits the coast</title><link>https://coast.test/a</link><guid>a</guid></item>
</channel></rss>"""
PAGE = b"""<html><head><title>Coast</title>
<link rel="alternate" type="application/rss+xml" href="/rss.xml"></head><body>hi</body></html>"""
CONFIG_TAIL = "# the end of our config; this comment must survive\n"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = make_web(tmp_path)
    config = w.settings.source
    text = config.read_text().replace("feeds:\n", "feeds:\n  # our feeds, by hand\n")
    config.write_text(text + CONFIG_TAIL)
    yield w
    w.store.close()


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    server = LoopbackServer(routes={
        "/": (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE),
        "/rss.xml": (200, {"Content-Type": "application/rss+xml"}, RSS)})
    yield server
    server.close()


def api(web: Web, method: str, path: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {web.admin_token}", **kw.pop("headers", {})}
    return web.client.request(method, path, headers=headers, **kw)


def version(web: Web) -> str:
    r = api(web, "GET", "/api/v1/feeds")
    assert r.status_code == 200 and r.headers["etag"] == f'"{r.json()["version"]}"'
    return str(r.json()["version"])


def config_text(web: Web) -> str:
    return web.settings.source.read_text()


# -- the API ---------------------------------------------------------------------------------


def test_a_site_is_discovered_then_added_keeping_the_config_s_comments(
        web: Web, site: LoopbackServer) -> None:
    r = api(web, "POST", "/api/v1/feeds/discover",
            json={"url": site.url("/"), "allow_private": True})
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["type"] == "feed" and found["url"] == site.url("/rss.xml")
    assert found["title"] == "Coast News" and found["name"] == "coast-news"
    assert "advertises" in found["why"]
    assert config_text(web).count("coast") == 0  # discovery adds nothing
    before = version(web)
    r = api(web, "POST", "/api/v1/feeds", headers={"If-Match": f'"{before}"'},
            json={"url": found["url"], "name": found["name"], "interval": "10m",
                  "tags": ["coast"], "allow_private": True})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == digest_of(config_text(web)) != before
    text = config_text(web)
    assert "# our feeds, by hand" in text and text.endswith(CONFIG_TAIL)
    assert "  - {name: coast-news, url: " in text and "tags: [coast]" in text
    feeds = {f.name: f for f in load_settings(web.settings.source).feeds}
    assert feeds["coast-news"].url == site.url("/rss.xml") and feeds["coast-news"].tags == \
        ("coast",)
    listed = {f["name"]: f for f in api(web, "GET", "/api/v1/feeds").json()["feeds"]}
    assert listed["coast-news"]["state"] == "new" and listed["wire"]["configured"]


def test_adding_needs_the_version_read_and_a_valid_result(web: Web) -> None:
    body = {"url": "https://coast.test/rss.xml", "name": "coast"}
    r = api(web, "POST", "/api/v1/feeds", json=body)
    assert r.status_code == 428 and r.json()["detail"].startswith("version:")
    r = api(web, "POST", "/api/v1/feeds", json=body, headers={"If-Match": '"stale"'})
    assert r.status_code == 412 and "changed on disk" in r.json()["detail"]
    good = version(web)
    r = api(web, "POST", "/api/v1/feeds", json={**body, "interval": "often"},
            headers={"If-Match": good})
    assert r.status_code == 422 and "feeds[1].interval" in r.json()["detail"]
    assert str(web.settings.source) in r.json()["detail"]  # the file, not a temporary one
    r = api(web, "POST", "/api/v1/feeds", json={**body, "url": "ftp://coast.test/x"},
            headers={"If-Match": good})
    assert r.status_code == 422 and r.json()["detail"].startswith("url:")
    r = api(web, "POST", "/api/v1/feeds", json={**body, "name": "wire"},
            headers={"If-Match": good})
    assert r.status_code == 409 and r.json()["detail"].startswith("name:")
    r = api(web, "POST", "/api/v1/feeds", headers={"If-Match": good},
            json={**body, "url": "http://127.0.0.1:9/feed.xml"})
    assert r.status_code == 409 and "already configured as 'wire'" in r.json()["detail"]
    assert version(web) == good  # nothing refused was written
    # Changed by hand meanwhile: refused, even though the edit itself would be fine.
    web.settings.source.write_text(config_text(web) + "# edited by hand\n")
    r = api(web, "POST", "/api/v1/feeds", json=body, headers={"If-Match": good})
    assert r.status_code == 412


def test_a_feed_is_paused_resumed_and_removed(web: Web) -> None:
    r = api(web, "POST", "/api/v1/feeds/wire/pause")
    assert r.status_code == 200 and r.json() == {"feed": "wire", "paused_at": NOW.isoformat()}
    assert web.store.claim_feeds("d", NOW, 60, ["wire"]) == []
    listed = api(web, "GET", "/api/v1/feeds").json()["feeds"]
    assert [(f["name"], f["state"]) for f in listed] == [("wire", "paused")]
    assert api(web, "POST", "/api/v1/feeds/nope/pause").status_code == 404
    r = api(web, "POST", "/api/v1/feeds/wire/resume")
    assert r.json() == {"feed": "wire", "paused_at": None}
    assert web.store.claim_feeds("d", NOW, 60, ["wire"]) == ["wire"]
    r = api(web, "DELETE", "/api/v1/feeds/wire", headers={"If-Match": version(web)})
    assert r.status_code == 200 and r.json()["removed"] == "wire"
    assert "wire" not in config_text(web) and config_text(web).endswith(CONFIG_TAIL)
    assert load_settings(web.settings.source).feeds == ()
    listed = api(web, "GET", "/api/v1/feeds").json()["feeds"]
    assert [(f["name"], f["state"]) for f in listed] == [("wire", "removed")]
    r = api(web, "DELETE", "/api/v1/feeds/wire", headers={"If-Match": version(web)})
    assert r.status_code == 422 and "no feed named 'wire'" in r.json()["detail"]


def test_a_feed_added_a_moment_ago_can_be_paused_before_the_daemon_sees_it(web: Web) -> None:
    api(web, "POST", "/api/v1/feeds", headers={"If-Match": version(web)},
        json={"url": "https://coast.test/rss.xml", "name": "coast"})
    r = api(web, "POST", "/api/v1/feeds/coast/pause")
    assert r.status_code == 200 and r.json()["paused_at"] == NOW.isoformat()


def test_items_per_day_are_listed_and_drawn(web: Web) -> None:
    add_article(web.store, "e1", "One", "x", when=NOW - timedelta(days=2))
    add_article(web.store, "e2", "Two", "x", when=NOW - timedelta(days=2))
    add_article(web.store, "e3", "Three", "x", when=NOW)
    wire = api(web, "GET", "/api/v1/feeds").json()["feeds"][0]
    assert wire["items_per_day"] == {"2026-05-08": 2, "2026-05-10": 1}
    web.login()
    page = web.client.get("/feeds").text
    assert 'aria-label="3 item(s) in 30 days, at most 2 a day"' in page


def test_viewers_may_look_but_not_change_feeds(tmp_path: Path) -> None:
    web = make_web(tmp_path, "console:\n  tokens:\n    ci: {token: 'viewer-token-0123456789', "
                             "role: viewer}\n")
    try:
        head = {"Authorization": "Bearer viewer-token-0123456789"}
        assert web.client.get("/api/v1/feeds", headers=head).status_code == 200
        assert web.client.post("/api/v1/feeds/wire/pause", headers=head).status_code == 403
        r = web.client.post("/api/v1/feeds", headers={**head, "If-Match": "x"},
                            json={"url": "https://coast.test/rss.xml"})
        assert r.status_code == 403
    finally:
        web.store.close()


# -- OPML ------------------------------------------------------------------------------------

OPML = b"""<?xml version="1.0"?><opml version="2.0"><head><title>mine</title></head><body>
<outline text="Science"><outline text="Space News" type="rss" xmlUrl="https://space.test/rss"/></outline>
<outline text="Wire again" type="rss" xmlUrl="http://127.0.0.1:9/feed.xml"/>
<outline text="Coast" type="sitemap" xmlUrl="https://coast.test/news-sitemap.xml"/>
<outline text="Gopher" type="rss" xmlUrl="gopher://old.test/feed"/>
</body></opml>"""


def test_opml_import_adds_new_feeds_and_says_which_were_skipped_and_why(web: Web) -> None:
    r = api(web, "POST", "/api/v1/feeds/opml", content=OPML,
            headers={"If-Match": version(web), "Content-Type": "text/x-opml"})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["space-news", "coast"]
    skipped = {s["url"]: s["why"] for s in r.json()["skipped"]}
    assert skipped == {"http://127.0.0.1:9/feed.xml": "already configured as 'wire'",
                       "gopher://old.test/feed":
                           "url: 'gopher://old.test/feed' is not an http(s) URL"}
    feeds = {f.name: f for f in load_settings(web.settings.source).feeds}
    assert feeds["space-news"].tags == ("science",) and feeds["coast"].type == "sitemap"
    again = api(web, "POST", "/api/v1/feeds/opml", content=OPML,
                headers={"If-Match": version(web)})
    assert again.json()["added"] == []


def test_opml_with_entities_or_too_big_is_refused(web: Web) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]>'
            b'<opml version="2.0"><body><outline xmlUrl="https://x.test/&a;"/></body></opml>')
    r = api(web, "POST", "/api/v1/feeds/opml", content=bomb, headers={"If-Match": version(web)})
    assert r.status_code == 422 and "<!ENTITY" in r.json()["detail"]
    big = OPML.replace(b"<body>", b"<body>" + b"<!-- padding -->" * 200_000)
    r = api(web, "POST", "/api/v1/feeds/opml", content=big, headers={"If-Match": version(web)})
    assert r.status_code == 413 and r.json()["detail"].startswith("opml:")
    r = api(web, "POST", "/api/v1/feeds/opml", content=b"<rss/>",
            headers={"If-Match": version(web)})
    assert r.status_code == 422 and "not an OPML document" in r.json()["detail"]


def test_opml_export_lists_every_feed_with_its_name_url_and_type(web: Web) -> None:
    api(web, "POST", "/api/v1/feeds", headers={"If-Match": version(web)},
        json={"url": "https://coast.test/", "name": "coast", "type": "page"})
    r = api(web, "GET", "/api/v1/feeds/opml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/x-opml")
    subs = read_opml(r.content)
    assert [(s.title, s.url, s.kind) for s in subs] == [
        ("wire", "http://127.0.0.1:9/feed.xml", "rss"), ("coast", "https://coast.test/", "page")]


def test_the_api_schema_names_the_feeds_endpoints(web: Web) -> None:
    paths = api(web, "GET", "/api/v1/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/feeds"])
    assert "delete" in paths["/api/v1/feeds/{name}"]
    for path in ("/api/v1/feeds/discover", "/api/v1/feeds/{name}/pause",
                 "/api/v1/feeds/{name}/resume"):
        assert "post" in paths[path]
    assert {"get", "post"} <= set(paths["/api/v1/feeds/opml"])


# -- the page --------------------------------------------------------------------------------


def test_the_page_shows_what_discovery_found_and_adds_it_on_confirmation(
        web: Web, site: LoopbackServer) -> None:
    csrf = web.login()
    r = web.client.post("/feeds/discover", data={"csrf": csrf, "url": site.url("/"),
                                                 "allow_private": "1"})
    assert r.status_code == 200
    assert "Add this source?" in r.text and "the feed the page advertises, 1 items" in r.text
    assert "coast" not in config_text(web)
    form = r.text.split('action="/feeds/add"', 1)[1].split("</form>", 1)[0]
    fields = dict(
        (part.split('name="', 1)[1].split('"', 1)[0], part.split('value="', 1)[1].split('"')[0])
        for part in form.split("<input")[1:] if 'value="' in part and 'name="' in part)
    fields["tags"] = "coast, storms"
    r = web.client.post("/feeds/add", data=fields, follow_redirects=False)
    assert r.status_code == 303, r.text[r.text.find("error"):][:300]
    assert r.headers["location"] == "/feeds?done=added+coast-news"
    assert "{name: coast-news, url: " in config_text(web)
    page = web.client.get("/feeds?done=added+coast-news").text
    assert "added coast-news" in page and 'id="feed-coast-news"' in page
    r = web.client.post("/feeds/add", data=fields)  # the same form again
    assert r.status_code == 409 and "name: a feed named &#39;coast-news&#39; already" in r.text
    r = web.client.post("/feeds/add", data={**fields, "name": "coast-2"})
    assert r.status_code == 412 and "changed on disk" in r.text  # its version is stale


def test_the_page_pauses_resumes_removes_and_imports(web: Web) -> None:
    csrf = web.login()
    r = web.client.post("/feeds/wire/pause", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and "paused+wire" in r.headers["location"]
    page = web.client.get("/feeds").text
    assert 'class="state-paused"' in page and 'aria-label="Resume wire"' in page
    web.client.post("/feeds/wire/resume", data={"csrf": csrf})
    assert 'aria-label="Pause wire"' in web.client.get("/feeds").text
    assert web.client.post("/feeds/wire/pause", data={}).status_code == 403  # no CSRF
    current = digest_of(config_text(web))
    r = web.client.post("/feeds-import", data={"csrf": csrf, "version": current},
                        files={"opml": ("mine.opml", OPML, "text/x-opml")})
    assert r.status_code == 200 and "Imported 2 feed(s): space-news, coast." in r.text
    assert "already configured as &#39;wire&#39;" in r.text
    r = web.client.post("/feeds-import", data={"version": current},
                        files={"opml": ("mine.opml", OPML, "text/x-opml")})
    assert r.status_code == 403
    r = web.client.post("/feeds/space-news/remove",
                        data={"csrf": csrf, "version": digest_of(config_text(web))},
                        follow_redirects=False)
    assert r.status_code == 303 and "space-news" not in config_text(web)
    r = web.client.post("/feeds/wire/remove", data={"csrf": csrf, "version": "old"})
    assert r.status_code == 412 and "wire" in config_text(web)


def test_discovery_errors_name_the_field(web: Web, site: LoopbackServer) -> None:
    csrf = web.login()
    r = web.client.post("/feeds/discover", data={"csrf": csrf, "url": "javascript:alert(1)"})
    assert r.status_code == 422 and "url: &#39;javascript:alert(1)&#39; is not an http(s)" \
        in r.text
    # A private address is refused unless asked for (the console fetches what it is given).
    r = api(web, "POST", "/api/v1/feeds/discover", json={"url": site.url("/")})
    assert r.status_code == 422 and r.json()["detail"].startswith("url:")


def test_hostile_feed_titles_errors_and_proposals_stay_inert(web: Web) -> None:
    evil = EVIL.encode().replace(b"&", b"&amp;").replace(b"<", b"&lt;")
    hostile = LoopbackServer(routes={"/rss.xml": (
        200, {"Content-Type": "application/rss+xml"},
        RSS.replace(b"<title>Coast News</title>", b"<title>" + evil + b"</title>"))})
    try:
        web.store.record_poll(FeedFetched("wire", NOW, NOW, None, None, title=EVIL))
        web.store.record_poll(FeedFailed("wire", NOW, NOW, f"fetch: {EVIL}"))
        csrf = web.login()
        page = web.client.get("/feeds")
        proposal = web.client.post("/feeds/discover", data={
            "csrf": csrf, "url": hostile.url("/rss.xml"), "allow_private": "1"})
    finally:
        hostile.close()
    for r in (page, proposal):
        assert r.status_code == 200 and "&lt;script&gt;" in r.text
        assert_inert(r.text)
    assert "Add this source?" in proposal.text


def test_edits_at_the_same_moment_keep_both_or_refuse_one(tmp_path: Path) -> None:
    """Comparing the version and renaming over it are one step: of two edits made from
    the same version, one is written and the other refused, never both told ok."""
    import threading

    from watcher.settings.edit import VersionConflict, feeds_edited, save_config

    config = tmp_path / "watcher.yaml"
    config.write_text("# mine\ndatabase: w.db\nrules: rules.yaml\nfeeds: []\n")
    config.chmod(0o600)
    for _ in range(5):
        version = digest_of(config.read_text())
        outcomes: dict[str, str] = {}

        def edit(name: str, version: str = version,
                 outcomes: dict[str, str] = outcomes) -> None:
            text = feeds_edited(config, add=[{"name": name, "url": f"http://{name}.test/f"}]
                                ).text
            try:
                save_config(config, text, version)
                outcomes[name] = "ok"
            except VersionConflict:
                outcomes[name] = "conflict"

        names = [f"f{len(load_settings(config, env={}).feeds)}-{i}" for i in range(2)]
        threads = [threading.Thread(target=edit, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes.values()) == ["conflict", "ok"], outcomes
        written = {f.name for f in load_settings(config, env={}).feeds}
        assert next(n for n in names if outcomes[n] == "ok") in written
        assert len(set(names) - written) == 1  # the refused one is not in the file
    assert config.read_text().startswith("# mine\n") and config.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".watcher.yaml.lock", "watcher.yaml"]


def test_copies_of_the_config_made_while_editing_are_private(tmp_path: Path) -> None:
    from watcher.settings.edit import _beside

    made = _beside(tmp_path / "watcher.yaml", ".check", "secret: x\n")
    assert made.parent == tmp_path and made.stat().st_mode & 0o777 == 0o600
    assert made.read_text() == "secret: x\n"
