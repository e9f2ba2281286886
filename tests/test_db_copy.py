"""`watcher db copy --to postgresql://...` and every command on the copy: a daemon's
SQLite database moved to PostgreSQL (a real cluster, tests/pg.py) answers the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import run_watcher
from tests.servers import LoopbackServer, WebhookReceiver
from tests.test_e2e import SEED_TITLE, write_config
from watcher.store.copy import TABLES


def watcher_json(*args: str) -> Any:
    result = run_watcher(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if args[0] != "search" else [
        json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_a_copied_database_answers_every_command_as_the_original(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver,
        pg_url: str) -> None:
    lite = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    assert run_watcher("run", "--once", "--config", str(lite)).returncode == 0
    sent = len(receiver.accepted)
    assert sent >= 2

    copy = run_watcher("db", "copy", "--to", pg_url, "--config", str(lite))
    assert copy.returncode == 0, copy.stderr
    assert "copied and verified by count" in copy.stdout
    assert "articles:" in copy.stdout and "deliveries:" in copy.stdout

    again = run_watcher("db", "copy", "--to", pg_url, "--config", str(lite))
    assert again.returncode == 2 and "not empty" in again.stderr
    assert "Traceback" not in again.stderr

    cfg = yaml.safe_load(lite.read_text())
    pg = tmp_path / "pg.yaml"
    pg.write_text(yaml.safe_dump({**cfg, "database": pg_url}))
    both = {"sqlite": str(lite), "postgres": str(pg)}

    found = {k: watcher_json("search", "tactical missile", "--config", c)
             for k, c in both.items()}
    assert found["sqlite"] and {(h["id"], h["title"]) for h in found["sqlite"]} == \
        {(h["id"], h["title"]) for h in found["postgres"]}
    seed_id = next(h["id"] for h in found["sqlite"] if h["title"] == SEED_TITLE)
    shown = {k: watcher_json("show", str(seed_id), "--config", c) for k, c in both.items()}
    assert shown["sqlite"]["matches"] and shown["sqlite"]["deliveries"]
    assert shown["postgres"] == shown["sqlite"]
    status = {k: watcher_json("status", "--config", c) for k, c in both.items()}
    for part in ("feeds", "deliveries", "articles_total"):
        assert status["postgres"][part] == status["sqlite"][part], part

    for command in (["deliveries"], ["feeds"], ["rules", "test"], ["db", "prune"]):
        outputs = {k: run_watcher(*command, "--config", c) for k, c in both.items()}
        for k, out in outputs.items():
            assert out.returncode == 0, (command, k, out.stderr)
        if command != ["db", "prune"]:
            assert outputs["postgres"].stdout == outputs["sqlite"].stdout, command
    migrate = run_watcher("db", "migrate", "--config", str(pg))
    assert migrate.returncode == 0 and "this watcher knows" in migrate.stdout

    # The state came over too: the feed's entries are known and its alerts were sent.
    assert run_watcher("run", "--once", "--config", str(pg)).returncode == 0
    assert len(receiver.accepted) == sent


def test_every_table_of_the_sqlite_store_is_copied(tmp_path: Path) -> None:
    from watcher.store import open_store

    open_store(tmp_path / "w.db").close()
    with sqlite3.connect(tmp_path / "w.db") as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    derived = {t for t in tables if t.startswith(("sqlite_", "_sqlite_", "articles_fts"))}
    # the daemons' registry is rebuilt by the daemons themselves
    assert tables - derived - {"daemons"} == set(TABLES)


def test_copy_refuses_a_target_that_is_not_postgresql(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text("database: w.db\nrules: rules.yaml\n")
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    result = run_watcher("db", "copy", "--to", "/tmp/other.db", "--config",
                         str(tmp_path / "watcher.yaml"))
    assert result.returncode == 2
    assert "db copy: --to: '/tmp/other.db' is not a postgresql:// URL" in result.stderr
