"""`watcher feeds`: list with state, add by discovery, OPML import and export."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer
from watcher.settings import load_settings
from watcher.store import open_store

FEED = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour Gazette World'
        b"</title><item><guid>1</guid><title>One</title></item></channel></rss>")
PAGE = (b'<html><head><link rel="alternate" type="application/rss+xml" href="/rss/world.xml">'
        b"</head><body>front page</body></html>")


def config_copy(tmp: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp / "config")
    cfg = tmp / "config" / "watcher.yaml"
    text = cfg.read_text().replace("../data/", f"{tmp}/data/")
    text = text.replace("../rules.yaml", str(ROOT / "rules.yaml"))
    text = text.replace("../seeds/", f"{ROOT}/seeds/")
    cfg.write_text(text)
    return cfg


def test_add_discovers_feed_behind_page_and_keeps_comments(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.routes["/"] = (200, {"Content-Type": "text/html"}, PAGE)
    server.routes["/rss/world.xml"] = (200, {"Content-Type": "application/rss+xml"}, FEED)
    try:
        cfg = config_copy(tmp_path)
        before = cfg.read_text()
        result = run_watcher("feeds", "add", server.url("/"), "--interval", "10m",
                             "--tag", "news", "--allow-private", "--config", str(cfg))
        assert result.returncode == 0, result.stderr
        assert "added feed 'harbour-gazette-world'" in result.stdout
        after = cfg.read_text()
        # Every original line survives, comments included; one feed line is added.
        assert [line for line in after.splitlines() if line not in before.splitlines()] == [
            f"  - {{name: harbour-gazette-world, url: {server.url('/rss/world.xml')}, "
            "interval: 10m, tags: [news], allow_private: true}"]
        assert all(line in after.splitlines() for line in before.splitlines())
        check = run_watcher("check", "--config", str(cfg))
        assert check.returncode == 0 and "harbour-gazette-world" in check.stdout
        again = run_watcher("feeds", "add", server.url("/"), "--allow-private",
                            "--config", str(cfg))
        assert "already in" in again.stdout
    finally:
        server.close()


def test_add_refuses_private_address_without_flag(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.routes["/f.xml"] = (200, {}, FEED)
    try:
        cfg = config_copy(tmp_path)
        result = run_watcher("feeds", "add", server.url("/f.xml"), "--config", str(cfg))
        assert result.returncode == 2
        assert "not public" in result.stderr
        assert server.requests == []
    finally:
        server.close()


def test_opml_import_then_export_round_trip(tmp_path: Path) -> None:
    cfg = config_copy(tmp_path)
    opml = tmp_path / "subs.opml"
    opml.write_text("""<?xml version="1.0"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="Defence">
    <outline type="rss" text="Army News" xmlUrl="https://army.example.org/rss"/>
    <outline type="rss" text="Navy News" xmlUrl="https://navy.example.org/feed.xml"/>
  </outline>
  <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
</body></opml>""")
    result = run_watcher("feeds", "import", str(opml), "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "imported 2 feed(s)" in result.stdout and "1 skipped" in result.stdout
    settings = yaml.safe_load(cfg.read_text())
    names = {f["name"]: f for f in settings["feeds"]}
    assert names["army-news"]["tags"] == ["defence"]
    assert names["navy-news"]["url"] == "https://navy.example.org/feed.xml"

    out = tmp_path / "export.opml"
    exported = run_watcher("feeds", "export", "-o", str(out), "--config", str(cfg))
    assert exported.returncode == 0, exported.stderr
    text = out.read_text()
    assert 'version="2.0"' in text and 'xmlUrl="https://army.example.org/rss"' in text
    # Importing the export adds nothing new.
    again = run_watcher("feeds", "import", str(out), "--config", str(cfg))
    assert "imported 0 feed(s)" in again.stdout


def test_opml_with_entities_is_refused(tmp_path: Path) -> None:
    cfg = config_copy(tmp_path)
    opml = tmp_path / "evil.opml"
    opml.write_text('<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x "y">]><opml><body/></opml>')
    result = run_watcher("feeds", "import", str(opml), "--config", str(cfg))
    assert result.returncode == 2 and "entities" in result.stderr


def test_feeds_lists_state_of_each_feed(tmp_path: Path) -> None:
    cfg = config_copy(tmp_path)
    first = run_watcher("feeds", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "demo-world" in first.stdout and " new " in first.stdout
    run_watcher("run", "--once", "--config", str(cfg))
    listed = run_watcher("feeds", "--config", str(cfg)).stdout
    line = next(x for x in listed.splitlines() if x.startswith("demo-world"))
    assert " ok " in line and line.split()[-1] == "5"  # five items seen in the last 7 days



def test_a_paused_feed_is_not_polled_and_is_listed_paused(tmp_path: Path) -> None:
    cfg = config_copy(tmp_path)
    assert run_watcher("feeds", "--config", str(cfg)).returncode == 0  # makes the database
    store = open_store(tmp_path / "data" / "watcher.db")
    try:
        store.sync_feeds(load_settings(cfg).feed_models())
        assert store.pause_feed("demo-world", True, datetime.now(UTC))
    finally:
        store.close()
    run_watcher("run", "--once", "--config", str(cfg))
    line = next(x for x in run_watcher("feeds", "--config", str(cfg)).stdout.splitlines()
                if x.startswith("demo-world"))
    assert " paused " in line and line.split()[-1] == "0"  # nothing fetched


NEWS = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        b'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url>'
        b"<loc>https://x.test/a</loc><news:news><news:publication_date>2026-05-01"
        b"</news:publication_date><news:title>A story</news:title></news:news></url></urlset>")
SECTION = (b"<html><head><title>Coast News: World</title></head><body><nav>"
           b'<a href="/world/">World</a></nav><main><a href="/2026/05/01/one-story">One</a>'
           b'<a href="/2026/05/01/another-story">Two</a></main></body></html>')


def test_add_proposes_a_news_sitemap_then_the_page_when_there_is_no_feed(
        tmp_path: Path) -> None:
    server = LoopbackServer()
    server.routes["/world/"] = (200, {"Content-Type": "text/html"}, SECTION)
    server.routes["/robots.txt"] = (200, {}, f"Sitemap: {server.url('/all.xml')}\n".encode())
    server.routes["/all.xml"] = (200, {}, (
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>'
        f"{server.url('/pages.xml')}</loc></sitemap><sitemap><loc>{server.url('/news.xml')}"
        "</loc></sitemap></sitemapindex>").encode())
    server.routes["/news.xml"] = (200, {"Content-Type": "application/xml"}, NEWS)
    try:
        cfg = config_copy(tmp_path)
        result = run_watcher("feeds", "add", server.url("/world/"), "--allow-private",
                             "--name", "coast", "--config", str(cfg))
        assert result.returncode == 0, result.stderr
        assert "added sitemap source 'coast'" in result.stdout
        assert "news sitemap" in result.stdout
        added = next(f for f in yaml.safe_load(cfg.read_text())["feeds"]
                     if f["name"] == "coast")
        assert (added["type"], added["url"]) == ("sitemap", server.url("/news.xml"))

        del server.routes["/robots.txt"]  # no sitemap any more: the page itself
        page = run_watcher("feeds", "add", server.url("/world/"), "--allow-private",
                           "--config", str(cfg))
        assert page.returncode == 0, page.stderr
        assert "added page source 'coast-news-world'" in page.stdout
        assert "2 article links" in page.stdout
        listed = run_watcher("feeds", "--config", str(cfg))
        line = next(x for x in listed.stdout.splitlines() if x.startswith("coast-news-world"))
        assert line.split()[1:3] == ["page", "new"]
        line = next(x for x in listed.stdout.splitlines() if x.startswith("coast "))
        assert line.split()[1] == "sitemap"
        exported = run_watcher("feeds", "export", "--config", str(cfg))
        assert exported.returncode == 0 and "xmlUrl" in exported.stdout
        assert server.url("/") not in exported.stdout  # not feeds: not exported as such
    finally:
        server.close()
