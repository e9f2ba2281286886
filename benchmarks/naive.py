"""The naive baseline: what a first script would do, one thing after another.

A sequential loop: httpx (sync, one keep-alive client) -> feedparser (JSON Feed by
json.loads, which feedparser cannot read) -> for each entry: fetch the page ->
trafilatura -> sqlite3 insert (plus an FTS5 row, as watcher stores one) -> one regex
per rule -> append matching alerts to a jsonl file. No conditional GET, no
concurrency, no safety checks. watcher's cold cycle is compared against it.

    python -m benchmarks.naive --feeds urls.txt --db naive.db --out alerts.jsonl --stats s.json
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import feedparser
import httpx
import trafilatura


def _phrase(p: str) -> str:
    # Any run of non-letters between words, optional plural: close to watcher's rules.
    return r"\b" + r"[\W_]+".join(re.escape(w) for w in p.split()) + r"(?:s|es)?\b"


def _rule(any_: Sequence[str], all_: Sequence[str] = (), none: Sequence[str] = ()
          ) -> re.Pattern[str]:
    """One regex per rule: lookaheads for `all`, a negative one for `none`."""
    parts = ["^"]
    parts += [f"(?!.*{_phrase(p)})" for p in none]
    parts += [f"(?=.*{_phrase(p)})" for p in all_]
    if any_:
        parts.append(f"(?=.*(?:{'|'.join(_phrase(p) for p in any_)}))")
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


# The same rules as the benchmark's rules.yaml (benchmarks/e2e.py: RULES_YAML).
RULES: dict[str, re.Pattern[str]] = {
    "tactical-missile": _rule(["tactical missile"], none=["video game"]),
    "korean-peninsula-weapons": _rule(["North Korea", "Pyongyang", "Kim Jong Un"],
                                      ["missile"]),
    "missile-defence": _rule(["missile defence", "missile defense", "air defence",
                              "air defense"]),
    "wildfire-evacuations": _rule([], ["wildfire", "evacuation"]),
}


def entries(body: bytes, content_type: str) -> list[dict[str, str]]:
    if "json" in content_type:
        return [{"id": str(i.get("id")), "link": i.get("url") or "", "title": i.get("title", ""),
                 "summary": i.get("summary", "")} for i in json.loads(body)["items"]]
    parsed = feedparser.parse(body)
    return [{"id": e.get("id") or e.get("link", ""), "link": e.get("link", ""),
             "title": e.get("title", ""), "summary": e.get("summary", "")}
            for e in parsed.entries]


def run(feed_urls: list[str], db_path: Path, out: Path) -> dict[str, float | int]:
    db = sqlite3.connect(db_path)
    db.executescript("""
        CREATE TABLE IF NOT EXISTS articles (id INTEGER PRIMARY KEY, feed TEXT, entry_id TEXT,
            url TEXT, title TEXT, summary TEXT, body TEXT, UNIQUE(feed, entry_id));
        CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(title, summary, body);
    """)
    counts = {"feeds": 0, "articles": 0, "alerts": 0}
    with httpx.Client(timeout=30) as client, out.open("a", encoding="utf-8") as alerts:
        for url in feed_urls:
            resp = client.get(url)
            counts["feeds"] += 1
            for e in entries(resp.content, resp.headers.get("content-type", "")):
                body = ""
                if e["link"]:
                    page = client.get(e["link"])
                    body = trafilatura.extract(page.text, url=e["link"],
                                               include_comments=False,
                                               favor_precision=True) or ""
                cur = db.execute(
                    "INSERT OR IGNORE INTO articles (feed, entry_id, url, title, summary, body) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (url, e["id"], e["link"], e["title"], e["summary"], body))
                if not cur.rowcount:
                    continue
                db.execute("INSERT INTO articles_fts (rowid, title, summary, body) "
                           "VALUES (?, ?, ?, ?)", (cur.lastrowid, e["title"], e["summary"], body))
                counts["articles"] += 1
                text = f"{e['title']}\n{e['summary']}\n{body}"
                for name, rx in RULES.items():
                    if rx.search(text):
                        alerts.write(json.dumps({"rule": name, "title": e["title"],
                                                 "url": e["link"]}) + "\n")
                        counts["alerts"] += 1
            db.commit()
    db.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=Path, required=True, help="file with one feed URL a line")
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="alerts, one JSON object a line")
    ap.add_argument("--stats", type=Path, required=True)
    args = ap.parse_args()
    urls = args.feeds.read_text().split()
    started, cpu = time.perf_counter(), time.process_time()
    counts = run(urls, args.db, args.out)
    args.stats.write_text(json.dumps({
        **counts, "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
