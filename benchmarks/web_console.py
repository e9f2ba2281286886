"""The web console's heavy reads on a large archive: a rule's preview over 30 days
(full-text candidates, then the matcher) and the alerts page, through the ASGI
client on a real SQLite file.

    python -m benchmarks.web_console --articles 200000 --alerts 20000

Builds the database once in --folder (kept between runs), then times each request
--runs times and prints the median and the 95th percentile. With --database URL, the
same on PostgreSQL (a database filled with `watcher db copy` from the SQLite one).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from tests.web_helpers import NOW, Web, make_web, write_config
from watcher.core.intents import Matched, NewArticle
from watcher.core.models import Article, Hit, Match
from watcher.settings import load_settings
from watcher.store import open_store
from watcher.web.app import create_app

WORDS = ["minister", "government", "election", "market", "shares", "storm", "flood", "police",
         "court", "health", "school", "energy", "prices", "trade", "talks", "border", "army",
         "navy", "rocket", "launch", "summit", "bank", "rates", "inflation", "strike",
         "union", "workers", "harbour", "tram", "council", "budget", "vote"]
RULES = """\
rules:
  - name: arms
    query: '"tactical missile" OR (missile AND test)'
    notify: [console]
"""


def build(web, articles: int, alerts: int, seed: int = 1) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    start = time.perf_counter()
    with web.store.transaction():
        for i in range(articles):
            body = " ".join(rng.choice(WORDS) for _ in range(120))
            if i % 200 == 0:
                body += " A tactical missile was shown."
            when = NOW - timedelta(minutes=int(i * 60 * 24 * 60 / articles))  # 60 days
            web.store.add_article(NewArticle(Article(
                feed="wire", entry_id=f"e{i}", url=f"https://news.test/{i}",
                title=" ".join(rng.choice(WORDS) for _ in range(8)), summary="", body=body,
                text_source="page", published=when, fetched_at=when)))
    ids = [a.id for batch in web.store.iter_articles(NOW - timedelta(days=61))
           for a in batch][:alerts]
    m = Match("arms", (Hit("body", "missile", 0, 7, "missile"),), "body", "a missile", "q")
    for article_id in ids:
        web.store.record_matches(Matched(article_id, article_id, (m,), (), NOW))
    print(f"built {articles} articles, {len(ids)} alerts in "
          f"{time.perf_counter() - start:.0f} s")


def on_server(folder: Path, url: str) -> Web:
    settings = replace(load_settings(write_config(folder)), database=url)
    store = open_store(url)
    app = create_app(settings, store, data_dir=folder / "data", now=lambda: NOW)
    return Web(TestClient(app, base_url="http://127.0.0.1:8080"), store, settings, folder)


def timed(call, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = call()
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text[:200]
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--articles", type=int, default=200_000)
    p.add_argument("--alerts", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--folder", type=Path, default=Path("/tmp/watcher-web-bench"))
    p.add_argument("--database", help="a postgresql:// URL instead of the SQLite file")
    args = p.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    fresh = not (args.folder / "data" / "w.db").exists() and not args.database
    web = on_server(args.folder, args.database) if args.database else make_web(args.folder)
    (args.folder / "rules.yaml").write_text(RULES)
    if fresh:
        build(web, args.articles, args.alerts)
    head = {"Authorization": f"Bearer {web.admin_token}"}
    preview = timed(lambda: web.client.post(
        "/api/v1/rules/preview", headers=head,
        json={"rules_yaml": RULES, "rule": "arms", "since": "30d"}), args.runs)
    body = web.client.post("/api/v1/rules/preview", headers=head,
                           json={"rules_yaml": RULES, "rule": "arms", "since": "30d"}).json()
    web.login()
    alerts = timed(lambda: web.client.get("/alerts"), args.runs)
    # Every synthetic article holds most of the 32 words: "harbour tram" finds nearly
    # all of them (the worst case); the phrase, one article in 200 (a real search).
    archive = timed(lambda: web.client.get("/archive?q=harbour+tram"), args.runs)
    rare = timed(lambda: web.client.get('/archive?q="tactical+missile"'), args.runs)
    print(f"preview 30d: {body['count']} matches; median {preview[0] * 1000:.0f} ms, "
          f"p95 {preview[1] * 1000:.0f} ms")
    print(f"alerts page: median {alerts[0] * 1000:.0f} ms, p95 {alerts[1] * 1000:.0f} ms")
    print(f"archive page, words in every article: median {archive[0] * 1000:.0f} ms, "
          f"p95 {archive[1] * 1000:.0f} ms")
    print(f"archive page, a phrase in 1 article of 200: median {rare[0] * 1000:.0f} ms, "
          f"p95 {rare[1] * 1000:.0f} ms")
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    web.store.close()


if __name__ == "__main__":
    main()
