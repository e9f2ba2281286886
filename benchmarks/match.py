"""Matching benchmark: one compiled matcher vs one regex per rule.

    python -m benchmarks.match [--articles 200] [--sizes 10,1000,10000]

Generates rule sets of 10, 1,000 and 10,000 rules (phrases of one to three words,
some with AND / NOT, some prefixes and proximity) and a corpus of 1,000-word
articles written in 2,000 common words of the same made-up vocabulary (rules use
the other 28,000, as real rules name rarer things), with rule phrases planted in each,
then prints microseconds per article for watcher's matcher and for a naive loop
that runs one compiled regex per rule, and the speed-up.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from datetime import UTC, datetime

import yaml

from watcher.core.models import Article
from watcher.rules import compile_rules, parse_rules

SYLLABLES = ["ka", "ro", "mi", "sel", "tan", "dor", "vek", "lu", "pra", "zin", "mo", "ret",
             "sa", "bri", "gon", "tel", "ur", "fa", "nix", "pol"]


def vocabulary(rng: random.Random, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def make_rules(rng: random.Random, vocab: list[str], n: int) -> list[dict[str, object]]:
    rules = []
    rare = vocab[2000:]  # articles are written in the 2,000 common words
    for i in range(n):
        words = rng.sample(rare, 3)
        kind = i % 5
        if kind == 0:
            query = f'"{words[0]} {words[1]}"'
        elif kind == 1:
            query = f'"{words[0]} {words[1]} {words[2]}"'
        elif kind == 2:
            query = f'{words[0]} AND "{words[1]} {words[2]}" AND NOT {rng.choice(rare)}'
        elif kind == 3:
            query = f'"{words[0]} {words[1]}"~3'
        else:
            query = f'{words[0][:-1]}* AND "{words[1]} {words[2]}"'
        rules.append({"name": f"r{i}", "query": query, "notify": ["c"]})
    return rules


def make_articles(rng: random.Random, vocab: list[str], rules: list[dict[str, object]],
                  n: int, words: int = 1000) -> list[Article]:
    common = vocab[:2000]
    out = []
    for i in range(n):
        text = [rng.choice(common).capitalize() if rng.random() < 0.05 else rng.choice(common)
                for _ in range(words)]
        for _ in range(3):  # plant a few rule phrases so some rules fire
            q = str(rng.choice(rules)["query"])
            phrase = re.findall(r'"([^"]+)"', q)
            if phrase:
                at = rng.randrange(words)
                text[at:at] = phrase[0].split()
        body = " ".join(text[:words])
        out.append(Article(feed="bench", entry_id=str(i), url=None, title=" ".join(text[:8]),
                           summary=" ".join(text[8:40]), body=body, text_source="page",
                           published=None, fetched_at=datetime(2024, 1, 1, tzinfo=UTC)))
    return out


def naive_regexes(rules: list[dict[str, object]]) -> list[re.Pattern[str]]:
    """One regex per rule: its phrases as alternatives, words separated by non-words."""
    out = []
    for r in rules:
        phrases = re.findall(r'"([^"]+)"|(\w+)\*', str(r["query"]))
        alts = [r"\W+".join(map(re.escape, p.split())) if p else re.escape(w) + r"\w*"
                for p, w in phrases]
        out.append(re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.IGNORECASE))
    return out


def bench(fn, articles: list[Article], min_seconds: float = 1.0) -> float:
    """Microseconds per article (best of repeated passes)."""
    best = float("inf")
    spent = 0.0
    while spent < min_seconds or best == float("inf"):
        t0 = time.perf_counter()
        for a in articles:
            fn(a)
        dt = time.perf_counter() - t0
        spent += dt
        best = min(best, dt / len(articles) * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument("--sizes", default="10,1000,10000")
    args = ap.parse_args()
    rng = random.Random(4)
    vocab = vocabulary(rng, 30_000)
    print(f"{'rules':>6}  {'compile s':>9}  {'matcher us/article':>18}  "
          f"{'naive us/article':>16}  {'speed-up':>8}  {'matches/article':>15}")
    for size in (int(s) for s in args.sizes.split(",")):
        rules = make_rules(rng, vocab, size)
        articles = make_articles(rng, vocab, rules, args.articles)
        t0 = time.perf_counter()
        compiled = compile_rules(parse_rules(yaml.safe_dump({"rules": rules}), "bench.yaml"))
        compiled.warm()
        compile_s = time.perf_counter() - t0
        fired = sum(len(compiled.match(a)) for a in articles) / len(articles)
        ours = bench(compiled.match, articles)
        regexes = naive_regexes(rules)
        sample = articles[: max(5, len(articles) // (1 + size // 500))]

        def naive(a: Article, regexes: list[re.Pattern[str]] = regexes) -> int:
            text = f"{a.title}\n{a.summary}\n{a.body}"
            return sum(1 for rx in regexes if rx.search(text))

        theirs = bench(naive, sample, min_seconds=0.5)
        print(f"{size:>6}  {compile_s:>9.2f}  {ours:>18.0f}  {theirs:>16.0f}  "
              f"{theirs / ours:>7.1f}x  {fired:>15.1f}")


if __name__ == "__main__":
    main()
