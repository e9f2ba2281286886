"""The SQLite store's times: what ts() writes, from_ts() reads back exactly, as the
strptime of the format it replaced would."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from watcher.store.sqlite.base import from_ts, must_ts, ts


def test_every_written_time_reads_back_as_strptime_reads_it() -> None:
    rng = random.Random(20)
    for _ in range(2000):
        zone = timezone(timedelta(minutes=rng.randrange(-14 * 60, 14 * 60 + 1, 15)))
        dt = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(0, 60 * 365 * 86400), microseconds=rng.randrange(10**6))
        text = ts(dt.astimezone(zone))
        assert text is not None
        expected = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert from_ts(text) == expected == dt
        assert from_ts(text).tzinfo is UTC  # type: ignore[union-attr]


def test_missing_and_broken_times() -> None:
    assert from_ts(None) is None and from_ts("") is None
    with pytest.raises(ValueError):
        from_ts("yesterday")
    with pytest.raises(Exception, match="required time is missing"):
        must_ts(None)
