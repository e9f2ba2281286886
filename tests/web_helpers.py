"""A web console over a real SQLite file, its config and rules in a temporary
folder, for the ASGI test client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from watcher.core.alerts import new_deliveries
from watcher.core.intents import Matched, NewArticle
from watcher.core.models import Article, Feed
from watcher.rules import compile_rules, load_rules
from watcher.settings import Settings, load_settings
from watcher.store import Store, open_store
from watcher.web.app import create_app
from watcher.web.auth import TOKEN_FILE

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
RULES = """\
# our rules; this comment must survive a save
rules:
  - name: arms
    query: '"tactical missile"'   # inline comment
    notify: [console]
"""
HOSTILE = {
    "script": "<script>alert('x')</script>",
    "img": '<img src=x onerror="alert(1)">',
    "textarea": "</textarea><b>out</b>",
    "rtl": "gnp.\u202eexe",
}


@dataclass
class Web:
    client: TestClient
    store: Store
    settings: Settings
    folder: Path

    @property
    def admin_token(self) -> str:
        return (self.folder / "data" / TOKEN_FILE).read_text().strip()

    def login(self) -> str:
        """Log in with the token link; the session's CSRF token."""
        r = self.client.get(f"/login?token={self.admin_token}", follow_redirects=False)
        assert r.status_code == 303, r.text
        page = self.client.get("/rules").text
        return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def write_config(folder: Path, web: str = "", rules: str = RULES) -> Path:
    (folder / "data").mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    config = folder / "watcher.yaml"
    config.write_text(
        "database: data/w.db\nrules: rules.yaml\n"
        "feeds:\n  - {name: wire, url: 'http://127.0.0.1:9/feed.xml'}\n"
        "channels:\n  console: {type: console}\n" + web, encoding="utf-8")
    return config


def add_article(store: Store, entry: str, title: str, body: str, url: str | None = None,
                when: datetime = NOW - timedelta(days=1), feed: str = "wire") -> int:
    article_id = store.add_article(NewArticle(Article(
        feed=feed, entry_id=entry, url=url, title=title, summary="", body=body,
        text_source="feed-summary", published=when, fetched_at=when)))
    assert article_id is not None
    return article_id


def match_all(store: Store, settings: Settings, when: datetime = NOW) -> int:
    """Match every unmatched article with the saved rules, as the daemon does."""
    ruleset = load_rules(settings.rules)
    compiled = compile_rules(ruleset)
    policy = {r.name: list(r.notify) for r in ruleset.rules}
    made = 0
    for article in store.unmatched_articles():
        assert article.id is not None
        story = store.story_of(article.id)
        assert story is not None
        matches = compiled.match(article)
        made += store.record_matches(Matched(article.id, story.id, tuple(matches),
                                             new_deliveries(article, story, matches, policy),
                                             when))
    return made


def make_web(folder: Path, web: str = "") -> Web:
    settings = load_settings(write_config(folder, web))
    store = open_store(settings.database)
    store.sync_feeds([Feed(name="wire", url="http://127.0.0.1:9/feed.xml", interval_s=600)])
    app = create_app(settings, store, now=lambda: NOW)
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    return Web(client, store, settings, folder)
