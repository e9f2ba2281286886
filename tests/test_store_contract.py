"""The store protocol's contract, run against every store: SQLite, and PostgreSQL on a
real cluster started by the test set-up (tests/pg.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.core.alerts import new_deliveries
from watcher.core.digest import Policy, classify
from watcher.core.errors import StoreError
from watcher.core.identity import band_keys, signature, to_bytes
from watcher.core.intents import (
    FeedFailed,
    FeedFetched,
    FeedGone,
    Matched,
    NewArticle,
    NewSource,
    PageArrived,
    Retention,
)
from watcher.core.models import Article, Feed, Hit, Match, StoryRef
from watcher.core.records import DaemonInfo, WebSession
from watcher.store import Store, open_store, prune

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
WIRE = ("North Korean leader Kim Jong Un inspected a new tactical missile system and called "
        "for an epochal change in war preparations, state media reported on Wednesday, as the "
        "regime ramps up production of weapons that may be intended for sale to Russia.")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = open_store(tmp_path / "w.db")
    else:
        s = open_store(request.getfixturevalue("pg_url"))
    yield s
    s.close()


def feed(name: str, url: str | None = None) -> Feed:
    return Feed(name=name, url=url or f"https://{name}.test/feed.xml", interval_s=600)


def article(entry: str, feed_name: str = "f", canonical: str | None = None,
            when: datetime = T0, body: str = "", title: str | None = None) -> Article:
    return Article(feed=feed_name, entry_id=entry, url=canonical, title=title or entry,
                   summary="a summary", body=body or f"body of {entry}",
                   text_source="feed-summary", published=when - timedelta(hours=1),
                   fetched_at=when, canonical_url=canonical)


def add(store: Store, a: Article, **kw: object) -> int:
    article_id = store.add_article(NewArticle(a, **kw))  # type: ignore[arg-type]
    assert article_id is not None
    return article_id


def match(store: Store, article_id: int, rule: str = "r", channels: tuple[str, ...] = ("c",),
          at: datetime = T0) -> int:
    a = store.article(article_id)
    story = store.story_of(article_id)
    assert a is not None and story is not None
    m = Match(rule, (Hit("body", "body", 0, 4, "body"),), "body", "body of it", '"body"')
    return store.record_matches(Matched(article_id, story.id, (m,),
                                        new_deliveries(a, story, [m], {rule: list(channels)}),
                                        at))


def classify_all(store: Store, policies: dict[str, Policy] | None = None) -> int:
    return store.apply_holds(classify(*store.hold_candidates(), policies or {}, UTC), T0)


# -- feeds --------------------------------------------------------------------------------


def test_feeds_are_synced_and_a_changed_url_starts_afresh(store: Store) -> None:
    store.sync_feeds([feed("a"), feed("b")])
    store.record_poll(FeedFailed("a", T0, T0 + timedelta(hours=1), "fetch: boom"))
    state = store.feed_state("a")
    assert state is not None and state.consecutive_failures == 1
    store.sync_feeds([feed("a", "https://new.test/a.xml")])
    state = store.feed_state("a")
    assert state is not None and state.url == "https://new.test/a.xml"
    assert state.consecutive_failures == 0 and state.next_poll_at is None
    assert store.feed_state("nope") is None


def test_a_sources_memo_is_kept_between_polls_and_dropped_with_its_url(store: Store) -> None:
    store.sync_feeds([feed("s")])
    state = store.feed_state("s")
    assert state is not None and state.memo is None
    memo = '{"links": ["https://s.test/2026/05/01/a"]}'
    store.record_poll(FeedFetched("s", T0, T0 + timedelta(minutes=5), None, None, memo=memo))
    store.record_poll(FeedFetched("s", T0, T0 + timedelta(minutes=10), None, None))
    state = store.feed_state("s")
    assert state is not None and state.memo == memo  # a poll without one keeps it
    store.sync_feeds([feed("s", "https://other.test/")])
    state = store.feed_state("s")
    assert state is not None and state.memo is None


def test_websub_subscriptions_are_kept_replaced_and_dropped(store: Store) -> None:
    from watcher.core.websub import Subscription

    sub = Subscription("a", "https://hub.test/", "https://a.test/feed.xml", "cb1", "s3cret",
                       "subscribing", T0)
    store.save_websub(sub)
    assert store.websub_subscriptions() == [sub]
    active = replace(sub, state="active", lease_until=T0 + timedelta(days=10))
    store.save_websub(active)
    store.save_websub(replace(sub, feed="b", callback_id="cb2"))
    assert [s.feed for s in store.websub_subscriptions()] == ["a", "b"]
    assert store.websub_subscriptions()[0] == active
    store.drop_websub("a")
    assert [s.feed for s in store.websub_subscriptions()] == ["b"]


def test_due_feeds_and_polls(store: Store) -> None:
    store.sync_feeds([feed("a"), feed("b"), feed("c")])
    store.record_poll(FeedFetched("a", T0, T0 + timedelta(minutes=10), etag='"x"',
                                  last_modified=None, title="A"))
    store.record_poll(FeedGone("c", T0, "fetch: gone"))
    assert store.due_feeds(T0, ["a", "b", "c"]) == ["b"]
    assert store.due_feeds(T0 + timedelta(minutes=11), ["a", "b", "c"]) == ["b", "a"]
    store.record_poll(FeedFailed("b", T0, T0 + timedelta(hours=2), "fetch: 503", hold=True))
    assert store.pollable_feeds(T0, ["a", "b", "c"]) == ["a"]
    state = store.feed_state("a")
    assert state is not None and state.etag == '"x"' and state.next_poll_at == \
        T0 + timedelta(minutes=10)


def test_feeds_are_claimed_by_one_owner_until_the_lease_ends(store: Store) -> None:
    store.sync_feeds([feed("a"), feed("b")])
    assert store.claim_feeds("one", T0, 60, ["a", "b"]) == ["a", "b"]
    assert store.claim_feeds("two", T0, 60, ["a", "b"]) == []
    assert store.claim_feeds("one", T0, 60, ["a"]) == ["a"]  # an owner may claim again
    store.renew_feed_leases("one", ["a"], T0 + timedelta(seconds=50), 60)
    later = T0 + timedelta(seconds=70)
    assert store.claim_feeds("two", later, 60, ["a", "b"]) == ["b"]  # a's lease renewed
    store.record_poll(FeedFetched("a", later, later, None, None))  # polled: lease ends
    assert store.claim_feeds("two", later, 60, ["a"]) == ["a"]
    store.release_feeds("two", ["a", "b"])
    assert store.claim_feeds("three", later, 60, ["a", "b"]) == ["b", "a"]  # b never polled


def test_claims_ignoring_the_schedule_still_respect_gone_and_held(store: Store) -> None:
    store.sync_feeds([feed("a"), feed("b"), feed("c")])
    store.record_poll(FeedFetched("a", T0, T0 + timedelta(hours=1), None, None))
    store.record_poll(FeedGone("b", T0, "gone"))
    store.record_poll(FeedFailed("c", T0, T0 + timedelta(hours=1), "429", hold=True))
    assert store.claim_feeds("o", T0, 60, ["a", "b", "c"]) == []
    assert store.claim_feeds("o", T0, 60, ["a", "b", "c"], due_only=False) == ["a"]


def test_health_flags_and_reports(store: Store) -> None:
    store.sync_feeds([feed("a")])
    store.record_poll(FeedFailed("a", T0, T0 + timedelta(hours=1), "fetch: 503"))
    assert not store.flag_unhealthy("a", T0 + timedelta(hours=1), 24 * 3600)
    assert store.flag_unhealthy("a", T0 + timedelta(hours=25), 24 * 3600)
    assert not store.flag_unhealthy("a", T0 + timedelta(hours=26), 24 * 3600)
    add(store, article("e1", "a"))
    (health,) = store.feed_health(T0 + timedelta(days=1))
    assert health.name == "a" and health.items_7d == 1 and health.unhealthy_since is not None
    assert health.last_error == "fetch: 503" and not health.conditional


# -- articles and stories -------------------------------------------------------------------


def test_articles_sources_and_known_entries(store: Store) -> None:
    first = add(store, article("e1", canonical="https://x.test/1"))
    assert store.add_article(NewArticle(article("e1", canonical="https://x.test/9"))) is None
    assert store.articles_at(["https://x.test/1", "https://x.test/2"]) == \
        {"https://x.test/1": first}
    assert store.add_source(NewSource(first, "g", "g1", "https://x.test/1", "copy", T0))
    assert not store.add_source(NewSource(first, "g", "g1", "https://x.test/1", "copy", T0))
    assert store.known_entries("f", ["e1", "e2"]) == {"e1"}
    assert store.known_entries("g", ["g1"]) == {"g1"}
    sources = store.story_sources([first])[first]
    assert [(s.feed, s.entry_id) for s in sources] == [("f", "e1"), ("g", "g1")]
    a = store.article(first)
    assert a is not None and a.story_id == first and a.title == "e1" and a.tags == ()
    assert store.story_of(first) == StoryRef(first, "f", "e1")


def test_one_article_per_canonical_url(store: Store, request: pytest.FixtureRequest) -> None:
    if "sqlite" in request.node.callspec.id:
        pytest.skip("SQLite has one writer (the daemon lock); ingest looks before it adds")
    add(store, article("e1", "f", canonical="https://x.test/1"))
    assert store.add_article(NewArticle(article("g1", "g", canonical="https://x.test/1"))) \
        is None


def test_story_candidates_placement_and_keys(store: Store) -> None:
    sig = signature(WIRE + " " + WIRE)
    assert sig is not None
    keys = tuple(band_keys(sig))
    first = add(store, replace(article("e1", canonical="https://x.test/1"),
                               signature=to_bytes(sig), body=WIRE), story_keys=keys)
    store.lock_story_keys(keys)
    (c,) = store.story_candidates(keys, T0 - timedelta(days=1))
    assert c.article_id == first and c.story == StoryRef(first, "f", "e1")
    assert c.signature == to_bytes(sig) and c.site == "x.test" and c.body == WIRE
    assert store.story_candidates(keys, T0 + timedelta(seconds=1)) == []
    second = add(store, article("e2", canonical="https://y.test/2"), story=c.story)
    assert store.story_of(second) == c.story and store.story_size(first) == 2


def test_pages_to_come(store: Store) -> None:
    waiting = add(store, replace(article("e1"), page_pending=True))
    add(store, article("e2"))
    (pending,) = store.pending_pages("f", 10)
    assert pending.id == waiting and pending.page_pending
    store.page_arrived(PageArrived(waiting, body="the page's text", text_source="page",
                                   story_keys=(1, 2), author="A"))
    a = store.article(waiting)
    assert a is not None and a.body == "the page's text" and a.text_source == "page"
    assert a.author == "A" and not a.page_pending and store.pending_pages("f", 10) == []


def test_unmatched_articles_and_iteration(store: Store) -> None:
    ids = [add(store, article(f"e{i}", when=T0 + timedelta(minutes=i))) for i in range(5)]
    assert [a.id for a in store.unmatched_articles()] == ids
    match(store, ids[0])
    assert [a.id for a in store.unmatched_articles()] == ids[1:]
    batches = list(store.iter_articles(T0 + timedelta(minutes=1), batch=2))
    assert [[a.id for a in b] for b in batches] == [[ids[4], ids[3]], [ids[2], ids[1]]]
    assert store.count_articles_since(T0 + timedelta(minutes=3)) == 2


# -- the outbox -------------------------------------------------------------------------------


def test_one_delivery_per_rule_story_and_channel(store: Store) -> None:
    first = add(store, article("e1"))
    copy = add(store, article("e2"), story=StoryRef(first, "f", "e1"))
    assert match(store, first, channels=("c", "d")) == 2
    assert match(store, copy, channels=("c", "d")) == 0  # the story alerted already
    assert match(store, first) == 0  # and a match is recorded once
    assert {d.channel for d in store.deliveries()} == {"c", "d"}
    assert {d.article_id for d in store.deliveries(rule="r")} == {first}
    assert store.deliveries(story_id=first) and not store.deliveries(rule="other")


def test_claims_are_exclusive_and_outcomes_recorded(store: Store) -> None:
    for i in range(3):
        match(store, add(store, article(f"e{i}")))
    assert classify_all(store) == 3
    one = store.claim_deliveries(T0, 60, 2, owner="one")
    two = store.claim_deliveries(T0, 60, 10, owner="two")
    assert len(one) == 2 and len(two) == 1 and not {d.id for d in one} & {d.id for d in two}
    assert store.claim_deliveries(T0, 60, 10, owner="three") == []
    assert set(store.claim_owners(T0)) == {"one", "two"}
    assert store.renew_claim([d.id for d in one], "one", T0, 60)
    assert not store.renew_claim([d.id for d in one], "two", T0, 60)
    store.mark_sent([one[0].id], T0)
    store.mark_failed([one[1].id], T0, "deliver: 503", T0 + timedelta(minutes=5))
    store.mark_failed([two[0].id], T0, "deliver: 404", None)
    status = {d.id: (d.status, d.attempts, d.last_error) for d in store.deliveries()}
    assert status[one[0].id] == ("sent", 1, None)
    assert status[one[1].id] == ("retrying", 1, "deliver: 503")
    assert status[two[0].id] == ("dead", 1, "deliver: 404")
    assert store.requeue_deliveries(T0, all_dead=True) == [two[0].id]
    again = store.claim_deliveries(T0, 60, 10, owner="four")
    assert [d.id for d in again] == [two[0].id] and again[0].alert == two[0].alert
    assert store.release_claims_of("four") == 1


def test_a_paused_feed_is_claimed_by_no_one_until_resumed(store: Store) -> None:
    store.sync_feeds([feed("a"), feed("b")])
    store.record_poll(FeedFetched("a", T0, T0 + timedelta(hours=1), None, None))
    assert store.pause_feed("a", True, T0) and store.pause_feed("b", True, T0)
    assert not store.pause_feed("nope", True, T0)
    later = T0 + timedelta(hours=2)
    assert store.claim_feeds("o", later, 60, ["a", "b"]) == []
    assert store.claim_feeds("o", later, 60, ["a", "b"], due_only=False) == []
    assert store.due_feeds(later, ["a", "b"]) == []
    assert store.pollable_feeds(later, ["a", "b"]) == []
    health = {h.name: h for h in store.feed_health(later)}
    assert health["a"].paused_at == T0 and health["b"].paused_at == T0
    paused = store.feed_state("a")
    assert paused is not None and paused.paused
    assert store.pause_feed("a", False, later)
    state = store.feed_state("a")
    assert state is not None and state.next_poll_at is None  # due at once when resumed
    assert not state.paused
    assert store.claim_feeds("o", later, 60, ["a", "b"]) == ["a"]
    assert {h.name: h.paused_at for h in store.feed_health(later)} == {"a": None, "b": T0}


def test_items_per_day_are_counted_per_feed(store: Store) -> None:
    add(store, article("e1", "f", when=T0))
    add(store, article("e2", "f", when=T0 + timedelta(days=1)))
    add(store, article("e3", "g", when=T0 + timedelta(days=1)))
    add(store, article("old", "g", when=T0 - timedelta(days=40)))
    assert store.items_per_day(T0 - timedelta(days=30)) == {
        "f": {"2026-05-01": 1, "2026-05-02": 1}, "g": {"2026-05-02": 1}}


def test_a_mute_that_drops_marks_its_deliveries_dropped_and_never_sends(store: Store) -> None:
    until = T0 + timedelta(hours=1)
    store.mute_rule("r", until, T0, drop=True)
    store.mute_rule("q", until, T0)
    assert store.dropping_mutes(T0) == {"r"} and store.mutes(T0) == {"r": until, "q": until}
    match(store, add(store, article("e1")), rule="r")
    match(store, add(store, article("e2")), rule="q")
    policies = {name: Policy(muted_until=until, drop_muted=name in store.dropping_mutes(T0))
                for name in store.mutes(T0)}
    assert classify_all(store, policies) == 2
    by_rule = {d.rule: d for d in store.deliveries()}
    assert by_rule["r"].status == "dropped" and "muted" in (by_rule["r"].last_error or "")
    assert by_rule["q"].status == "pending" and by_rule["q"].held_until == until
    assert [d.id for d in store.deliveries(status="dropped")] == [by_rule["r"].id]
    claimed = store.claim_deliveries(until + timedelta(minutes=1), 60, 10)
    assert [d.rule for d in claimed] == ["q"]  # the dropped one never goes out
    assert store.dropping_mutes(until) == set()


def test_choosing_drop_drops_what_the_mute_already_holds(store: Store) -> None:
    until = T0 + timedelta(hours=1)
    store.mute_rule("r", until, T0)
    match(store, add(store, article("e1")), rule="r")
    match(store, add(store, article("e2")), rule="q")
    assert classify_all(store, {"r": Policy(muted_until=until),
                                "q": Policy(cooldown_s=60)}) == 2
    store.mute_rule("r", T0 + timedelta(days=1), T0 + timedelta(minutes=1), drop=True)
    by_rule = {d.rule: d for d in store.deliveries()}
    assert by_rule["r"].status == "dropped" and by_rule["q"].status == "pending"
    claimed = store.claim_deliveries(T0 + timedelta(days=2), 60, 10)
    assert [d.rule for d in claimed] == ["q"]  # the dropped one never goes out


def test_holds_are_applied_only_on_the_basis_decided(store: Store) -> None:
    cooldown = {"r": Policy(cooldown_s=1800)}
    for i in range(3):
        match(store, add(store, article(f"e{i}")), at=T0 + timedelta(minutes=i))
    candidates, last = store.hold_candidates()
    assert len(candidates) == 3 and last == {("r", "c"): None}
    decisions = classify(candidates, last, cooldown, UTC)
    assert [d.release_at is None for d in decisions] == [True, False, False]
    # Another process sent one at once meanwhile: these decisions are stale.
    match(store, add(store, article("x")), at=T0 - timedelta(minutes=1))
    store.apply_holds(classify(*_only_last(store), {}, UTC), T0)
    assert store.apply_holds(decisions, T0) == 0
    assert classify_all(store, cooldown) == 3  # decided again on what is true now
    held = [d for d in store.deliveries() if d.held_until is not None]
    assert len(held) == 3 and len({d.digest_id for d in held}) == 1


def _only_last(store: Store) -> tuple[list, dict]:  # type: ignore[type-arg]
    candidates, last = store.hold_candidates()
    return [c for c in candidates if c.created_at < T0], last


# -- the archive --------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "found"), [
    ('"tactical missile"', ["m1"]),
    ("missile", ["m2", "m1"]),
    ("missiles", ["m2", "m1"]),  # stemmed, on both
    ("missile -drill", ["m1"]),
    ("tactical OR drill", ["m2", "m1"]),
    ("tact*", ["m1"]),
    ("tram", []),
])
def test_search_has_one_syntax(store: Store, query: str, found: list[str]) -> None:
    add(store, article("m1", body="A new tactical missile was shown."))
    add(store, article("m2", body="The missile drill ended.", when=T0 + timedelta(hours=1)))
    hits = store.search(query)
    assert [h.title for h in hits] == found
    if found:
        assert "[" in hits[0].snippet and "]" in hits[0].snippet


def test_search_filters_and_errors(store: Store) -> None:
    add(store, article("m1", body="missile one"))
    add(store, article("m2", "g", body="missile two", when=T0 + timedelta(days=2)))
    assert [h.title for h in store.search("missile", feed="g")] == ["m2"]
    assert [h.title for h in store.search("missile", since=T0 + timedelta(days=1))] == ["m2"]
    assert len(store.search("missile", limit=1)) == 1
    with pytest.raises(StoreError, match="cannot run query"):
        store.search('"unclosed')


def _archive(store: Store) -> list[tuple[datetime, int, str]]:
    """Articles stored out of time order (as feeds backfill), some without a publication
    time, some sharing one; "harbour" in every one, "tram" in every third; their sort
    keys, newest first, as the archive's order defines them."""
    rng = random.Random(7)
    keys = []
    for i in rng.sample(range(60), 60):
        published = None if i % 5 == 0 else T0 - timedelta(hours=(i * 7) % 40)
        fetched = T0 - timedelta(hours=i % 30, minutes=i)
        words = "harbour tram" if i % 3 == 0 else "harbour"
        article_id = add(store, Article(
            feed="g" if i % 2 else "f", entry_id=f"h{i}", url=None, title=f"h{i}",
            summary="", body=f"the {words} story {i}", text_source="feed-summary",
            published=published, fetched_at=fetched))
        keys.append((published or fetched, article_id, f"h{i}"))
    return sorted(keys, reverse=True)


@pytest.mark.parametrize("broad", [2000, 3])
def test_search_pages_newest_first_like_a_full_sort(store: Store, broad: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page size gives the head of the one order (publication time or else fetch
    time, then id, newest first), also when a broad query searches the newest articles
    a window at a time (SQLite, with the thresholds lowered to reach that path)."""
    monkeypatch.setattr("watcher.store.sqlite.archive._BROAD", broad)
    monkeypatch.setattr("watcher.store.sqlite.archive._WINDOW_PER_HIT", 1)
    order = _archive(store)
    every = [title for _, _, title in order]
    for limit in (1, 2, 5, 13, 59, 60, 100):
        assert [h.title for h in store.search("harbour", limit=limit)] == every[:limit]
    trams = [title for _, _, title in order if int(title[1:]) % 3 == 0]
    for limit in (1, 4, 19, 20, 50):
        assert [h.title for h in store.search("tram", limit=limit)] == trams[:limit]
    in_g = [title for _, _, title in order if int(title[1:]) % 2]
    assert [h.title for h in store.search("harbour", feed="g", limit=7)] == in_g[:7]
    since = T0 - timedelta(hours=10)
    recent = [h.title for h in store.search("harbour", since=since, limit=100)]
    assert recent == [t for t in every if T0 - timedelta(hours=int(t[1:]) % 30,
                                                          minutes=int(t[1:])) >= since]
    assert store.search("harbour", limit=0) == []
    for query, feed_name, want in (("harbour", None, every), ("tram", None, trams),
                                   ("harbour", "g", in_g)):
        for size in (1, 7, 20):
            pages, before = [], None
            while page := store.search(query, feed=feed_name, limit=size, before_id=before):
                pages.append([h.title for h in page])
                before = page[-1].id
                assert len(pages) <= len(want), "paging does not move on"
            assert [t for p in pages for t in p] == want, (query, feed_name, size)
            assert all(len(p) == size for p in pages[:-1])
    assert store.search("harbour", before_id=10**9) == []  # gone: nothing to page on from


def test_article_record_and_status(store: Store) -> None:
    store.sync_feeds([feed("f")])
    first = add(store, article("e1"))
    match(store, first)
    record = store.article_record(first)
    assert record is not None and record.article.id == first and record.matched_at == T0
    assert [m.rule for m in record.matches] == ["r"] and len(record.deliveries) == 1
    assert [s.entry_id for s in record.sources] == ["e1"]
    assert store.article_record(9999) is None
    report = store.status_report(T0, T0 - timedelta(hours=1))
    assert report.articles_today == 1 and report.articles_total == 1
    assert report.matches_today == 1 and report.backlog == 1 and report.feeds.total == 1
    assert report.deliveries == {"pending": 1} and report.backlog_oldest == T0


def test_retention_keeps_matched_and_waiting_articles_longer(store: Store) -> None:
    old, ancient = T0 - timedelta(days=100), T0 - timedelta(days=400)
    plain = add(store, article("plain", when=old))
    kept = add(store, article("matched", when=old))
    waiting = add(store, article("waiting", when=ancient))
    fresh = add(store, article("fresh"))
    match(store, kept)
    match(store, waiting, rule="w")
    retention = Retention(keep_days=90, keep_matched_days=365)
    assert store.count_prunable(T0, retention) == 1
    assert prune(store, T0, retention, batch=1) == 1
    assert store.article(plain) is None
    assert all(store.article(i) is not None for i in (kept, waiting, fresh))
    assert store.known_entries("f", ["plain"]) == {"plain"}  # never new again


# -- the daemons, and the schema ---------------------------------------------------------------


def test_daemons_register_beat_and_leave(store: Store) -> None:
    store.register_daemon(DaemonInfo("d1", "h", 1, T0, T0, "r1", "c1"))
    store.register_daemon(DaemonInfo("d2", "h", 2, T0, T0, "r2", "c1"))
    store.heartbeat("d1", T0 + timedelta(minutes=5), "r1", "c1")
    assert [d.id for d in store.live_daemons(T0 + timedelta(minutes=1))] == ["d1"]
    assert {d.rules_hash for d in store.live_daemons(T0)} == {"r1", "r2"}
    store.deregister_daemon("d1")
    assert [d.id for d in store.live_daemons(T0)] == ["d2"]


def test_the_schema_is_current_and_migrating_again_changes_nothing(store: Store) -> None:
    found, known = store.schema_version()
    assert found == known >= 1
    assert store.migrate() == 0
    store.ping()
    store.check_writable()
    store.check_intact()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_schema_newer_than_this_watcher_is_refused_with_both_versions(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "sqlite":
        import sqlite3

        target: str | Path = tmp_path / "w.db"
        open_store(target).close()
        with sqlite3.connect(target) as conn:
            conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                         "VALUES ('watcher', 'm999_from_the_future', '2030-01-01')")
    else:
        import psycopg

        target = request.getfixturevalue("pg_url")
        open_store(target).close()
        with psycopg.connect(str(target)) as conn:
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    with pytest.raises(StoreError, match=r"schema is at version \d+.*newer than this watcher "
                                         r"knows \(\d+"):
        open_store(target)


def test_a_dead_owners_feed_leases_can_be_given_back(store: Store) -> None:
    store.sync_feeds([feed("a"), feed("b")])
    assert store.claim_feeds("dead", T0, 120, ["a", "b"]) == ["a", "b"]
    assert store.feed_lease_owners(T0) == ["dead"]
    assert store.claim_feeds("me", T0, 120, ["a", "b"]) == []
    assert store.release_feed_leases_of("dead") == 2
    assert store.feed_lease_owners(T0) == []
    assert store.claim_feeds("me", T0, 120, ["a", "b"]) == ["a", "b"]


def test_a_claim_takes_at_most_its_limit_never_polled_first(store: Store) -> None:
    store.sync_feeds([feed(n) for n in "abcd"])
    store.record_poll(FeedFetched("c", T0 - timedelta(hours=1), T0 - timedelta(minutes=1),
                                  None, None))
    store.record_poll(FeedFetched("d", T0 - timedelta(hours=1), T0 + timedelta(hours=1),
                                  None, None))
    assert store.claim_feeds("me", T0, 120, "abcd", limit=2) == ["a", "b"]
    assert store.claim_feeds("other", T0, 120, "abcd", limit=2) == ["c"]  # d is not due
    assert store.claim_feeds("me", T0, 120, "abcd", limit=0) == []


# -- alerts, as the web console reviews them -------------------------------------------------


def test_alerts_are_listed_newest_first_with_filters(store: Store) -> None:
    first = add(store, article("e1", title="Missile test"))
    second = add(store, article("e2", "g", title="Rocket 50%_off", when=T0 + timedelta(hours=2)))
    match(store, first, rule="arms")
    match(store, second, rule="space", at=T0 + timedelta(hours=2))
    alerts = store.alerts()
    assert [(a.rule, a.title, a.feed) for a in alerts] == [("space", "Rocket 50%_off", "g"),
                                                          ("arms", "Missile test", "f")]
    assert alerts[1].article_id == first and alerts[1].snippet == "body of it"
    assert [a.rule for a in store.alerts(rule="arms")] == ["arms"]
    assert [a.rule for a in store.alerts(feed="g")] == ["space"]
    assert [a.rule for a in store.alerts(since=T0 + timedelta(hours=1))] == ["space"]
    assert [a.rule for a in store.alerts(until=T0 + timedelta(hours=1))] == ["arms"]
    assert [a.rule for a in store.alerts(text="missile")] == ["arms"]
    assert [a.rule for a in store.alerts(text="50%_")] == ["space"]  # no wildcards
    assert store.alerts(text="0%x") == []
    assert [a.rule for a in store.alerts(before_id=alerts[0].id)] == ["arms"]
    assert len(store.alerts(limit=1)) == 1
    one = store.alert(alerts[1].id)
    assert one is not None and one.title == "Missile test" and not one.not_relevant
    assert one.matched == ("body",)
    assert store.alert(99999) is None


def test_feedback_is_kept_per_alert_and_counted_per_rule(store: Store) -> None:
    ids = [add(store, article(f"e{i}")) for i in range(3)]
    for i in ids:
        match(store, i, rule="arms")
    alert_ids = [a.id for a in store.alerts()]
    assert store.record_feedback(alert_ids[0], "not_relevant", T0)
    assert store.record_feedback(alert_ids[0], "not_relevant", T0)  # once per alert
    assert store.record_feedback(alert_ids[1], "not_relevant", T0)
    assert not store.record_feedback(99999, "not_relevant", T0)
    assert store.feedback_counts() == {"arms": 2}
    assert store.alert_counts(T0) == {"arms": 3}
    assert store.alerts_per_day(T0 - timedelta(days=1)) == {"arms": {"2026-05-01": 3}}
    assert store.alerts_per_day(T0 + timedelta(seconds=1)) == {}
    assert store.alert_counts(T0 + timedelta(seconds=1)) == {}
    flagged = [a.id for a in store.alerts() if a.not_relevant]
    assert flagged == alert_ids[:2]


def test_search_articles_gives_the_candidates_a_matcher_confirms(store: Store) -> None:
    add(store, article("old", body="missiles long ago", when=T0 - timedelta(days=40)))
    add(store, article("m1", body="A tactical missile."))
    add(store, article("other", body="Nothing here."))
    found = store.search_articles("missil*", since=T0 - timedelta(days=30))
    assert [a.entry_id for a in found] == ["m1"]
    assert found[0].body == "A tactical missile." and found[0].id is not None
    assert store.search_articles("missil* OR nothing", since=T0 - timedelta(days=50),
                                 limit=2)[0].entry_id == "other"
    with pytest.raises(StoreError, match="cannot run query"):
        store.search_articles('"open', since=T0)


def test_rules_are_muted_until_a_time(store: Store) -> None:
    store.mute_rule("arms", T0 + timedelta(hours=1), T0)
    store.mute_rule("space", T0 + timedelta(days=1), T0)
    assert store.mutes(T0) == {"arms": T0 + timedelta(hours=1), "space": T0 + timedelta(days=1)}
    assert store.mutes(T0 + timedelta(hours=2)) == {"space": T0 + timedelta(days=1)}
    store.mute_rule("space", None, T0)
    store.mute_rule("arms", T0 + timedelta(days=7), T0)  # a new mute replaces the old
    assert store.mutes(T0) == {"arms": T0 + timedelta(days=7)}


def test_a_muted_rules_deliveries_wait_for_one_digest_at_its_end(store: Store) -> None:
    until = T0 + timedelta(hours=1)
    store.mute_rule("r", until, T0)
    for i in range(2):
        match(store, add(store, article(f"e{i}")), at=T0 + timedelta(minutes=i))
    policies = {"r": Policy(muted_until=store.mutes(T0)["r"])}
    assert classify_all(store, policies) == 2
    assert store.claim_deliveries(T0 + timedelta(minutes=30), 60, 10) == []
    due = store.claim_deliveries(until, 60, 10)
    assert len(due) == 2 and len({d.digest_id for d in due}) == 1


# -- the web console's sessions ---------------------------------------------------------

def _session(token_hash: str, name: str = "ann", credential: str = "c1",
             at: datetime = T0, hours: int = 12) -> WebSession:
    return WebSession(token_hash, name, credential, at, at + timedelta(hours=hours))


def test_web_sessions_are_found_by_digest_until_they_expire(store: Store) -> None:
    store.open_web_session(_session("h1"))
    got = store.web_session("h1", T0 + timedelta(hours=1))
    assert got == _session("h1")
    assert store.web_session("h2", T0) is None
    assert store.web_session("h1", T0 + timedelta(hours=12, seconds=1)) is None
    # Opening another, later, forgets the expired ones for good.
    store.open_web_session(_session("h3", at=T0 + timedelta(hours=13)))
    assert store.web_session("h1", T0) is None
    assert store.web_session("h3", T0 + timedelta(hours=13)) is not None


def test_web_sessions_end_on_logout_and_on_a_new_credential(store: Store) -> None:
    for h, name, cred in (("a1", "ann", "old"), ("a2", "ann", "new"), ("b1", "bob", "old"),
                          ("a3", "ann", "old")):
        store.open_web_session(_session(h, name, cred))
    store.close_web_session("a3")
    assert store.web_session("a3", T0) is None
    assert store.close_web_sessions("ann", keep_credential="new") == 1
    assert store.web_session("a1", T0) is None
    assert store.web_session("a2", T0) is not None and store.web_session("b1", T0) is not None
    assert store.close_web_sessions("bob") == 1
    assert store.web_session("b1", T0) is None


def test_story_deliveries_reads_a_page_of_stories_at_once(store: Store) -> None:
    store.sync_feeds([feed("f")])
    first = add(store, article("s1", body="the first story"))
    second = add(store, article("s2", body="another story", when=T0 + timedelta(hours=1)))
    quiet = add(store, article("s3", body="nothing sent"))
    match(store, first, "zeta", ("mail", "hook"))
    match(store, first, "alpha", ("mail",))
    match(store, second, "alpha", ("hook",))
    stories = {i: store.story_of(i).id for i in (first, second, quiet)}  # type: ignore[union-attr]
    got = store.story_deliveries([stories[second], stories[first], stories[quiet],
                                  stories[first]])
    assert list(got) == [stories[second], stories[first], stories[quiet]]
    assert [(d.rule, d.channel) for d in got[stories[first]]] == [
        ("alpha", "mail"), ("zeta", "hook"), ("zeta", "mail")]
    assert [(d.rule, d.channel, d.article_id) for d in got[stories[second]]] == [
        ("alpha", "hook", second)]
    assert got[stories[quiet]] == []
    for story in stories.values():
        assert sorted(got[story], key=lambda d: (d.rule, d.channel)) == sorted(
            store.deliveries(story_id=story), key=lambda d: (d.rule, d.channel))
    assert store.story_deliveries([]) == {}
