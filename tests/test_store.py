"""watcher.store: writes nested in one feed's transaction undo only themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.models import Article
from watcher.store import Store

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
        assert store.add_article(article("kept-1")) is not None
        with pytest.raises(RuntimeError), store._atomic():
            store.add_article(article("undone-1"))
            raise RuntimeError("the write after it failed")
        with store._atomic():
            store.add_article(article("kept-2"))
            with pytest.raises(RuntimeError), store._atomic():
                store.add_article(article("undone-2"))
                raise RuntimeError("inner failure")
            store.add_article(article("kept-3"))  # the outer savepoint is still open
        with pytest.raises(RuntimeError), store._atomic():
            store.add_article(article("undone-3"))
            with store._atomic():
                store.add_article(article("undone-4"))  # released, then rolled back
            raise RuntimeError("outer failure")
    assert entries(store) == ["kept-1", "kept-2", "kept-3"]
    assert not store.db.conn.in_transaction
    store.close()


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_article(article("a"))
        raise RuntimeError("feed failed half-way")
    assert entries(store) == []
    assert store.add_article(article("b")) is not None  # not left inside a transaction
    assert entries(store) == ["b"]
    store.close()
