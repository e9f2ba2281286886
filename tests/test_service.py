"""Running as a service: one daemon per database, status, the archive, retention, logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_watcher
from tests.delivery_helpers import classify_all, record_match
from tests.servers import LoopbackServer, WebhookReceiver, wait_for
from tests.test_e2e import SEED_TITLE, write_config
from watcher.core.intents import NewArticle, Retention
from watcher.core.models import Article
from watcher.service.lock import holder
from watcher.store import prune
from watcher.store.sqlite import SqliteStore as Store


def test_second_daemon_refuses_while_read_only_commands_work(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    db = tmp_path / "state" / "watcher.db"
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert wait_for(lambda: len(receiver.accepted) >= 2, timeout=30)
        assert holder(db) == proc.pid
        second = run_watcher("run", "--config", str(cfg))
        assert second.returncode == 2
        assert "in use by another watcher daemon" in second.stderr
        assert f"pid {proc.pid}" in second.stderr
        once = run_watcher("run", "--once", "--config", str(cfg))
        assert once.returncode == 2
        status = run_watcher("status", "--config", str(cfg))
        assert status.returncode == 0, status.stderr
        assert f"running (pid {proc.pid})" in status.stdout
        assert "5 today" in status.stdout
        for args in (("feeds",), ("search", "missile"), ("deliveries",)):
            result = run_watcher(*args, "--config", str(cfg))
            assert result.returncode == 0, (args, result.stderr)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert holder(db) is None
    after = run_watcher("status", "--config", str(cfg))
    assert "not running" in after.stdout


def test_search_and_show(tmp_path: Path, seed_server: LoopbackServer,
                         receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    assert run_watcher("run", "--once", "--config", str(cfg)).returncode == 0
    found = run_watcher("search", '"tactical missile"', "--json", "--config", str(cfg))
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert [r["title"] for r in rows][:1] == ["Vellmark signs 1.9 billion kroner deal to "
                                              "re-equip army artillery brigades"]  # newest
    assert SEED_TITLE in [r["title"] for r in rows]
    assert any("[tactical missile]" in r["snippet"].lower() for r in rows)
    none = run_watcher("search", "tram", "--feed", "other", "--config", str(cfg))
    assert "no articles match" in none.stdout
    bad = run_watcher("search", '"unbalanced', "--config", str(cfg))
    assert bad.returncode == 2 and "search: cannot run query" in bad.stderr

    seed_id = next(r["id"] for r in rows if r["title"] == SEED_TITLE)
    shown = run_watcher("show", str(seed_id), "--config", str(cfg))
    assert shown.returncode == 0, shown.stderr
    assert "tactical-missile" in shown.stdout and "-> hook: sent" in shown.stdout
    assert "SEOUL, May 15 (UPI)" in shown.stdout
    missing = run_watcher("show", "9999", "--config", str(cfg))
    assert missing.returncode == 1


def _article(feed: str, entry: str, fetched: datetime) -> Article:
    return Article(feed=feed, entry_id=entry, url=f"https://x.test/{entry}", title=entry,
                   summary="", body=f"text of {entry}", text_source="page", published=None,
                   fetched_at=fetched)


def test_prune_keeps_matched_and_waiting_articles_longer(tmp_path: Path) -> None:
    from watcher.core.models import Hit, Match

    store = Store(tmp_path / "w.db")
    now = datetime.now(UTC)
    old = now - timedelta(days=100)
    ancient = now - timedelta(days=400)
    ids = {}
    for name, when in (("fresh", now), ("old-plain", old), ("old-matched", old),
                       ("ancient-matched", ancient), ("ancient-waiting", ancient)):
        ids[name] = store.add_article(NewArticle(_article("f", name, when)))
    match = Match(rule="r", hits=(Hit("body", "text", 0, 4, "text"),), field="body",
                  snippet="text", query='"text"')
    for name in ("old-matched", "ancient-matched", "ancient-waiting"):
        art = store.article(ids[name])
        assert art is not None
        record_match(store, art, [match], {"r": ["c"]}, now)
    classify_all(store, now)
    for d in store.claim_deliveries(now, 60, 10):
        if d.alert.title != "ancient-waiting":
            store.mark_sent([d.id], now)
    removed = prune(store, now, Retention(keep_days=90, keep_matched_days=365))
    left = {n for n, i in ids.items() if store.article(i) is not None}
    assert removed == 2
    assert left == {"fresh", "old-matched", "ancient-waiting"}
    # A pruned entry never comes back as new.
    assert store.known_entries("f", ["old-plain", "ancient-matched", "never-seen"]) == {
        "old-plain", "ancient-matched"}
    assert store.search("ancient") == [] or all(r.title != "ancient-matched"
                                               for r in store.search("ancient"))
    store.close()


def test_secrets_never_reach_the_logs(tmp_path: Path, seed_server: LoopbackServer) -> None:
    secret = "s3cr3t-t0ken-value"
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"),
                       "http://127.0.0.1:9/hook")
    data = yaml.safe_load(cfg.read_text())
    # The webhook URL carries the token and the receiver is down: the error path.
    data["channels"]["hook"]["url"] = "${HOOK_URL}"
    cfg.write_text(yaml.safe_dump(data))
    env = {"HOOK_URL": f"http://user:{secret}@127.0.0.1:9/hook?token={secret}"}
    outputs = {}
    for fmt in ("json", "text"):
        result = run_watcher("run", "--once", "--log-format", fmt, "--config", str(cfg),
                             env=env)
        assert result.returncode == 0, result.stderr
        assert "deliver: channel 'hook'" in result.stderr
        assert secret not in result.stderr and secret not in result.stdout
        outputs[fmt] = result.stderr
    lines = [json.loads(line) for line in outputs["json"].splitlines()]
    assert {"timestamp", "level", "stage", "feed", "rule", "message"} <= set(lines[0])
    assert any(line["stage"] == "match" and line["rule"] == "tactical-missile"
               and line["feed"] == "demo-world" for line in lines)


def test_prune_reports_progress_as_plain_lines_off_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = Store(db)
    old = datetime.now(UTC) - timedelta(days=200)
    for i in range(2500):
        store.add_article(NewArticle(_article("f", f"e{i}", old)))
    store.close()
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(
        {"database": "w.db", "rules": "rules.yaml", "feeds": []}))
    result = run_watcher("db", "prune", "--config", str(tmp_path / "watcher.yaml"))
    assert result.returncode == 0, result.stderr
    assert "... 2000 of 2500 article(s)" in result.stdout
    assert "removed 2500 article(s)" in result.stdout


def test_full_text_index_follows_text_changes_only(tmp_path: Path) -> None:
    """Bookkeeping updates (story, matched) leave the index alone; text edits reach it."""
    store = Store(tmp_path / "w.db")
    now = datetime.now(UTC)
    aid = store.add_article(NewArticle(_article("f", "tram-story", now)))
    assert aid is not None
    art = store.article(aid)
    assert art is not None
    record_match(store, art, [], {}, now)  # sets matched_at
    conn = store.db.conn
    fts_rows = conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH 'tram'")
    assert fts_rows.fetchone()[0] == 1
    # Without re-indexing on bookkeeping updates, the index holds one version only.
    integrity = "INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')"
    conn.execute(integrity)
    conn.execute("UPDATE articles SET body = 'a tactical missile' WHERE id = ?", [aid])
    conn.commit()
    conn.execute(integrity)
    assert [r.title for r in store.search('"tactical missile"')] == ["tram-story"]
    assert store.search("text") == []
    store.close()
