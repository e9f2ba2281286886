"""watcher.rules.explain (why a rule held or not) and watcher.rules.narrow (the
full-text search that finds a rule's candidates), the latter on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.core.intents import NewArticle
from watcher.core.models import Article
from watcher.rules import compile_rules, parse_rules
from watcher.rules.explain import explain
from watcher.rules.narrow import candidate_query
from watcher.rules.query import parse_query
from watcher.store import open_store

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def art(title: str, body: str = "", feed: str = "f", language: str | None = "en",
        tags: tuple[str, ...] = ()) -> Article:
    return Article(feed=feed, entry_id=title, url=None, title=title, summary="", body=body,
                   text_source="feed-summary", published=None, fetched_at=T0,
                   language=language, tags=tags, id=7)


RULES = """
rules:
  - name: arms
    query: '"tactical missile" AND NOT drill'
    notify: [c]
  - name: scoped
    any: [strike]
    feeds: [wire]
    languages: [de]
    notify: [c]
"""


def test_explain_shows_each_term_where_it_held_and_the_verdict() -> None:
    ruleset = parse_rules(RULES)
    e = explain(ruleset, "arms", art("News", "Kim inspected new Tactical Missiles today."))
    assert e.matched and e.article_id == 7 and e.query.kind == "and" and e.query.held
    phrase, negation = e.query.children
    assert phrase.text == '"tactical missile"' and phrase.held
    place = phrase.places[0]
    assert (place.field, place.word, place.written) == ("body", 3, "Tactical Missiles")
    assert place.seen_as == "tactic missil"  # folded and stemmed, as the matcher sees it
    assert negation.kind == "not" and negation.held and not negation.children[0].held
    e2 = explain(ruleset, "arms", art("News", "A tactical missile drill."))
    assert not e2.matched and not e2.query.held
    assert not e2.query.children[1].held and e2.query.children[1].children[0].held


def test_explain_reports_the_rules_other_conditions() -> None:
    ruleset = parse_rules(RULES)
    e = explain(ruleset, "scoped", art("Strike!", feed="other", language="en"))
    assert e.query.held and not e.matched
    assert [(c.kind, c.held) for c in e.conditions] == [("feeds", False), ("languages", False)]
    ok = explain(ruleset, "scoped", art("Streik", "strike", feed="wire", language="de"))
    assert ok.matched and all(c.held for c in ok.conditions)
    with pytest.raises(KeyError):
        explain(ruleset, "nope", art("x"))


@pytest.mark.parametrize(("query", "narrowed"), [
    ('"tactical missile" AND NOT drill', True),
    ("missile OR rocket", True),
    ("/miss.*/ OR rocket", False),
    ("feed:wire", False),
    ("NOT drill AND missile", True),
])
def test_candidate_queries_narrow_what_the_index_can_find(query: str, narrowed: bool) -> None:
    assert (candidate_query(parse_query(query)) is not None) == narrowed


WORDS = ("news generously missiles Zürich happily running strikes national organization "
         "agreed tactical elections")
QUERIES = ("news", "generous", "missile", "zurich", "happily", "runs", "strike", "nation",
           "organize", "agree", '"tactical missiles"', "election OR nothing", "elect*",
           "missil* AND NOT happy")


@pytest.mark.parametrize("query", QUERIES)
def test_every_article_the_matcher_takes_is_a_candidate(query: str, tmp_path: Path) -> None:
    """The search finds a superset of what the rule matches, whatever form the words
    take: the index's stemmer and the matcher's differ."""
    store = open_store(tmp_path / "w.db")
    articles = [art(w, f"The {w} here.") for w in WORDS.split()]
    articles.append(art("pair", "Tactical missiles happily shown."))
    for i, a in enumerate(articles):
        store.add_article(NewArticle(Article(**{**a.__dict__, "id": None,
                                                "entry_id": str(i)})))
    rules = parse_rules(f"rules:\n  - name: r\n    query: '{query}'\n    notify: [c]\n")
    compiled = compile_rules(rules)
    matched = {a.title for a in articles if compiled.match(a)}
    assert matched, "the rule should match something here"
    cq = candidate_query(rules.trees["r"])  # type: ignore[index]
    assert cq is not None
    found = {a.title for a in store.search_articles(cq, T0 - timedelta(days=1))}
    assert matched <= found
    assert len(found) < len(articles)  # and it narrows
    store.close()
