"""The SQLite schema, versioned: each migration runs once, in order (sqlite-utils)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

Step = Callable[["sqlite_utils.Database"], None]


class LazyMigrations:
    """sqlite-utils' `Migrations`, registered the same way (`@migrations()`), but
    sqlite-utils is imported only when some are pending: opening an up-to-date
    database (every command, every start) reads the applied names with one query."""

    name = "watcher"
    migrations_table = "_sqlite_migrations"  # sqlite-utils' own table

    def __init__(self) -> None:
        self._steps: list[tuple[str, Step, bool]] = []

    def __call__(self, *, name: str | None = None, transactional: bool = True
                 ) -> Callable[[Step], Step]:
        def register(fn: Step) -> Step:
            self._steps.append((name or fn.__name__, fn, transactional))
            return fn
        return register

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self._steps]

    def applied(self, conn: sqlite3.Connection) -> list[str]:
        """The names applied to this database, in order."""
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        [self.migrations_table]).fetchone() is None:
            return []
        return [r[0] for r in conn.execute(
            f"SELECT name FROM [{self.migrations_table}] WHERE migration_set = ? "
            "ORDER BY rowid", [self.name])]

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        done = set(self.applied(conn))
        return [n for n in self.names if n not in done]

    def apply(self, conn: sqlite3.Connection) -> int:
        """Apply what is pending, through sqlite-utils; how many were pending."""
        pending = len(self.pending(conn))
        if pending:
            import sqlite_utils

            self._migrations().apply(sqlite_utils.Database(conn))
        return pending

    def _migrations(self) -> Migrations:
        from sqlite_utils.migrations import Migrations

        real = Migrations(self.name)
        for name, fn, transactional in self._steps:
            real(name=name, transactional=transactional)(fn)
        return real


migrations = LazyMigrations()


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
    db.table("articles").enable_fts(["title", "summary", "body"], fts_version="FTS5",
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

    Held in memory it grew with every recent article, too large at thousands of
    feeds. Signatures stored before this version used other hashes, so they
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


@migrations()
def m008_pages_to_come(db: sqlite_utils.Database) -> None:
    """Articles stored from their feed's text whose page is still to come: a page that
    was slow, or over the pages a feed may fetch in one poll. Taken in later polls."""
    db.executescript("""
    ALTER TABLE articles ADD COLUMN page_pending INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX articles_page_pending ON articles(feed, id) WHERE page_pending = 1;
    """)


@migrations()
def m009_leases_and_daemons(db: sqlite_utils.Database) -> None:
    """Feeds are claimed for a while by the daemon polling them; daemons say they live."""
    db.executescript("""
    ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
    ALTER TABLE feeds ADD COLUMN lease_until TEXT;
    CREATE TABLE daemons (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        rules_hash TEXT NOT NULL,
        config_hash TEXT NOT NULL
    );
    """)


@migrations()
def m010_source_memo(db: sqlite_utils.Database) -> None:
    """What a source that is not a feed remembers between polls, as the service wrote it
    (JSON): a sitemap's validators per sitemap URL, a section page's links."""
    db.executescript("ALTER TABLE feeds ADD COLUMN memo TEXT;")


@migrations()
def m011_websub(db: sqlite_utils.Database) -> None:
    """WebSub subscriptions: the hub, topic, callback and secret of each feed pushed to
    us, and its lease, kept across restarts so it is renewed in time and ended when the
    feed is removed."""
    db.executescript("""
    CREATE TABLE websub (
        feed TEXT PRIMARY KEY,
        hub TEXT NOT NULL,
        topic TEXT NOT NULL,
        callback_id TEXT NOT NULL UNIQUE,
        secret TEXT NOT NULL,
        state TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        lease_until TEXT
    );
    """)


@migrations()
def m012_alert_feedback(db: sqlite_utils.Database) -> None:
    """People's verdicts on alerts ("not relevant"), kept by rule: the counts outlive the
    matches they were given on, which retention removes. Rules muted for a while."""
    db.executescript("""
    CREATE TABLE alert_feedback (
        match_id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        verdict TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX alert_feedback_rule ON alert_feedback(rule);
    CREATE TABLE rule_mutes (
        rule TEXT PRIMARY KEY,
        muted_until TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX matches_created ON matches(created_at);
    """)


@migrations()
def m013_console_feeds(db: sqlite_utils.Database) -> None:
    """Feeds paused from the console (no daemon sharing the database polls them);
    mutes that drop what they hold instead of sending it as a digest, and the
    'dropped' status that keeps those deliveries visible."""
    db.executescript("""
    ALTER TABLE feeds ADD COLUMN paused_at TEXT;
    ALTER TABLE rule_mutes ADD COLUMN drop_held INTEGER NOT NULL DEFAULT 0;
    """)
    # A CHECK constraint cannot be altered in SQLite: the table is rebuilt from its own
    # text (whatever columns earlier migrations added), with its indexes.
    table = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' "
                       "AND name = 'deliveries'").fetchone()[0]
    wider = table.replace("'sent', 'dead')", "'sent', 'dead', 'dropped')", 1)
    if wider == table:
        raise RuntimeError("migration 013: deliveries' status constraint not found")
    indexes = [r[0] for r in db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries' "
        "AND sql IS NOT NULL")]
    # In the migration's own transaction: all of it, or none.
    for sql in (wider.replace("deliveries", "deliveries_013", 1),
                # a delivery whose match is gone (deleted while foreign keys were not
                # enforced) would fail the copy: the cascade it missed, done now
                "INSERT INTO deliveries_013 SELECT * FROM deliveries "
                "WHERE match_id IN (SELECT id FROM matches)",
                "DROP TABLE deliveries",
                "ALTER TABLE deliveries_013 RENAME TO deliveries", *indexes):
        db.execute(sql)


@migrations()
def m014_web_sessions(db: sqlite_utils.Database) -> None:
    """The web console's logins, kept so that they outlive a restart and every `watcher
    web` process on the database knows them (a digest of each token, never the token);
    the archive's newest-first order as an index."""
    db.executescript("""
    CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        credential TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX web_sessions_name ON web_sessions(name);
    CREATE INDEX web_sessions_expires ON web_sessions(expires_at);
    CREATE INDEX deliveries_story_id ON deliveries(story_id);
    """)
    # The archive's order (newest first), walked by a broad search instead of sorting
    # every match.
    db.execute("CREATE INDEX articles_newest ON articles(COALESCE(published_at, fetched_at), id)")
