"""The only module that speaks SQL.

Its interface is in the language of the domain (due feeds, record a fetch, add
articles, claim deliveries) so that another store can stand beside it later.
Times are stored as UTC ISO-8601 text with a fixed width, so they sort and
compare as strings and stay readable in the sqlite3 shell.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from watcher.core.errors import StoreError
from watcher.core.models import Alert, Article, Delivery, Feed, FeedState, Match

migrations = Migrations("watcher")


def ts(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    # isoformat is C code, several times faster than strftime; the same text.
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript("""
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        configured_url TEXT NOT NULL,
        title TEXT,
        etag TEXT,
        last_modified TEXT,
        next_poll_at TEXT,
        last_polled_at TEXT,
        last_success_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        failing_since TEXT
    );
    CREATE INDEX feeds_next_poll ON feeds(next_poll_at);

    CREATE TABLE articles (
        id INTEGER PRIMARY KEY,
        feed TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        url TEXT,
        title TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        body TEXT NOT NULL DEFAULT '',
        text_source TEXT NOT NULL,
        page_error TEXT,
        author TEXT,
        language TEXT,
        sitename TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        published_at TEXT,
        fetched_at TEXT NOT NULL,
        matched_at TEXT,
        UNIQUE(feed, entry_id)
    );
    CREATE INDEX articles_url ON articles(url);
    CREATE INDEX articles_fetched ON articles(fetched_at);

    CREATE TABLE matches (
        id INTEGER PRIMARY KEY,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        rule TEXT NOT NULL,
        query TEXT NOT NULL,
        field TEXT NOT NULL,
        snippet TEXT NOT NULL,
        hits TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE(article_id, rule)
    );

    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        match_id INTEGER NOT NULL REFERENCES matches(id) ON DELETE CASCADE,
        article_id INTEGER NOT NULL,
        rule TEXT NOT NULL,
        channel TEXT NOT NULL,
        alert TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'retrying', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        claimed_until TEXT,
        last_attempt_at TEXT,
        last_error TEXT,
        sent_at TEXT,
        UNIQUE(rule, article_id, channel)
    );
    CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
    """)
    db["articles"].enable_fts(["title", "summary", "body"], fts_version="FTS5",
                              create_triggers=True, tokenize="porter unicode61")


@migrations()
def m002_feed_gone_and_health(db: sqlite_utils.Database) -> None:
    db.executescript("""
    ALTER TABLE feeds ADD COLUMN gone_at TEXT;
    ALTER TABLE feeds ADD COLUMN unhealthy_since TEXT;
    -- set from a 429/503 Retry-After: not even `run --once` polls before this
    ALTER TABLE feeds ADD COLUMN hold_until TEXT;
    """)


@migrations()
def m003_delivery_digests(db: sqlite_utils.Database) -> None:
    """Held deliveries (cooldown, digest) and manual requeues.

    classified_at: when the hold decision was made (NULL: not yet; rows from
    before this migration count as decided). held_until: the time a held
    delivery goes out in its digest. digest_id: the digest that carries it.
    """
    db.executescript("""
    ALTER TABLE deliveries ADD COLUMN classified_at TEXT;
    ALTER TABLE deliveries ADD COLUMN held_until TEXT;
    ALTER TABLE deliveries ADD COLUMN digest_id TEXT;
    ALTER TABLE deliveries ADD COLUMN requeued_at TEXT;
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    UPDATE deliveries SET classified_at = created_at;
    CREATE INDEX deliveries_digest ON deliveries(digest_id);
    CREATE INDEX deliveries_unclassified ON deliveries(classified_at)
        WHERE classified_at IS NULL;
    """)


@migrations()
def m004_pruned_entries(db: sqlite_utils.Database) -> None:
    """Entries whose articles retention removed: remembered so they are never new again."""
    db.executescript("""
    CREATE TABLE pruned_entries (
        feed TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        pruned_at TEXT NOT NULL,
        PRIMARY KEY (feed, entry_id)
    ) WITHOUT ROWID;
    CREATE INDEX articles_published ON articles(published_at);
    """)


@migrations()
def m005_stories_and_sources(db: sqlite_utils.Database) -> None:
    """One alert per story: canonical URLs, story ids, and every copy as a source.

    story_id is the id of the story's first article. A delivery is unique per
    (rule, story, channel).
    """
    db.executescript("""
    ALTER TABLE articles ADD COLUMN canonical_url TEXT;
    ALTER TABLE articles ADD COLUMN story_id INTEGER;
    ALTER TABLE articles ADD COLUMN signature BLOB;
    UPDATE articles SET story_id = id, canonical_url = url;
    CREATE INDEX articles_canonical ON articles(canonical_url);
    CREATE INDEX articles_story ON articles(story_id);
    CREATE TABLE article_sources (
        feed TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        url TEXT,
        title TEXT,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (feed, entry_id)
    );
    INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at)
        SELECT feed, entry_id, id, url, title, fetched_at FROM articles;
    CREATE INDEX article_sources_article ON article_sources(article_id);
    ALTER TABLE deliveries ADD COLUMN story_id INTEGER;
    UPDATE deliveries SET story_id = article_id;
    CREATE UNIQUE INDEX deliveries_story ON deliveries(rule, story_id, channel);
    """)


@migrations()
def m006_fts_only_on_text_changes(db: sqlite_utils.Database) -> None:
    """Re-index an article only when its indexed text changes.

    The trigger sqlite-utils makes fires on every UPDATE, so setting story_id or
    matched_at took the whole body out of the full-text index and put it back:
    two extra indexings of every article, most of the cost of storing one.
    """
    db.executescript("""
    DROP TRIGGER IF EXISTS articles_au;
    CREATE TRIGGER articles_au AFTER UPDATE OF title, summary, body ON articles BEGIN
      INSERT INTO articles_fts (articles_fts, rowid, title, summary, body)
        VALUES ('delete', old.rowid, old.title, old.summary, old.body);
      INSERT INTO articles_fts (rowid, title, summary, body)
        VALUES (new.rowid, new.title, new.summary, new.body);
    END;
    """)


@migrations()
def m007_story_keys(db: sqlite_utils.Database) -> None:
    """The near-duplicate index on disk: one row per (LSH band key, article).

    Held in memory it took about 10 KB per recent article (700 MB at 10,000
    feeds). Signatures stored before this version used other hashes, so they
    are not indexed: their copies simply do not fold.
    """
    db.executescript("""
    CREATE TABLE story_keys (
        key INTEGER NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        PRIMARY KEY (key, article_id)
    ) WITHOUT ROWID;
    CREATE INDEX story_keys_article ON story_keys(article_id);
    """)


# (rule, channel, created_at, last_immediate_at) -> None or (release time, digest id)
HoldDecision = Callable[[str, str, datetime, "datetime | None"],
                        "tuple[datetime, str] | None"]


def delivery_id(rule: str, feed: str, entry_id: str, channel: str) -> str:
    """Stable across retries and restarts: receivers can drop repeats by it."""
    digest = hashlib.sha256("\x00".join((rule, feed, entry_id, channel)).encode()).hexdigest()
    return "wd_" + digest[:32]


class Store:
    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        # One connection, used from the event loop and from threads (the daily prune,
        # the CLI's progress): a transaction and everything inside it belong to the
        # thread that holds this, so no thread's writes land in another's transaction.
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s,
                                   check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            migrations.apply(self.db)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"database {self.path}: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Many writes as one commit (the methods used inside nest as savepoints).

        Nothing inside may await: another task's writes would join the transaction.
        """
        with self._atomic():
            yield

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """sqlite-utils' atomic(), but every savepoint has the same name.

        Its random names made SQLite compile both statements afresh each time, six
        times an article. Nested savepoints may share a name: RELEASE and ROLLBACK TO
        act on the innermost one.
        """
        with self._lock:
            conn = self.db.conn
            if not conn.in_transaction:
                with self.db.atomic():
                    yield
                return
            conn.execute("SAVEPOINT watcher")
            try:
                yield
            except BaseException:
                if conn.in_transaction:  # a failure can end the whole transaction
                    conn.execute("ROLLBACK TO SAVEPOINT watcher")
                    conn.execute("RELEASE SAVEPOINT watcher")
                raise
            conn.execute("RELEASE SAVEPOINT watcher")

    def ping(self) -> None:
        """Raises if the database does not answer."""
        with self._lock:
            self.db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:  # not in the middle of another thread's transaction
            cur = self.db.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    # -- feeds --------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[Feed]) -> None:
        """Make sure every configured feed has a row; a changed URL in config wins."""
        with self._atomic():
            for f in feeds:
                row = self._rows("SELECT configured_url FROM feeds WHERE name = ?", [f.name])
                if not row:
                    self.db.execute(
                        "INSERT INTO feeds (name, url, configured_url) VALUES (?, ?, ?)",
                        [f.name, f.url, f.url])
                elif row[0]["configured_url"] != f.url:
                    self.db.execute(
                        "UPDATE feeds SET url = ?, configured_url = ?, etag = NULL, "
                        "last_modified = NULL, next_poll_at = NULL, gone_at = NULL, "
                        "consecutive_failures = 0, failing_since = NULL, "
                        "unhealthy_since = NULL WHERE name = ?",
                        [f.url, f.url, f.name])

    def feed_state(self, name: str) -> FeedState | None:
        rows = self._rows("SELECT * FROM feeds WHERE name = ?", [name])
        if not rows:
            return None
        r = rows[0]
        return FeedState(name=r["name"], url=r["url"], etag=r["etag"],
                         last_modified=r["last_modified"],
                         next_poll_at=from_ts(r["next_poll_at"]),
                         consecutive_failures=r["consecutive_failures"],
                         last_error=r["last_error"])

    def due_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        """Configured feeds whose next poll time has come (or that never ran)."""
        wanted = set(names)
        rows = self._rows(
            "SELECT name FROM feeds WHERE (next_poll_at IS NULL OR next_poll_at <= ?) "
            "AND gone_at IS NULL ORDER BY next_poll_at", [ts(now)])
        return [r["name"] for r in rows if r["name"] in wanted]

    def record_fetch_success(self, name: str, now: datetime, next_poll_at: datetime, *,
                             etag: str | None, last_modified: str | None,
                             url: str | None = None, title: str | None = None) -> None:
        with self._atomic():
            self.db.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, next_poll_at = ?, "
                "last_polled_at = ?, last_success_at = ?, consecutive_failures = 0, "
                "failing_since = NULL, unhealthy_since = NULL, hold_until = NULL, "
                "url = COALESCE(?, url), "
                "title = COALESCE(?, title) "
                "WHERE name = ?",
                [etag, last_modified, ts(next_poll_at), ts(now), ts(now), url, title, name])

    def record_fetch_failure(self, name: str, now: datetime, next_poll_at: datetime,
                             error: str, hold: bool = False) -> None:
        """`hold`: the server asked us to wait (Retry-After) until next_poll_at."""
        with self._atomic():
            self.db.execute(
                "UPDATE feeds SET next_poll_at = ?, last_polled_at = ?, last_error = ?, "
                "last_error_at = ?, consecutive_failures = consecutive_failures + 1, "
                "failing_since = COALESCE(failing_since, ?), hold_until = ? WHERE name = ?",
                [ts(next_poll_at), ts(now), error, ts(now), ts(now),
                 ts(next_poll_at) if hold else None, name])

    def pollable_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        """Feeds that may be polled now on demand: not gone, not held by Retry-After."""
        wanted = list(names)
        blocked = {r["name"] for r in self._rows(
            "SELECT name FROM feeds WHERE gone_at IS NOT NULL OR hold_until > ?", [ts(now)])}
        return [n for n in wanted if n not in blocked]

    def record_gone(self, name: str, now: datetime, error: str) -> None:
        """410 Gone: stop polling until the config changes the feed's URL."""
        with self._atomic():
            self.db.execute(
                "UPDATE feeds SET gone_at = ?, last_polled_at = ?, last_error = ?, "
                "last_error_at = ?, next_poll_at = NULL WHERE name = ?",
                [ts(now), ts(now), error, ts(now), name])

    def flag_unhealthy(self, name: str, now: datetime, failing_for_s: float) -> bool:
        """Flag a feed failing for longer than `failing_for_s`; True only the first time."""
        cutoff = ts(now - timedelta(seconds=failing_for_s))
        with self._atomic():
            cur = self.db.execute(
                "UPDATE feeds SET unhealthy_since = ? WHERE name = ? AND unhealthy_since IS NULL "
                "AND failing_since IS NOT NULL AND failing_since <= ?", [ts(now), name, cutoff])
        return bool(cur.rowcount)

    def feed_report(self, now: datetime) -> list[dict[str, Any]]:
        """Every feed's state for `watcher feeds`, with items seen in the last 7 days."""
        week = ts(now - timedelta(days=7))
        return self._rows(
            "SELECT f.name, f.url, f.title, f.last_success_at, f.last_error, f.last_error_at, "
            "f.next_poll_at, f.consecutive_failures, f.failing_since, f.unhealthy_since, "
            "f.gone_at, f.etag IS NOT NULL OR f.last_modified IS NOT NULL AS conditional, "
            "(SELECT count(*) FROM articles a WHERE a.feed = f.name AND a.fetched_at >= ?) "
            "AS items_7d FROM feeds f ORDER BY f.name", [week])

    # -- articles -----------------------------------------------------------

    def known_entries(self, feed: str, entry_ids: Iterable[str]) -> set[str]:
        ids = list(entry_ids)
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            known.update(r["entry_id"] for r in self._rows(
                f"SELECT entry_id FROM article_sources WHERE feed = ? "
                f"AND entry_id IN ({marks}) "
                f"UNION SELECT entry_id FROM pruned_entries WHERE feed = ? "
                f"AND entry_id IN ({marks})", [feed, *chunk, feed, *chunk]))
        return known

    def add_article(self, a: Article) -> int | None:
        """Store an article and its first source; None when (feed, entry_id) is known.

        Without a story_id the article starts a story of its own.
        """
        with self._atomic():
            cur = self.db.execute(
                "INSERT INTO articles (feed, entry_id, url, title, summary, body, text_source, "
                "page_error, author, language, sitename, tags, published_at, fetched_at, "
                "canonical_url, story_id, signature) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(feed, entry_id) DO NOTHING",
                [a.feed, a.entry_id, a.url, a.title, a.summary, a.body, a.text_source,
                 a.page_error, a.author, a.language, a.sitename, json.dumps(list(a.tags)),
                 ts(a.published), ts(a.fetched_at), a.canonical_url, a.story_id, a.signature])
            if not cur.rowcount:
                return None
            article_id = cur.lastrowid
            if a.story_id is None:
                self.db.execute("UPDATE articles SET story_id = id WHERE id = ?", [article_id])
            cur = self.db.execute(
                "INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [a.feed, a.entry_id, article_id, a.url, a.title, ts(a.fetched_at)])
            if not cur.rowcount:  # this entry is already a source of another article
                self.db.execute("DELETE FROM articles WHERE id = ?", [article_id])
                return None
            return article_id

    def article_by_canonical(self, canonical_url: str) -> tuple[int, int] | None:
        """(article id, story id) of the newest article at this canonical URL."""
        rows = self._rows("SELECT id, story_id FROM articles WHERE canonical_url = ? "
                          "ORDER BY id DESC LIMIT 1", [canonical_url])
        return (rows[0]["id"], rows[0]["story_id"]) if rows else None

    def add_source(self, article_id: int, feed: str, entry_id: str, url: str | None,
                   title: str, now: datetime) -> bool:
        """Another copy of a stored article (same canonical URL): a source, not an article."""
        with self._atomic():
            cur = self.db.execute(
                "INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [feed, entry_id, article_id, url, title, ts(now)])
        return bool(cur.rowcount)

    def add_story_keys(self, article_id: int, keys: Sequence[int]) -> None:
        with self._atomic():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO story_keys (key, article_id) VALUES (?, ?)",
                [(k, article_id) for k in keys])

    def story_candidates(self, keys: Sequence[int], since: datetime
                         ) -> list[tuple[int, int, bytes]]:
        """(article id, story id, signature) of articles since `since` sharing a key."""
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        with self._lock:
            return [tuple(r) for r in self.db.execute(  # type: ignore[misc]
                "SELECT a.id, a.story_id, a.signature FROM articles a WHERE a.id IN "
                f"(SELECT article_id FROM story_keys WHERE key IN ({marks})) "
                "AND a.fetched_at >= ? AND a.signature IS NOT NULL",
                [*keys, ts(since)]).fetchall()]

    def story_sources(self, story_id: int) -> list[dict[str, Any]]:
        """Every copy of a story: each feed entry that carried it, first seen first."""
        return self._rows(
            "SELECT s.feed, s.entry_id, s.url, s.title, s.seen_at, s.article_id "
            "FROM article_sources s JOIN articles a ON a.id = s.article_id "
            "WHERE a.story_id = ? ORDER BY s.seen_at, s.feed", [story_id])

    def unmatched_articles(self, limit: int = 1000) -> list[Article]:
        """Articles stored but not yet matched: a crash came between the two steps."""
        return [self._article(r) for r in self._rows(
            "SELECT * FROM articles WHERE matched_at IS NULL ORDER BY id LIMIT ?", [limit])]

    def iter_articles(self, since: datetime, batch: int = 500) -> Iterator[list[Article]]:
        """Stored articles fetched at or after `since`, newest first, in batches (backtests)."""
        last_id: int | None = None
        while True:
            rows = self._rows(
                "SELECT * FROM articles WHERE fetched_at >= ? AND (? IS NULL OR id < ?) "
                "ORDER BY id DESC LIMIT ?", [ts(since), last_id, last_id, batch])
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield [self._article(r) for r in rows]

    def count_articles_since(self, since: datetime) -> int:
        return self._rows("SELECT count(*) AS n FROM articles WHERE fetched_at >= ?",
                          [ts(since)])[0]["n"]

    def article(self, article_id: int) -> Article | None:
        rows = self._rows("SELECT * FROM articles WHERE id = ?", [article_id])
        return self._article(rows[0]) if rows else None

    @staticmethod
    def _article(r: dict[str, Any]) -> Article:
        return Article(
            id=r["id"], feed=r["feed"], entry_id=r["entry_id"], url=r["url"],
            title=r["title"], summary=r["summary"], body=r["body"],
            text_source=r["text_source"], page_error=r["page_error"], author=r["author"],
            language=r["language"], sitename=r["sitename"], tags=tuple(json.loads(r["tags"])),
            published=from_ts(r["published_at"]), fetched_at=from_ts(r["fetched_at"]) or
            datetime.now(UTC), canonical_url=r.get("canonical_url"), story_id=r.get("story_id"))

    # -- the archive ----------------------------------------------------------

    def search(self, query: str, since: datetime | None = None, feed: str | None = None,
               limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search (FTS5 syntax), newest first, with a highlighted snippet."""
        sql = ("SELECT a.id, a.feed, a.title, a.url, a.published_at, a.fetched_at, "
               "snippet(articles_fts, -1, '[', ']', '…', 16) AS snippet "
               "FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid "
               "WHERE articles_fts MATCH ?")
        params: list[Any] = [query]
        if since is not None:
            sql += " AND a.fetched_at >= ?"
            params.append(ts(since))
        if feed:
            sql += " AND a.feed = ?"
            params.append(feed)
        sql += " ORDER BY COALESCE(a.published_at, a.fetched_at) DESC, a.id DESC LIMIT ?"
        params.append(limit)
        try:
            return self._rows(sql, params)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"search: cannot run query {query!r}: {exc}") from None

    def article_record(self, article_id: int) -> dict[str, Any] | None:
        """An article with its matches and deliveries, for `watcher show`."""
        rows = self._rows("SELECT * FROM articles WHERE id = ?", [article_id])
        if not rows:
            return None
        record = rows[0]
        record["matches"] = self._rows(
            "SELECT rule, query, field, snippet, created_at FROM matches WHERE article_id = ? "
            "ORDER BY id", [article_id])
        record["deliveries"] = self._rows(
            "SELECT id, rule, channel, status, attempts, last_error, sent_at FROM deliveries "
            "WHERE story_id = ? ORDER BY rule, channel", [record["story_id"] or article_id])
        record["sources"] = self.story_sources(record["story_id"] or article_id)
        record.pop("signature", None)
        return record

    def status_report(self, now: datetime, since: datetime) -> dict[str, Any]:
        """The numbers behind `watcher status` (since = start of today)."""
        one = self._rows
        feeds = one("SELECT count(*) AS total, "
                    "sum(consecutive_failures = 0 AND gone_at IS NULL) AS healthy, "
                    "sum(consecutive_failures > 0 AND gone_at IS NULL) AS failing, "
                    "sum(unhealthy_since IS NOT NULL) AS unhealthy, "
                    "sum(gone_at IS NOT NULL) AS gone FROM feeds")[0]
        backlog = one("SELECT count(*) AS n, min(created_at) AS oldest FROM deliveries "
                      "WHERE status IN ('pending', 'retrying')")[0]
        return {
            "feeds": feeds,
            "articles_today": one("SELECT count(*) AS n FROM articles WHERE fetched_at >= ?",
                                  [ts(since)])[0]["n"],
            "articles_total": one("SELECT count(*) AS n FROM articles")[0]["n"],
            "matches_today": one("SELECT count(*) AS n FROM matches WHERE created_at >= ?",
                                 [ts(since)])[0]["n"],
            "deliveries": {r["status"]: r["n"] for r in one(
                "SELECT status, count(*) AS n FROM deliveries GROUP BY status")},
            "backlog": backlog["n"],
            "backlog_oldest": backlog["oldest"],
            "feed_errors": one(
                "SELECT name, last_error, last_error_at FROM feeds WHERE last_error IS NOT NULL "
                "AND (consecutive_failures > 0 OR gone_at IS NOT NULL) "
                "ORDER BY last_error_at DESC LIMIT 5"),
            "delivery_errors": one(
                "SELECT id, rule, channel, status, last_error, last_attempt_at FROM deliveries "
                "WHERE last_error IS NOT NULL AND status != 'sent' "
                "ORDER BY last_attempt_at DESC LIMIT 5"),
        }

    def prune(self, now: datetime, keep_days: float, keep_matched_days: float,
              batch: int = 500, progress: Callable[[int], None] | None = None,
              total: Callable[[int], None] | None = None) -> int:
        """Remove old articles: unmatched after keep_days, matched after keep_matched_days.

        An article with an alert still waiting to go out is never removed. Each
        removed entry is remembered so the feed's old items are never new again.
        Returns the number of articles removed.
        """
        plain_cutoff = ts(now - timedelta(days=keep_days))
        matched_cutoff = ts(now - timedelta(days=keep_matched_days))
        removed = 0
        if total is not None:
            total(self._rows(
                "SELECT count(*) AS n FROM articles a WHERE "
                "((a.fetched_at < ? AND NOT EXISTS (SELECT 1 FROM matches m "
                "  WHERE m.article_id = a.id)) OR a.fetched_at < ?) "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.article_id = a.id "
                "  AND d.status IN ('pending', 'retrying'))",
                [plain_cutoff, matched_cutoff])[0]["n"])
        while True:
            with self._atomic():
                rows = self._rows(
                    "SELECT a.id, a.feed, a.entry_id FROM articles a WHERE "
                    "((a.fetched_at < ? AND NOT EXISTS (SELECT 1 FROM matches m "
                    "  WHERE m.article_id = a.id)) OR a.fetched_at < ?) "
                    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.article_id = a.id "
                    "  AND d.status IN ('pending', 'retrying')) LIMIT ?",
                    [plain_cutoff, matched_cutoff, batch])
                if not rows:
                    break
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO pruned_entries (feed, entry_id, pruned_at) "
                    "SELECT feed, entry_id, ? FROM article_sources WHERE article_id = ?",
                    [(ts(now), r["id"]) for r in rows])
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO pruned_entries (feed, entry_id, pruned_at) "
                    "VALUES (?, ?, ?)", [(r["feed"], r["entry_id"], ts(now)) for r in rows])
                self.db.conn.executemany("DELETE FROM articles WHERE id = ?",
                                         [(r["id"],) for r in rows])
            removed += len(rows)
            if progress is not None:
                progress(len(rows))
        # Tombstones outlive the articles by the longer period, then go too.
        with self._atomic():
            self.db.execute("DELETE FROM pruned_entries WHERE pruned_at < ?",
                            [ts(now - timedelta(days=2 * keep_matched_days))])
        # The index rewritten without the removed rows, as 'optimize' does, but in
        # steps of a few hundred pages: 'optimize' writes the whole index in one
        # transaction, and the daemon's polls would wait for it (FTS5: a negative
        # 'merge' until it changes nothing is the same as 'optimize').
        while True:
            with self._lock:
                before = self.db.conn.total_changes
                self.db.execute(
                    "INSERT INTO articles_fts(articles_fts, rank) VALUES ('merge', -500)")
                self.db.conn.commit()
                if self.db.conn.total_changes - before < 2:
                    break
        return removed

    # -- matches and the outbox ---------------------------------------------

    def record_matches(self, article: Article, matches: Sequence[Match],
                       channels_by_rule: dict[str, Sequence[str]], now: datetime) -> int:
        """Write the matches and their deliveries, and mark the article matched.

        One transaction: either every delivery of every match exists, or none
        does and the article stays unmatched for the next start to finish.
        Returns the number of deliveries created.
        """
        if article.id is None:
            raise StoreError("record_matches needs a stored article (no id)")
        created = 0
        with self._atomic():
            root = self._rows(
                "SELECT r.id, r.feed, r.entry_id FROM articles a JOIN articles r "
                "ON r.id = COALESCE(a.story_id, a.id) WHERE a.id = ?", [article.id])
            story_id, story_feed, story_entry = (
                (root[0]["id"], root[0]["feed"], root[0]["entry_id"]) if root
                else (article.id, article.feed, article.entry_id))
            for m in matches:
                cur = self.db.execute(
                    "INSERT INTO matches (article_id, rule, query, field, snippet, hits, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(article_id, rule) DO NOTHING",
                    [article.id, m.rule, m.query, m.field, m.snippet,
                     json.dumps([h.__dict__ for h in m.hits]), ts(now)])
                if not cur.rowcount:
                    continue
                match_id = cur.lastrowid
                for channel in channels_by_rule.get(m.rule, ()):
                    # One delivery per (rule, story, channel): named after the story's
                    # first copy, so every later copy maps to the same id.
                    did = delivery_id(m.rule, story_feed, story_entry, channel)
                    alert = Alert(
                        delivery_id=did, rule=m.rule, query=m.query,
                        title=article.title, url=article.url, feed=article.feed,
                        published=ts(article.published), field=m.field, snippet=m.snippet,
                        matched=tuple(dict.fromkeys(h.matched for h in m.hits)),
                        article_id=article.id, text_source=article.text_source)
                    cur = self.db.execute(
                        "INSERT INTO deliveries (id, match_id, article_id, rule, channel, alert, "
                        "created_at, next_attempt_at, story_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [did, match_id, article.id, m.rule, channel,
                         json.dumps(alert.as_dict()), ts(now), ts(now), story_id])
                    created += cur.rowcount
            self.db.execute("UPDATE articles SET matched_at = ? WHERE id = ?",
                            [ts(now), article.id])
        return created

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so that two
        processes reading then updating the outbox never interleave."""
        conn = self.db.conn
        if conn.in_transaction:
            with self._atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.execute("COMMIT")

    def claim_deliveries(self, now: datetime, lease_s: float, limit: int,
                         ignore_schedule: bool = False,
                         hold: HoldDecision | None = None,
                         owner: str | None = None,
                         tried_before: datetime | None = None) -> list[Delivery]:
        """Take due deliveries for `lease_s` seconds so no other loop sends them too.

        New deliveries are first classified: `hold(rule, channel, created_at,
        last_immediate_at)` returns None (send now) or (release time, digest id);
        a held delivery waits until then and goes out with the rest of its digest.
        The members of a digest are always claimed together. `ignore_schedule`
        (run --once) sends waiting retries now, but not digests before their time.
        """
        due_clause = ("AND (next_attempt_at <= :now OR held_until IS NULL OR attempts > 0) "
                      if ignore_schedule else "AND next_attempt_at <= :now ")
        if tried_before is not None:  # one try per delivery in a pass that ignores schedule
            due_clause += "AND (last_attempt_at IS NULL OR last_attempt_at < :tried) "
        params = {"now": ts(now), "until": ts(now + timedelta(seconds=lease_s)),
                  "limit": limit, "tried": ts(tried_before)}
        with self._write():
            self._classify(now, hold)
            picked = self._rows(
                "SELECT id, digest_id FROM deliveries WHERE status IN ('pending', 'retrying') "
                f"AND classified_at IS NOT NULL {due_clause}"
                "AND (claimed_until IS NULL OR claimed_until <= :now) "
                "ORDER BY next_attempt_at, id LIMIT :limit", params)  # type: ignore[arg-type]
            if not picked:
                return []
            ids = [r["id"] for r in picked]
            groups = sorted({r["digest_id"] for r in picked if r["digest_id"]})
            rows = []
            for i in range(0, len(ids), 400):
                chunk = ids[i:i + 400]
                rows += self._rows(
                    f"UPDATE deliveries SET claimed_until = ?, claimed_by = ? WHERE id IN "
                    f"({','.join('?' * len(chunk))}) RETURNING *",
                    [params["until"], owner, *chunk])
            for g in groups:  # the rest of each digest, whatever its own schedule
                rows += self._rows(
                    "UPDATE deliveries SET claimed_until = ?, claimed_by = ? WHERE digest_id = ? "
                    "AND status IN ('pending', 'retrying') AND classified_at IS NOT NULL "
                    "AND (claimed_until IS NULL OR claimed_until <= ?) RETURNING *",
                    [params["until"], owner, g, params["now"]])
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        sources: dict[int, list[dict[str, Any]]] = {}  # one query per story, not per row
        return [self._with_sources(self._delivery(r), r.get("story_id"), sources)
                for r in rows]

    def _with_sources(self, d: Delivery, story_id: int | None,
                      known: dict[int, list[dict[str, Any]]]) -> Delivery:
        """The copies known now, so the message can say "also reported by"."""
        if story_id is None:
            return d
        if story_id not in known:
            known[story_id] = self.story_sources(story_id)
        own = (d.alert.feed, d.alert.url)
        others = tuple((s["feed"], s["title"] or "", s["url"])
                       for s in known[story_id] if (s["feed"], s["url"]) != own)
        if not others:
            return d
        return replace(d, alert=replace(d.alert, sources=others))

    def _classify(self, now: datetime, hold: HoldDecision | None) -> None:
        """Decide once, in created order, whether each new delivery is held."""
        rows = self._rows(
            "SELECT id, rule, channel, created_at FROM deliveries WHERE classified_at IS NULL "
            "ORDER BY created_at, id")
        last: dict[tuple[str, str], datetime | None] = {}
        for r in rows:
            key = (r["rule"], r["channel"])
            created = from_ts(r["created_at"]) or now
            if key not in last:
                found = self._rows(
                    "SELECT max(created_at) AS t FROM deliveries WHERE rule = ? AND channel = ? "
                    "AND classified_at IS NOT NULL AND held_until IS NULL", list(key))
                last[key] = from_ts(found[0]["t"]) if found else None
            decision = hold(key[0], key[1], created, last[key]) if hold else None
            if decision is None:
                last[key] = created
                self.db.execute("UPDATE deliveries SET classified_at = ? WHERE id = ?",
                                [ts(now), r["id"]])
                continue
            until, group = decision
            busy = self._rows(
                "SELECT 1 FROM deliveries WHERE digest_id = ? AND (status IN ('sent', 'dead') "
                "OR claimed_until > ?) LIMIT 1", [group, ts(now)])
            if busy:  # that digest already left (or is leaving): this one goes on its own
                group = f"{group}.{r['id'][-8:]}"
            self.db.execute(
                "UPDATE deliveries SET classified_at = ?, held_until = ?, digest_id = ?, "
                "next_attempt_at = ? WHERE id = ?",
                [ts(now), ts(until), group, ts(until), r["id"]])

    def renew_claim(self, ids: Sequence[str], owner: str, now: datetime,
                    lease_s: float) -> bool:
        """Extend our claim on `ids` just before sending them; False if any of them
        is no longer ours (the lease ran out and another loop took it)."""
        with self._write():
            n = 0
            for i in ids:
                n += self.db.execute(
                    "UPDATE deliveries SET claimed_until = ? WHERE id = ? AND claimed_by = ? "
                    "AND status IN ('pending', 'retrying')",
                    [ts(now + timedelta(seconds=lease_s)), i, owner]).rowcount
            return n == len(ids)

    def claim_owners(self, now: datetime) -> list[str]:
        """Who holds live claims (to find those of processes that died)."""
        return [r["claimed_by"] for r in self._rows(
            "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_until > ? "
            "AND claimed_by IS NOT NULL", [ts(now)])]

    def release_claims_of(self, owner: str) -> int:
        """Give back every claim of an owner that is known to be gone."""
        with self._write():
            return self.db.execute(
                "UPDATE deliveries SET claimed_until = NULL, claimed_by = NULL "
                "WHERE claimed_by = ?", [owner]).rowcount

    @staticmethod
    def _delivery(r: dict[str, Any]) -> Delivery:
        a = json.loads(r["alert"])
        alert = Alert(
            delivery_id=a["id"], rule=a["rule"], query=a.get("query", ""), title=a["title"],
            url=a.get("url"), feed=a["feed"], published=a.get("published"),
            field=a["field"], snippet=a["snippet"], matched=tuple(a.get("matched", ())),
            article_id=a.get("article_id"), text_source=a.get("text_source", "page"))
        return Delivery(
            id=r["id"], channel=r["channel"], rule=r["rule"], alert=alert,
            status=r["status"], attempts=r["attempts"],
            # the retry budget (delivery.max_age) counts from a manual requeue, if any
            created_at=from_ts(r.get("requeued_at") or r["created_at"]) or datetime.now(UTC),
            next_attempt_at=from_ts(r["next_attempt_at"]) or datetime.now(UTC),
            last_error=r["last_error"], digest_id=r.get("digest_id"))

    def mark_sent(self, delivery_id: str | Sequence[str], now: datetime) -> None:
        """The channel accepted it (or the digest that carries them): sent, in one go."""
        ids = [delivery_id] if isinstance(delivery_id, str) else list(delivery_id)
        with self._write():
            self.db.conn.executemany(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, last_attempt_at = ?, "
                "attempts = attempts + 1, claimed_until = NULL, last_error = NULL WHERE id = ?",
                [[ts(now), ts(now), i] for i in ids])

    def mark_failed(self, delivery_id: str | Sequence[str], now: datetime, error: str,
                    next_attempt_at: datetime | None) -> None:
        """Record a failed attempt; no next attempt means the delivery is dead."""
        ids = [delivery_id] if isinstance(delivery_id, str) else list(delivery_id)
        status = "dead" if next_attempt_at is None else "retrying"
        with self._write():
            self.db.conn.executemany(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_error = ?, "
                "last_attempt_at = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                "claimed_until = NULL WHERE id = ?",
                [[status, error, ts(now), ts(next_attempt_at), i] for i in ids])

    def release(self, delivery_id: str | Sequence[str]) -> None:
        """Give claimed deliveries back untouched (the daemon is stopping)."""
        ids = [delivery_id] if isinstance(delivery_id, str) else list(delivery_id)
        with self._write():
            self.db.conn.executemany(
                "UPDATE deliveries SET claimed_until = NULL WHERE id = ?", [[i] for i in ids])

    def requeue_deliveries(self, now: datetime, ids: Sequence[str] = (),
                           all_dead: bool = False) -> list[str]:
        """Put dead or retrying deliveries back in the queue, due now, with a fresh
        retry budget. The other members of a digest come back with them. Returns
        the ids requeued; ids that are unknown or already sent are left alone."""
        with self._write():
            if all_dead:
                rows = self._rows("SELECT id, digest_id FROM deliveries WHERE status = 'dead'")
            else:
                rows = []
                for i in ids:
                    rows += self._rows("SELECT id, digest_id FROM deliveries WHERE id = ? "
                                       "AND status IN ('dead', 'retrying', 'pending')", [i])
            wanted = {r["id"] for r in rows}
            for g in {r["digest_id"] for r in rows if r["digest_id"]}:
                wanted |= {r["id"] for r in self._rows(
                    "SELECT id FROM deliveries WHERE digest_id = ? AND status != 'sent'", [g])}
            self.db.conn.executemany(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, "
                "requeued_at = ?, claimed_until = NULL WHERE id = ?",
                [[ts(now), ts(now), i] for i in sorted(wanted)])
        return sorted(wanted)

    def deliveries(self, status: str | None = None, rule: str | None = None
                   ) -> list[dict[str, Any]]:
        sql = ("SELECT id, rule, channel, status, attempts, created_at, next_attempt_at, "
               "last_error, sent_at, article_id, held_until, digest_id, last_attempt_at, "
               "json_extract(alert, '$.title') AS title FROM deliveries WHERE 1=1")
        params: list[Any] = []
        if status:
            sql += " AND status = ?"
            params.append(status)
        if rule:
            sql += " AND rule = ?"
            params.append(rule)
        return self._rows(sql + " ORDER BY created_at, id", params)
