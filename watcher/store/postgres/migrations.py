"""The PostgreSQL schema, versioned: version N is the Nth entry, applied once, in order.

It holds what the SQLite schema holds after its migrations, in PostgreSQL's types
(timestamptz, jsonb, bytea, a generated tsvector), plus the constraints that make
several daemons safe: one article per canonical URL, one delivery per (rule,
story, channel).
"""

from __future__ import annotations

_V1 = """
CREATE TABLE feeds (
    name text PRIMARY KEY,
    url text NOT NULL,
    configured_url text NOT NULL,
    title text,
    etag text,
    last_modified text,
    next_poll_at timestamptz,
    last_polled_at timestamptz,
    last_success_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since timestamptz,
    gone_at timestamptz,
    unhealthy_since timestamptz,
    hold_until timestamptz,
    lease_owner text,
    lease_until timestamptz
);
CREATE INDEX feeds_next_poll ON feeds (next_poll_at);

CREATE TABLE articles (
    id bigserial PRIMARY KEY,
    feed text NOT NULL,
    entry_id text NOT NULL,
    url text,
    title text NOT NULL DEFAULT '',
    summary text NOT NULL DEFAULT '',
    body text NOT NULL DEFAULT '',
    text_source text NOT NULL,
    page_error text,
    author text,
    language text,
    sitename text,
    tags jsonb NOT NULL DEFAULT '[]',
    published_at timestamptz,
    fetched_at timestamptz NOT NULL,
    matched_at timestamptz,
    canonical_url text,
    story_id bigint,
    signature bytea,
    page_pending boolean NOT NULL DEFAULT false,
    search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A')
        || to_tsvector('english', summary || ' ' || body)) STORED,
    UNIQUE (feed, entry_id)
);
CREATE INDEX articles_url ON articles (url);
CREATE INDEX articles_fetched ON articles (fetched_at);
CREATE INDEX articles_published ON articles (published_at);
CREATE UNIQUE INDEX articles_canonical ON articles (canonical_url)
    WHERE canonical_url IS NOT NULL;
CREATE INDEX articles_story ON articles (story_id);
CREATE INDEX articles_unmatched ON articles (id) WHERE matched_at IS NULL;
CREATE INDEX articles_page_pending ON articles (feed, id) WHERE page_pending;
CREATE INDEX articles_search ON articles USING gin (search);

CREATE TABLE article_sources (
    feed text NOT NULL,
    entry_id text NOT NULL,
    article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    url text,
    title text,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (feed, entry_id)
);
CREATE INDEX article_sources_article ON article_sources (article_id);

CREATE TABLE story_keys (
    key bigint NOT NULL,
    article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    PRIMARY KEY (key, article_id)
);
CREATE INDEX story_keys_article ON story_keys (article_id);

CREATE TABLE pruned_entries (
    feed text NOT NULL,
    entry_id text NOT NULL,
    pruned_at timestamptz NOT NULL,
    PRIMARY KEY (feed, entry_id)
);

CREATE TABLE matches (
    id bigserial PRIMARY KEY,
    article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    rule text NOT NULL,
    query text NOT NULL,
    field text NOT NULL,
    snippet text NOT NULL,
    hits jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (article_id, rule)
);

CREATE TABLE deliveries (
    id text PRIMARY KEY,
    match_id bigint NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    article_id bigint NOT NULL,
    story_id bigint,
    rule text NOT NULL,
    channel text NOT NULL,
    alert jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'retrying', 'sent', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    claimed_until timestamptz,
    claimed_by text,
    last_attempt_at timestamptz,
    last_error text,
    sent_at timestamptz,
    classified_at timestamptz,
    held_until timestamptz,
    digest_id text,
    requeued_at timestamptz
);
CREATE UNIQUE INDEX deliveries_story ON deliveries (rule, story_id, channel);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_digest ON deliveries (digest_id);
CREATE INDEX deliveries_unclassified ON deliveries (created_at) WHERE classified_at IS NULL;
CREATE INDEX deliveries_article ON deliveries (article_id);

CREATE TABLE daemons (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    rules_hash text NOT NULL,
    config_hash text NOT NULL
);
"""

# (name, SQL); never edit an entry once released: add one.
# People's verdicts on alerts, kept by rule (the counts outlive the matches); mutes.
_ALERT_FEEDBACK = """
CREATE TABLE alert_feedback (
    match_id bigint PRIMARY KEY,
    rule text NOT NULL,
    verdict text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX alert_feedback_rule ON alert_feedback (rule);
CREATE TABLE rule_mutes (
    rule text PRIMARY KEY,
    muted_until timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX matches_created ON matches (created_at);
"""

# The web console's logins (a digest of each token), shared by every process; the
# archive's newest-first order as an index, walked by a broad search.
_WEB_SESSIONS = """
CREATE TABLE web_sessions (
    token_hash text PRIMARY KEY,
    name text NOT NULL,
    credential text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_name ON web_sessions (name);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
CREATE INDEX deliveries_story_id ON deliveries (story_id);
CREATE INDEX articles_newest ON articles ((COALESCE(published_at, fetched_at)) DESC, id DESC);
"""

MIGRATIONS: list[tuple[str, str]] = [
    ("initial", _V1),
    # What a source that is not a feed remembers between polls, as the service wrote
    # it (JSON, opaque here): a sitemap's validators per URL, a section page's links.
    ("source_memo", "ALTER TABLE feeds ADD COLUMN memo text;"),
    # WebSub subscriptions, kept across restarts for renewal and removal.
    ("websub", """CREATE TABLE websub (
        feed text PRIMARY KEY,
        hub text NOT NULL,
        topic text NOT NULL,
        callback_id text NOT NULL UNIQUE,
        secret text NOT NULL,
        state text NOT NULL,
        requested_at timestamptz NOT NULL,
        lease_until timestamptz
    );"""),
    ("alert_feedback", _ALERT_FEEDBACK),
    # 013: feeds paused from the console; mutes that drop what they hold, and the
    # 'dropped' status that keeps those deliveries visible.
    ("console_feeds", """ALTER TABLE feeds ADD COLUMN paused_at timestamptz;
    ALTER TABLE rule_mutes ADD COLUMN drop_held boolean NOT NULL DEFAULT false;
    ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
        CHECK (status IN ('pending', 'retrying', 'sent', 'dead', 'dropped'));"""),
    ("web_sessions", _WEB_SESSIONS),  # SQLite's m014
]
