"""watcher.core.schedule, table-driven, with a fixed `now` and seeded random numbers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.parse import update_period_s
from watcher.core.schedule import (
    DELIVERY_BACKOFF_S,
    RETRY_AFTER_CAP_S,
    PollPolicy,
    cache_lifetime_s,
    delivery_retry_at,
    next_poll_after_failure,
    next_poll_after_success,
    parse_retry_after,
    publishing_gap_s,
    server_min_wait_s,
)

NOW = datetime(2024, 5, 21, 12, 0, 0, tzinfo=UTC)
DAY = 86400.0
SEEDS = range(20)


def secs(when: datetime | None) -> float:
    assert when is not None
    return (when - NOW).total_seconds()


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 120 ", 120.0),
    ("0", 0.0),
    ("Tue, 21 May 2024 12:05:00 GMT", 300.0),  # IMF-fixdate
    ("Tuesday, 21-May-24 12:05:00 GMT", 300.0),  # obsolete RFC 850 date
    ("Tue, 21 May 2024 11:00:00 GMT", 0.0),  # in the past
    ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),
    ("999999", RETRY_AFTER_CAP_S),  # capped at 24 h
    ("Wed, 22 May 2024 18:00:00 GMT", RETRY_AFTER_CAP_S),
    ("86400", 86400.0),
    ("garbage", None),
    ("-5", None),
    ("1.5", None),
    ("", None),
    (None, None),
    pytest.param(
        "Tue May 21 12:05:00 2024", 300.0, id="asctime-date"),
    pytest.param(
        "Tue, 21 May 2024 12:05:00", 300.0, id="date-without-zone"),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


# --- after a successful poll ---------------------------------------------------------------

POLICY = PollPolicy(interval_s=300, min_interval_s=120, max_interval_s=3600,
                    max_server_wait_s=6 * 3600)


def every(minutes: float, n: int = 6) -> list[datetime | None]:
    return [NOW - timedelta(minutes=minutes * i) for i in range(n)]


@pytest.mark.parametrize(("policy", "published", "server_wait", "expected"), [
    (POLICY, [], 0.0, 300),  # the interval
    (POLICY, [], 1800.0, 1800),  # a server/ttl wait longer than the interval wins
    (POLICY, [], 60.0, 300),  # a shorter one does not shorten the interval
    (POLICY, [], 100_000.0, 6 * 3600),  # bounded by max_server_wait
    (POLICY, every(10), 0.0, 300),  # publishes every 10 min: poll every 5
    (POLICY, every(2), 0.0, 120),  # but never below min_interval
    (POLICY, every(24 * 60), 0.0, 3600),  # publishes daily: max_interval
    (POLICY, every(24 * 60), 7200.0, 7200),  # the server's ask still wins
    (PollPolicy(300, adaptive=False), every(24 * 60), 0.0, 300),  # not adaptive
    (POLICY, every(24 * 60, n=2), 0.0, 300),  # too few items to adapt
    (POLICY, [None, None, None, NOW], 0.0, 300),
    (POLICY, [NOW + timedelta(days=i) for i in range(1, 6)], 0.0, 300),  # future dates ignored
])
def test_next_poll_after_success(policy: PollPolicy, published: list[datetime | None],
                                 server_wait: float, expected: float) -> None:
    when = next_poll_after_success(NOW, policy, published, server_wait_s=server_wait)
    assert secs(when) == expected


@pytest.mark.parametrize(("headers", "ttl", "sy_period", "cap", "expected"), [
    ({}, None, None, 6 * 3600, 0.0),
    ({}, 30, None, 6 * 3600, 1800.0),  # <ttl> in minutes
    ({}, 0, None, 6 * 3600, 0.0),
    ({}, 100_000, None, 6 * 3600, 6 * 3600),  # ttl bounded by the cap
    ({}, None, 3600.0, 6 * 3600, 3600.0),  # sy:updatePeriod
    ({"cache-control": "public, max-age=7200"}, 30, 3600.0, 6 * 3600, 7200.0),  # longest ask
    ({"cache-control": "no-cache, max-age=7200"}, None, None, 6 * 3600, 0.0),
    ({"expires": "Tue, 21 May 2024 12:10:00 GMT"}, 5, None, 6 * 3600, 600.0),
])
def test_server_min_wait(headers: dict[str, str], ttl: int | None, sy_period: float | None,
                         cap: float, expected: float) -> None:
    assert server_min_wait_s(headers, NOW, ttl, sy_period, cap) == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"cache-control": "public, max-age=600"}, 600.0),
    ({"cache-control": 's-maxage="60"'}, 60.0),
    ({"cache-control": "no-store, max-age=600"}, None),
    ({"expires": "Tue, 21 May 2024 12:10:00 GMT"}, 600.0),
    # Expires is measured from the server's Date when there is one
    ({"expires": "Tue, 21 May 2024 12:10:00 GMT", "date": "Tue, 21 May 2024 11:10:00 GMT"},
     3600.0),
    ({"expires": "Tue, 21 May 2024 11:00:00 GMT"}, 0.0),
    ({"expires": "0"}, None),
    ({}, None),
    pytest.param(
        {"expires": "Tue, 21 May 2024 12:10:00 GMT", "date": "Tue May 21 11:10:00 2024"},
        3600.0, id="asctime-date-header"),
])
def test_cache_lifetime(headers: dict[str, str], expected: float | None) -> None:
    assert cache_lifetime_s(headers, NOW) == expected


@pytest.mark.parametrize(("period", "frequency", "expected"), [
    ("hourly", "2", 1800.0), ("daily", None, 86400.0), ("Weekly", "x", 604800.0),
    ("daily", "0", 86400.0), ("bogus", "1", None), (None, "1", None),
])
def test_update_period(period: str | None, frequency: str | None,
                       expected: float | None) -> None:
    assert update_period_s(period, frequency) == expected


def test_publishing_gap_is_the_median() -> None:
    stamps = [NOW - timedelta(minutes=m) for m in (0, 10, 30, 60)]
    assert publishing_gap_s(stamps, NOW) == 1200.0
    assert publishing_gap_s(stamps[:2], NOW) is None


# --- after a failed poll ----------------------------------------------------------------


@pytest.mark.parametrize(("failures", "base"), [
    (1, 300), (2, 600), (3, 1200), (4, 2400), (5, 4800), (6, 9600), (7, 19200), (8, 38400),
    (9, 76800), (0, 300),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_failure_backoff_doubles_within_ten_percent(failures: int, base: float,
                                                    seed: int) -> None:
    wait = secs(next_poll_after_failure(NOW, 300, failures, max_backoff_s=DAY,
                                        rng=random.Random(seed)))
    assert 0.9 * base <= wait <= 1.1 * base


@pytest.mark.parametrize("failures", [10, 11, 20, 60, 1000])
@pytest.mark.parametrize("seed", SEEDS)
def test_failure_backoff_capped_at_max_backoff(failures: int, seed: int) -> None:
    wait = secs(next_poll_after_failure(NOW, 300, failures, max_backoff_s=DAY,
                                        rng=random.Random(seed)))
    assert 0.9 * DAY <= wait <= DAY


def test_failure_backoff_jitter_spreads_feeds() -> None:
    waits = {secs(next_poll_after_failure(NOW, 300, 3, rng=random.Random(s))) for s in SEEDS}
    assert len(waits) == len(SEEDS)
    assert min(waits) < 1200 < max(waits)


def test_failure_backoff_is_deterministic_for_a_seed() -> None:
    a = next_poll_after_failure(NOW, 300, 4, rng=random.Random(7))
    b = next_poll_after_failure(NOW, 300, 4, rng=random.Random(7))
    assert a == b


@pytest.mark.parametrize(("failures", "max_backoff", "retry_after", "low", "high"), [
    (1, DAY, 3600, 3600, 3600),  # Retry-After longer than backoff wins
    (1, 3000, DAY, DAY, DAY),  # and may exceed max_backoff
    (10, 3000, 10, 2700, 3000),  # shorter Retry-After: backoff (capped) wins
    (3, DAY, 0, 1080, 1320),  # Retry-After: 0 does not shorten the backoff
    (2, DAY, 600, 600, 660),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_failure_backoff_respects_retry_after(failures: int, max_backoff: float,
                                              retry_after: float, low: float, high: float,
                                              seed: int) -> None:
    wait = secs(next_poll_after_failure(NOW, 300, failures, max_backoff_s=max_backoff,
                                        retry_after_s=retry_after, rng=random.Random(seed)))
    assert low <= wait <= high


# --- delivery retries -----------------------------------------------------------------------


def test_delivery_schedule_constants() -> None:
    assert DELIVERY_BACKOFF_S[:3] == (5, 300, 1800)
    assert list(DELIVERY_BACKOFF_S) == sorted(DELIVERY_BACKOFF_S)


@pytest.mark.parametrize(("attempts", "step"), [
    (1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 86400), (8, 86400),
    (30, 86400), (0, 5),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_delivery_retry_schedule_with_twenty_percent_jitter(attempts: int, step: float,
                                                            seed: int) -> None:
    when = delivery_retry_at(NOW, attempts, created_at=NOW, max_age_s=30 * DAY,
                             rng=random.Random(seed))
    assert 0.8 * step <= secs(when) <= 1.2 * step


@pytest.mark.parametrize(("attempts", "age", "max_age", "retry_after", "alive"), [
    (1, 0, 48 * 3600, None, True),
    (3, 47 * 3600, 48 * 3600, None, True),  # 30 min +-20% still fits in 1 h
    (3, 47 * 3600 + 50 * 60, 48 * 3600, None, False),  # 30 min does not fit in 10 min
    (7, 0, 48 * 3600, None, True),  # 24 h fits in 48 h
    (7, 30 * 3600, 48 * 3600, None, False),
    (1, 0, 60, 600, False),  # Retry-After beyond max_age: dead
    (1, 0, 3600, 600, True),
    (1, 49 * 3600, 48 * 3600, None, False),  # already too old
])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_delivery_declared_dead_past_max_age(attempts: int, age: float, max_age: float,
                                             retry_after: float | None, alive: bool,
                                             seed: int) -> None:
    when = delivery_retry_at(NOW, attempts, created_at=NOW - timedelta(seconds=age),
                             max_age_s=max_age, retry_after_s=retry_after,
                             rng=random.Random(seed))
    assert (when is not None) == alive
    if when is not None:
        assert when > NOW
        assert (when - (NOW - timedelta(seconds=age))).total_seconds() <= max_age


@pytest.mark.parametrize("seed", SEEDS)
def test_delivery_retry_after_respected(seed: int) -> None:
    when = delivery_retry_at(NOW, 1, created_at=NOW, max_age_s=DAY, retry_after_s=600,
                             rng=random.Random(seed))
    assert secs(when) == 600
