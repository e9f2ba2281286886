"""watcher.core.decide, watcher.core.alerts and watcher.core.digest.classify: the pure
decisions, as tables. Entries and what the store knows in, intents out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.stories import OTHER, PRESS_STATEMENTS, WIRE, WIRE_TITLE, press_statement
from watcher.core.alerts import delivery_id, new_deliveries
from watcher.core.decide import (
    AddArticle,
    AddSource,
    fresh_entries,
    place_in_story,
    plan_articles,
    plan_entries,
)
from watcher.core.digest import Policy, classify, digest_id
from watcher.core.identity import (
    distinct_content,
    from_bytes,
    signature,
    similarity,
    to_bytes,
)
from watcher.core.intents import HoldCandidate, NewSource
from watcher.core.models import Article, Entry, Hit, Match, StoryRef
from watcher.core.records import StoryCandidate

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def entry(i: str, link: str | None = None) -> Entry:
    return Entry(entry_id=i, link=link, title=f"title {i}", summary="", content="",
                 published=None)


def article(i: str, canonical: str | None) -> Article:
    return Article(feed="f", entry_id=i, url=canonical, title=i, summary="", body="",
                   text_source="page", published=None, fetched_at=NOW,
                   canonical_url=canonical)


@pytest.mark.parametrize(("listed", "known", "fresh"), [
    (["c", "b", "a"], [], ["a", "b", "c"]),  # newest first in the feed: oldest first out
    (["c", "b", "a"], ["b"], ["a", "c"]),
    (["c", "b", "a"], ["a", "b", "c"], []),
    (["b", "a", "b"], [], ["a", "b"]),  # a feed repeating an entry: once
    ([], ["a"], []),
])
def test_fresh_entries(listed: list[str], known: list[str], fresh: list[str]) -> None:
    assert [e.entry_id for e in fresh_entries([entry(i) for i in listed], known)] == fresh


@pytest.mark.parametrize(("canonical", "stored", "build", "sources"), [
    ({"a": "u1", "b": "u2"}, {}, ["a", "b"], []),
    ({"a": "u1", "b": "u2"}, {"u2": 7}, ["a"], [("b", 7)]),
    ({"a": None, "b": "u2"}, {"u2": 7, "": 9}, ["a"], [("b", 7)]),  # no link: always built
    ({"a": "u1", "b": "u1"}, {"u1": 3}, [], [("a", 3), ("b", 3)]),
])
def test_plan_entries(canonical: dict[str, str | None], stored: dict[str, int],
                      build: list[str], sources: list[tuple[str, int]]) -> None:
    fresh = [entry(i, f"https://x.test/{i}") for i in canonical]
    plan = plan_entries("f", fresh, canonical, stored, NOW)
    assert [e.entry_id for e in plan.build] == build
    assert [(s.entry_id, s.article_id) for s in plan.sources] == sources
    assert all(s == NewSource(s.article_id, "f", s.entry_id, f"https://x.test/{s.entry_id}",
                              f"title {s.entry_id}", NOW) for s in plan.sources)


@pytest.mark.parametrize(("articles", "stored", "steps"), [
    # new articles at distinct URLs
    ([("a", "u1"), ("b", "u2")], {}, [("add", "a"), ("add", "b")]),
    # the page named a canonical URL already stored (or stored meanwhile by another feed)
    ([("a", "u1"), ("b", "u2")], {"u2": 5}, [("add", "a"), ("source", "b", 5)]),
    # two entries of this feed are one page: the second is a copy of the first
    ([("a", "u1"), ("b", "u1"), ("c", "u1")], {},
     [("add", "a"), ("source-of", "b", "a"), ("source-of", "c", "a")]),
    # no canonical URL at all: never a copy by URL
    ([("a", None), ("b", None)], {}, [("add", "a"), ("add", "b")]),
])
def test_plan_articles(articles: list[tuple[str, str | None]], stored: dict[str, int],
                       steps: list[tuple[object, ...]]) -> None:
    got: list[tuple[object, ...]] = []
    for step in plan_articles([article(i, c) for i, c in articles], stored):
        if isinstance(step, AddArticle):
            got.append(("add", step.article.entry_id))
        elif isinstance(step, AddSource) and step.article_id is not None:
            got.append(("source", step.article.entry_id, step.article_id))
        else:
            got.append(("source-of", step.article.entry_id, step.of_entry))
    assert got == steps


def _candidate(article_id: int, story: int, text: str) -> StoryCandidate:
    sig = signature(text)
    assert sig is not None
    return StoryCandidate(article_id, StoryRef(story, "f", f"e{story}"), to_bytes(sig))


WIRE_TEXT, OTHER_TEXT = "\n\n".join(WIRE), "\n\n".join(OTHER)
CUT_TEXT = "\n\n".join(WIRE[1:])


@pytest.mark.parametrize(("candidates", "threshold", "story"), [
    ([], 0.5, None),
    ([(1, 1, OTHER_TEXT)], 0.5, None),  # same event, different report: its own story
    ([(1, 1, OTHER_TEXT), (2, 2, WIRE_TEXT)], 0.5, 2),
    ([(2, 2, WIRE_TEXT), (3, 1, CUT_TEXT)], 0.5, 1),  # the most similar copy wins
    ([(2, 2, WIRE_TEXT)], 0.99, None),  # above the threshold only
])
def test_place_in_story(candidates: list[tuple[int, int, str]], threshold: float,
                        story: int | None) -> None:
    sig = signature(CUT_TEXT)
    assert sig is not None
    hit = place_in_story(sig, [_candidate(*c) for c in candidates], threshold)
    assert (hit.story.id if hit else None) == story


def test_deliveries_are_named_after_the_story_and_say_what_this_copy_matched() -> None:
    a = Article(feed="reprints", entry_id="r1", url="https://r.test/1", title="Copy",
                summary="", body="tactical missile", text_source="page", published=NOW,
                fetched_at=NOW, id=12)
    story = StoryRef(3, "wire", "w1")
    m = Match("missiles", (Hit("body", "tactical missile", 0, 16, "tactical missile"),),
              "body", "tactical missile", '"tactical missile"')
    out = new_deliveries(a, story, [m], {"missiles": ["mail", "hook"], "other": ["mail"]})
    assert [(d.rule, d.channel) for d in out] == [("missiles", "mail"), ("missiles", "hook")]
    assert out[0].id == delivery_id("missiles", "wire", "w1", "mail") != out[1].id
    assert out[0].alert.title == "Copy" and out[0].alert.feed == "reprints"
    assert out[0].alert.published == "2026-05-01T12:00:00.000000Z"
    assert out[0].alert.matched == ("tactical missile",) and out[0].alert.article_id == 12
    assert new_deliveries(a, story, [m], {}) == ()


def _held(rows: list[tuple[str, int]], policy: Policy | None,
          last: datetime | None = None) -> list[tuple[str, int | None]]:
    candidates = [HoldCandidate(i, "r", "c", NOW + timedelta(minutes=m)) for i, m in rows]
    decisions = classify(candidates, {("r", "c"): last}, {"r": policy} if policy else {}, UTC)
    assert all(d.basis == last for d in decisions)
    return [(d.id, None if d.release_at is None else
             int((d.release_at - NOW).total_seconds() // 60)) for d in decisions]


@pytest.mark.parametrize(("rows", "policy", "last", "expected"), [
    ([("a", 0), ("b", 5)], None, None, [("a", None), ("b", None)]),
    # cooldown: the first goes, the rest of its window wait for the window's end
    ([("a", 0), ("b", 5), ("c", 29)], Policy(cooldown_s=1800), None,
     [("a", None), ("b", 30), ("c", 30)]),
    # after the window the next goes at once and opens another
    ([("a", 0), ("b", 31), ("c", 40)], Policy(cooldown_s=1800), None,
     [("a", None), ("b", None), ("c", 61)]),
    # a window opened before (by an alert already classified)
    ([("a", 0)], Policy(cooldown_s=1800), NOW - timedelta(minutes=10), [("a", 20)]),
    # in created order, whatever order they come in
    ([("b", 5), ("a", 0)], Policy(cooldown_s=1800), None, [("a", None), ("b", 30)]),
    # digest: everything waits for the next top of the hour
    ([("a", 0), ("b", 59)], Policy(digest="hourly"), None, [("a", 60), ("b", 60)]),
])
def test_classify(rows: list[tuple[str, int]], policy: Policy | None,
                  last: datetime | None, expected: list[tuple[str, int | None]]) -> None:
    assert _held(rows, policy, last) == expected


def test_held_deliveries_of_one_window_share_a_digest() -> None:
    candidates = [HoldCandidate(i, "r", "c", NOW + timedelta(minutes=m))
                  for i, m in (("a", 0), ("b", 5), ("c", 6))]
    d = classify(candidates, {}, {"r": Policy(cooldown_s=600)}, UTC)
    assert d[1].digest_id == d[2].digest_id == digest_id("r", "c", NOW + timedelta(minutes=10))
    assert d[0].digest_id is None


def _site_candidate(article_id: int, site: str, paragraphs: list[str]) -> StoryCandidate:
    text = "\n".join(paragraphs)
    sig = signature(text)
    assert sig is not None
    return StoryCandidate(article_id, StoryRef(article_id, "f", f"e{article_id}"),
                          to_bytes(sig), site, text)


def test_a_sites_different_statements_sharing_its_boilerplate_stay_apart() -> None:
    """Six statements of one press office, each with its standard paragraph: six stories."""
    placed: list[StoryCandidate] = []
    for i in range(len(PRESS_STATEMENTS)):
        text = "\n".join(press_statement(i))
        sig = signature(text)
        assert sig is not None
        # Similar enough to fold at the threshold if text alone decided ...
        assert all(similarity(sig, from_bytes(c.signature)) >= 0.5 for c in placed)
        # ... but each has news of its own.
        assert place_in_story(sig, placed, 0.5, "press.example", text) is None
        placed.append(_site_candidate(i + 1, "press.example", press_statement(i)))


@pytest.mark.parametrize("copy", [
    WIRE,  # the same text again on the same site (another URL)
    WIRE[:4] + WIRE[5:],  # a paragraph cut
    WIRE[:-2],  # the end cut
    [WIRE[0].replace("reported Wednesday", "reported on Wednesday"), *WIRE[1:]],  # an edit
])
@pytest.mark.parametrize("same_site", [True, False])
def test_true_copies_still_fold_on_any_site(copy: list[str], same_site: bool) -> None:
    original = _site_candidate(1, "wire.example", WIRE)
    text = "\n".join(copy)
    sig = signature(text)
    assert sig is not None
    hit = place_in_story(sig, [original], 0.5, "wire.example" if same_site else "paper.example",
                         text)
    assert hit is not None and hit.story.id == 1


@pytest.mark.parametrize(("a", "b", "distinct"), [
    ("\n".join(WIRE), "\n".join(WIRE[1:]), False),
    ("\n".join(press_statement(0)), "\n".join(press_statement(1)), True),
    ("short text", "a longer text holding the short text inside it", False),
    ("one two three four five six seven eight nine", "ten eleven twelve", True),
])
def test_distinct_content(a: str, b: str, distinct: bool) -> None:
    assert distinct_content(a, b) is distinct


def test_a_re_headlined_copy_on_the_same_site_folds_though_its_text_starts_with_it() -> None:
    original = StoryCandidate(1, StoryRef(1, "f", "e1"), to_bytes(signature(
        "\n".join([WIRE_TITLE, *WIRE]))), "wire.example", "\n".join([WIRE_TITLE, *WIRE]),
        WIRE_TITLE)
    headline = "North Korea unveils new tactical missile, vows more production"
    text = "\n".join([headline, *WIRE[:-1]])
    sig = signature(text)
    assert sig is not None
    hit = place_in_story(sig, [original], 0.5, "wire.example", text, headline)
    assert hit is not None and hit.story.id == 1
    assert place_in_story(sig, [original], 0.5, "wire.example", text) is None  # headline counted
