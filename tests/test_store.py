"""watcher.store.sqlite: writes nested in one feed's transaction undo only themselves."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.delivery_helpers import add_match, classify_all
from watcher.core.errors import StoreError
from watcher.core.intents import NewArticle, Retention
from watcher.core.models import Article
from watcher.store import prune
from watcher.store.sqlite import SqliteStore as Store

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def article(entry: str) -> Article:
    return Article(feed="f", entry_id=entry, url=None, title=entry, summary="",
                   body=f"body of {entry}", text_source="feed-summary", published=None,
                   fetched_at=NOW)


def entries(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT entry_id FROM articles ORDER BY id")]


def test_nested_savepoints_share_a_name_and_roll_back_innermost_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    with store.transaction():
        assert store.add_article(NewArticle(article("kept-1"))) is not None
        with pytest.raises(RuntimeError), store._atomic():
            store.add_article(NewArticle(article("undone-1")))
            raise RuntimeError("the write after it failed")
        with store._atomic():
            store.add_article(NewArticle(article("kept-2")))
            with pytest.raises(RuntimeError), store._atomic():
                store.add_article(NewArticle(article("undone-2")))
                raise RuntimeError("inner failure")
            store.add_article(NewArticle(article("kept-3")))  # the outer savepoint is still open
        with pytest.raises(RuntimeError), store._atomic():
            store.add_article(NewArticle(article("undone-3")))
            with store._atomic():
                store.add_article(NewArticle(article("undone-4")))  # released, then rolled back
            raise RuntimeError("outer failure")
    assert entries(store) == ["kept-1", "kept-2", "kept-3"]
    assert not store.db.conn.in_transaction
    store.close()


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_article(NewArticle(article("a")))
        raise RuntimeError("feed failed half-way")
    assert entries(store) == []
    assert store.add_article(NewArticle(article("b"))) is not None  # not left inside a transaction
    assert entries(store) == ["b"]
    store.close()


def test_the_daily_prune_on_its_thread_and_a_feed_batch_do_not_mix(tmp_path: Path) -> None:
    """The daemon prunes on a thread while the loop keeps storing feeds' articles
    over the same connection: neither may land inside the other's transaction."""
    store = Store(tmp_path / "w.db")
    old = replace(article("x"), fetched_at=NOW - timedelta(days=400))
    with store.transaction():
        for i in range(2000):
            store.add_article(NewArticle(replace(old, entry_id=f"old-{i}", title=f"old {i}")))
    failures: list[BaseException] = []

    def run_prune() -> None:
        try:
            prune(store, NOW, Retention(keep_days=30, keep_matched_days=90), batch=20)
        except BaseException as exc:
            failures.append(exc)

    pruning = threading.Thread(target=run_prune)
    pruning.start()
    added = 0
    while pruning.is_alive() or added < 50:
        try:
            with store.transaction():
                store.add_article(NewArticle(article(f"new-{added}")))
                store.add_article(NewArticle(article(f"new-{added}-b")))
        except Exception as exc:
            failures.append(exc)
            break
        added += 1
    pruning.join()
    assert failures == []
    assert not [e for e in entries(store) if e.startswith("old-")]
    assert len([e for e in entries(store) if e.startswith("new-")]) == 2 * added
    store.close()


def test_the_daily_prune_and_outbox_claims_do_not_mix(tmp_path: Path) -> None:
    """Claims and marks take the write lock up front (BEGIN IMMEDIATE) on the same
    connection the prune's thread uses: each must wait for the other's transaction."""
    store = Store(tmp_path / "w.db")
    old = replace(article("x"), fetched_at=NOW - timedelta(days=400))
    with store.transaction():
        for i in range(2000):
            store.add_article(NewArticle(replace(old, entry_id=f"old-{i}", title=f"old {i}")))
    failures: list[BaseException] = []

    def run_prune() -> None:
        try:
            prune(store, NOW, Retention(keep_days=30, keep_matched_days=90), batch=20)
        except BaseException as exc:
            failures.append(exc)

    pruning = threading.Thread(target=run_prune)
    pruning.start()
    sent = 0
    while pruning.is_alive() or sent < 50:
        try:
            add_match(store, 10_000 + sent, NOW)
            classify_all(store, NOW)
            for d in store.claim_deliveries(NOW, 60, 10, owner="me"):
                assert store.renew_claim([d.id], "me", NOW, 60)
                store.mark_sent([d.id], NOW)
                sent += 1
        except Exception as exc:
            failures.append(exc)
            break
    pruning.join()
    assert failures == []
    assert not [e for e in entries(store) if e.startswith("old-")]
    assert {r.status for r in store.deliveries()} == {"sent"} and sent >= 50
    store.close()


def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A COMMIT that fails (here a foreign key checked at commit) must not leave the
    connection inside the transaction: later writes would join it and never commit."""
    store = Store(tmp_path / "w.db")
    with pytest.raises(StoreError), store._write():
        store._exec("PRAGMA defer_foreign_keys = ON")
        store._exec("INSERT INTO story_keys (key, article_id) VALUES (1, 999)")
    assert not store.db.conn.in_transaction
    assert store.add_article(NewArticle(article("after"))) is not None
    store.close()
    reopened = Store(tmp_path / "w.db")
    assert entries(reopened) == ["after"]
    assert reopened.db.execute("SELECT count(*) FROM story_keys").fetchone()[0] == 0
    reopened.close()
