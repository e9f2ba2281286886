"""The SQLite store's write path alone: a cold cycle's articles replayed into a fresh file.

    python -m benchmarks.e2e --feeds 100 --items 20 --runs 1 --no-latency --no-naive --keep
    python -m benchmarks.store_write --db /tmp/watcher-bench-XXXX/cold0/watcher.db \\
        --per-tx 4 20 100 --variants plain no-fts no-keys --rounds 2

Each article goes through what ingest does for it (band keys, story candidates,
add_article with its keys, record_matches), `--per-tx` articles to a transaction.
Variants take a part out to show its cost (the schema is changed in the copy only):
no-fts drops the full-text triggers, no-keys stores no story keys. Rounds alternate
the configurations; CPU time is the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from watcher.core.identity import band_keys, from_bytes
from watcher.core.intents import Matched, NewArticle
from watcher.core.models import Article
from watcher.store.sqlite import SqliteStore
from watcher.store.sqlite.articles import _article

VARIANTS = ("plain", "no-fts", "no-keys")


def load(db: Path) -> list[Article]:
    src = sqlite3.connect(db)
    src.row_factory = sqlite3.Row
    rows = [dict(r) for r in src.execute("SELECT * FROM articles ORDER BY id")]
    src.close()
    return [replace(_article(r), id=None, story_id=None, signature=r["signature"])
            for r in rows]


def replay(articles: list[Article], per_tx: int, variant: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "w.db")
        if variant == "no-fts":
            for trigger in ("articles_ai", "articles_ad", "articles_au"):
                store.db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        now = datetime.now(UTC)
        since = datetime(2000, 1, 1, tzinfo=UTC)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(articles), per_tx):
            with store.transaction():
                for a in articles[i:i + per_tx]:
                    keys: tuple[int, ...] = ()
                    if a.signature is not None and variant != "no-keys":
                        keys = tuple(band_keys(from_bytes(a.signature)))
                        store.story_candidates(keys, since)
                    article_id = store.add_article(NewArticle(a, None, keys))
                    assert article_id is not None
                    store.record_matches(Matched(article_id, article_id, (), (), now))
        out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True, help="a database from e2e --keep")
    ap.add_argument("--per-tx", type=int, nargs="+", default=[4, 20, 100])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    articles = load(args.db)
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for per_tx in args.per_tx:
            for variant in args.variants:
                r = replay(articles, per_tx, variant)
                results.setdefault((per_tx, variant), []).append(r)
                print(f"{len(articles)} articles, {per_tx:4d} a transaction, {variant:8s}: "
                      f"wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s", flush=True)
    print("\n| articles a transaction | variant | CPU s (each round) | CPU ms an article |")
    print("|---|---|---|---|")
    for (per_tx, variant), rs in results.items():
        cpus = sorted(r["cpu_s"] for r in rs)
        print(f"| {per_tx} | {variant} | {' / '.join(f'{c:.2f}' for c in cpus)} | "
              f"{1e3 * cpus[len(cpus) // 2] / len(articles):.2f} |")


if __name__ == "__main__":
    main()
