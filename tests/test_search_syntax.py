"""watcher.core.search: one everyday syntax, written for FTS5 and for tsquery."""

from __future__ import annotations

import pytest

from watcher.core.errors import StoreError
from watcher.core.search import parse_search, to_fts5, to_tsquery


@pytest.mark.parametrize(("query", "fts5", "tsquery"), [
    ("missile", '"missile"', "('missile')"),
    ("tactical missile", '("tactical" AND "missile")', "(('tactical') & ('missile'))"),
    ('"tactical missile"', '"tactical missile"', "('tactical' <-> 'missile')"),
    ("missile OR rocket", '("missile" OR "rocket")', "(('missile') | ('rocket'))"),
    ("missile -drill", '(("missile") NOT "drill")', "(('missile') & !('drill'))"),
    ("missile NOT drill", '(("missile") NOT "drill")', "(('missile') & !('drill'))"),
    ("missil*", '"missil"*', "('missil':*)"),
    ("(missile OR rocket) test", '(("missile" OR "rocket") AND "test")',
     "((('missile') | ('rocket')) & ('test'))"),
    ("tactical-missile", '"tactical missile"', "('tactical' <-> 'missile')"),
    ("Kim's AND \"N. Korea\"", '("kim s" AND "n korea")',
     "(('kim' <-> 's') & ('n' <-> 'korea'))"),
    ("NOT NOT missile", '"missile"', "('missile')"),
    ("o'neil", '"o neil"', "('o' <-> 'neil')"),
])
def test_everyday_syntax(query: str, fts5: str, tsquery: str) -> None:
    node = parse_search(query)
    assert to_fts5(node) == fts5
    assert to_tsquery(node) == tsquery


@pytest.mark.parametrize(("query", "why"), [
    ("", "empty"),
    ("   ", "empty"),
    ("-missile", "only what to leave out"),
    ("NOT missile", "only what to leave out"),
    ("a OR -b", "only what to leave out"),
    ("(missile", "not closed"),
    ("missile)", "without an opening"),
    ("***", "no word"),
    ("OR", "expected a word"),
])
def test_unreadable_queries_are_refused_with_the_reason(query: str, why: str) -> None:
    with pytest.raises(StoreError, match=why):
        parse_search(query)


def test_an_unclosed_quote_is_refused() -> None:
    with pytest.raises(StoreError, match=r"cannot run query .*a quote is not closed"):
        parse_search('"unbalanced')
