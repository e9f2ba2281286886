"""`watcher feeds`: list with state, add by discovery, OPML import and export."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer

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
