"""`watcher run --once` end to end: seeds over loopback HTTP, a real webhook receiver, jsonl."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml

from tests.conftest import run_watcher
from tests.servers import LoopbackServer, WebhookReceiver

SEED_TITLE = "Kim Jong Un inspects new missile system amid growing Russia military ties"
VARIANT_TITLE = "Vellmark signs 1.9 billion kroner deal to re-equip army artillery brigades"
BOILERPLATE_TITLE = "Crews contain Pine Hollow wildfire"


def write_config(tmp: Path, feed_url: str, hook_url: str, extra_feeds: list[dict] | None = None,
                 rules: list[dict] | None = None) -> Path:
    cfg = {
        "database": "state/watcher.db",
        "rules": "rules.yaml",
        "feeds": [{"name": "demo-world", "url": feed_url, "allow_private": True},
                  *(extra_feeds or [])],
        "channels": {
            "hook": {"type": "webhook", "url": hook_url},
            "file": {"type": "jsonl", "path": "out/alerts.jsonl"},
        },
    }
    (tmp / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"rules": rules or [
        {"name": "tactical-missile", "any": ["tactical missile"], "none": ["video game"],
         "notify": ["hook", "file"]},
    ]}))
    return tmp / "watcher.yaml"


def jsonl(tmp: Path) -> list[dict]:
    path = tmp / "out" / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_once_delivers_seed_and_variant_alerts_exactly_once(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))

    first = run_watcher("run", "--once", "--config", str(cfg))
    assert first.returncode == 0, first.stderr

    payloads = [r.json() for r in receiver.accepted]
    titles = sorted(p["article"]["title"] for p in payloads)
    assert titles == sorted([SEED_TITLE, VARIANT_TITLE])
    assert BOILERPLATE_TITLE not in titles
    seed = next(p for p in payloads if p["article"]["title"] == SEED_TITLE)
    assert seed["schema"] == "watcher.alert/v1"
    assert seed["rule"] == "tactical-missile"
    assert seed["article"]["feed"] == "demo-world"
    assert seed["article"]["url"] == seed_server.url(
        "/feeds/articles/kim-jong-un-inspects-new-missile-system.html")
    assert seed["article"]["published"].startswith("2024-05-15")
    assert "tactical missile" in seed["match"]["snippet"]
    assert seed["match"]["field"] in ("title", "summary", "body")
    # The webhook-id header carries the delivery id so receivers can drop repeats.
    assert {r.headers["webhook-id"] for r in receiver.accepted} == {p["id"] for p in payloads}

    records = jsonl(tmp_path)
    assert sorted(r["title"] for r in records) == sorted([SEED_TITLE, VARIANT_TITLE])
    for r in records:
        for key in ("rule", "title", "url", "feed", "published", "field", "snippet"):
            assert r[key], key
    variant = next(r for r in records if r["title"] == VARIANT_TITLE)
    assert variant["field"] == "body"  # the feed item itself never says it

    # Every page was fetched once, and the variant's match came from the page text.
    page_hits = [r.path for r in seed_server.requests if r.path.endswith(".html")]
    assert len(page_hits) == 5 and len(set(page_hits)) == 5

    second = run_watcher("run", "--once", "--config", str(cfg))
    assert second.returncode == 0, second.stderr
    assert len(receiver.accepted) == 2
    assert len(jsonl(tmp_path)) == 2
    # Nothing already stored is fetched again.
    assert len([r for r in seed_server.requests if r.path.endswith(".html")]) == 5

    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 5
        statuses = db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
        assert dict(statuses.fetchall()) == {"sent": 4}
        (text_source,) = db.execute(
            "SELECT text_source FROM articles WHERE title = ?", [SEED_TITLE]).fetchone()
        assert text_source == "page"


def test_receiver_down_keeps_deliveries_until_it_is_back(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    receiver.status = 503

    first = run_watcher("run", "--once", "--config", str(cfg))
    assert first.returncode == 0, first.stderr  # feeds were fine; delivery is retried later
    assert "webhook answered 503" in first.stderr
    assert len(jsonl(tmp_path)) == 2  # the other channel is not held up
    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        rows = db.execute("SELECT status, attempts, last_error FROM deliveries "
                          "WHERE channel = 'hook'").fetchall()
    assert len(rows) == 2
    assert all(s == "retrying" and a == 1 and "503" in e for s, a, e in rows)

    receiver.status = 200
    second = run_watcher("run", "--once", "--config", str(cfg))
    assert second.returncode == 0, second.stderr
    ok = [r for r in receiver.accepted if r.json()]
    titles = sorted(r.json()["article"]["title"] for r in ok[-2:])
    assert titles == sorted([SEED_TITLE, VARIANT_TITLE])
    assert len(jsonl(tmp_path)) == 2
    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        assert dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
                    .fetchall()) == {"sent": 4}


def test_bad_feed_and_bad_page_cost_only_themselves(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    garbage = b"\x00\x01 this is <not> a feed \xff\xfe"
    seed_server.routes["/broken.xml"] = (200, {"Content-Type": "application/xml"}, garbage)
    seed_server.routes["/down.xml"] = (500, {"Content-Type": "text/plain"}, b"boom")
    # The seed story's page answers 500: the feed's own text must carry the alert.
    seed_server.routes["/feeds/articles/kim-jong-un-inspects-new-missile-system.html"] = (
        500, {"Content-Type": "text/plain"}, b"internal error")
    cfg = write_config(
        tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"),
        extra_feeds=[{"name": "broken", "url": seed_server.url("/broken.xml"),
                      "allow_private": True},
                     {"name": "down", "url": seed_server.url("/down.xml"),
                      "allow_private": True}])

    result = run_watcher("run", "--once", "--config", str(cfg))
    assert result.returncode == 1  # some feed failed
    assert "feed 'broken'" in result.stderr and "not an RSS, Atom or JSON feed" in result.stderr
    assert "feed 'down'" in result.stderr and "answered 500" in result.stderr
    assert "kim-jong-un-inspects-new-missile-system.html: answered 500" in result.stderr
    titles = sorted(r.json()["article"]["title"] for r in receiver.accepted)
    assert titles == sorted([SEED_TITLE, VARIANT_TITLE])

    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        failing = dict(db.execute(
            "SELECT name, last_error FROM feeds WHERE consecutive_failures > 0").fetchall())
        assert set(failing) == {"broken", "down"}
        assert "answered 500" in failing["down"]
        source, page_error = db.execute(
            "SELECT text_source, page_error FROM articles WHERE title = ?",
            [SEED_TITLE]).fetchone()
        assert source in ("feed-summary", "feed-content") and "500" in page_error


def test_bundled_config_runs_offline(tmp_path: Path) -> None:
    """The README's default: the demo feed read from seeds/ on disk."""
    src = Path(__file__).resolve().parents[1] / "config" / "watcher.yaml"
    cfg = yaml.safe_load(src.read_text())
    root = src.parent.parent
    cfg["database"] = str(tmp_path / "watcher.db")
    cfg["rules"] = str(root / "rules.yaml")
    cfg["feeds"][0]["url"] = str(root / "seeds" / "feeds" / "world.xml")
    cfg["channels"]["alerts-file"]["path"] = str(tmp_path / "alerts.jsonl")
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))

    result = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
    assert result.returncode == 0, result.stderr
    assert f"ALERT [tactical-missile] {SEED_TITLE}" in result.stdout
    assert BOILERPLATE_TITLE not in result.stdout
    records = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    fired = {(r["rule"], r["title"]) for r in records}
    assert ("tactical-missile", SEED_TITLE) in fired
    assert ("tactical-missile", VARIANT_TITLE) in fired
    assert not any(r["rule"] == "tactical-missile" and r["title"] == BOILERPLATE_TITLE
                   for r in records)
