"""`watcher deliveries`, `watcher deliveries retry`, and start-up checks of channels."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import yaml

from tests.conftest import run_watcher
from tests.delivery_helpers import Clock, RecordingChannel, add_match, classify_all, statuses
from tests.servers import LoopbackServer, WebhookReceiver
from tests.test_e2e import write_config
from watcher.delivery.dispatch import Dispatcher, claim_owner
from watcher.store.sqlite import SqliteStore as Store


def test_list_failed_and_dead_then_retry_all_dead(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    receiver.status = 503
    assert run_watcher("run", "--once", "--config", str(cfg)).returncode == 0

    failed = run_watcher("deliveries", "--status", "failed", "--config", str(cfg))
    assert failed.returncode == 0, failed.stderr
    lines = failed.stdout.splitlines()
    assert len([x for x in lines if x.startswith("wd_")]) == 2
    assert "failed" in failed.stdout and "webhook answered 503; retry at" in failed.stdout
    assert receiver.url("/hook") not in failed.stdout

    # The operator gives up on them (as the retry budget would), then wants them back.
    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        db.execute("UPDATE deliveries SET status = 'dead' WHERE channel = 'hook'")
    dead = run_watcher("deliveries", "--status", "dead", "--rule", "tactical-missile",
                       "--config", str(cfg))
    assert len([x for x in dead.stdout.splitlines() if x.startswith("wd_")]) == 2
    assert "no deliveries" in run_watcher("deliveries", "--status", "dead", "--rule", "other",
                                          "--config", str(cfg)).stdout
    sent = run_watcher("deliveries", "--status", "sent", "--config", str(cfg))
    assert len([x for x in sent.stdout.splitlines() if x.startswith("wd_")]) == 2  # jsonl

    retry = run_watcher("deliveries", "retry", "--all-dead", "--config", str(cfg))
    assert retry.returncode == 0 and "2 deliveries queued again" in retry.stdout
    receiver.status = 200
    assert run_watcher("run", "--once", "--config", str(cfg)).returncode == 0
    assert len([r for r in receiver.accepted if r.headers.get("webhook-id")]) == 4  # 2 + 2
    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        assert dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
                    .fetchall()) == {"sent": 4}


def test_retry_by_id_and_unknown_id(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    store = Store(tmp_path / "state" / "watcher.db")
    add_match(store, 1, Clock().now, rule="tactical-missile")
    (row,) = store.deliveries()
    store.mark_failed([row.id], Clock().now, "deliver: channel 'hook': boom", None)
    store.close()
    result = run_watcher("deliveries", "retry", row.id, "wd_nope", "--config", str(cfg))
    assert result.returncode == 1
    assert "1 delivery queued again" in result.stdout
    assert "wd_nope: no such delivery" in result.stderr
    listing = run_watcher("deliveries", "--config", str(cfg))
    assert row.id in listing.stdout and "pending" in listing.stdout


def test_check_reports_a_broken_template_and_shows_pacing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook",
                       rules=[{"name": "r1", "any": ["tactical missile"], "notify": ["hook"],
                               "cooldown": "30m"},
                              {"name": "r2", "any": ["missile"], "notify": ["file"],
                               "digest": "08:00"}])
    ok = run_watcher("check", "--config", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert "(cooldown 1800s)" in ok.stdout and "(digest 08:00)" in ok.stdout

    data = yaml.safe_load(cfg.read_text())
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "body.json").write_text('{"id": {{ id | tojson }}, {% if %}')
    data["channels"]["hook"]["templates"] = {"generic": "tpl/body.json"}
    cfg.write_text(yaml.safe_dump(data))
    for args in (("check",), ("run", "--once")):
        bad = run_watcher(*args, "--config", str(cfg))
        assert bad.returncode == 2
        assert "channel 'hook': template" in bad.stderr and "body.json:1" in bad.stderr
        assert "Traceback" not in bad.stderr


def test_bad_digest_and_cooldown_are_refused_with_their_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    (tmp_path / "rules.yaml").write_text(
        'rules:\n  - name: r1\n    any: ["x"]\n    notify: [hook]\n    digest: weekly\n'
        '    cooldown: soon\n')
    bad = run_watcher("check", "--config", str(cfg))
    assert bad.returncode == 2
    assert "rules.yaml:5:" in bad.stderr and "weekly" in bad.stderr
    assert "rules.yaml:6:" in bad.stderr and "soon" in bad.stderr


def test_claims_of_a_dead_process_are_released_at_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    clock = Clock()
    add_match(store, 1, clock.now)
    gone = claim_owner(__import__("socket").gethostname(), 2**22 + 12345)
    classify_all(store, clock.now)
    assert store.claim_deliveries(clock.now, 600, 10, owner=gone)
    hook = RecordingChannel()
    d = Dispatcher(store, {"hook": hook}, clock)
    asyncio.run(d.dispatch_due())
    assert hook.sent == []  # still leased to the other process
    assert d.release_orphans(alive=lambda pid: pid != 2**22 + 12345) == 1
    asyncio.run(d.dispatch_due())
    assert len(hook.sent) == 1 and statuses(store) == {"sent": 1}


def test_claims_of_a_live_process_are_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    clock = Clock()
    add_match(store, 1, clock.now)
    other = claim_owner(__import__("socket").gethostname(), 777)
    classify_all(store, clock.now)
    store.claim_deliveries(clock.now, 600, 10, owner=other)
    d = Dispatcher(store, {"hook": RecordingChannel()}, clock)
    assert d.release_orphans(alive=lambda pid: True) == 0
