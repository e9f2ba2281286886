"""When to poll a feed next, and when to retry a delivery. Pure: `now` is a parameter."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_AFTER_CAP_S = 24 * 3600.0
# Close to Standard Webhooks: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 24 h.
DELIVERY_BACKOFF_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 86400)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date, capped at 24 h."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def next_poll_after_success(now: datetime, interval_s: float, ttl_minutes: int | None = None,
                            max_interval_s: float = 6 * 3600.0) -> datetime:
    """The configured interval, but never sooner than the feed's own <ttl> allows."""
    wait = interval_s
    if ttl_minutes and ttl_minutes > 0:
        wait = max(wait, min(ttl_minutes * 60.0, max_interval_s))
    return now + timedelta(seconds=wait)


def next_poll_after_failure(now: datetime, interval_s: float, failures: int,
                            max_backoff_s: float = 24 * 3600.0,
                            retry_after_s: float | None = None,
                            rng: random.Random | None = None) -> datetime:
    """Exponential backoff with jitter: 1, 2, 4 ... x interval, capped; never dropped.

    `failures` counts this failure too (1 for the first).
    """
    rng = rng or random.Random()
    base = min(interval_s * (2 ** max(failures - 1, 0)), max_backoff_s)
    # Up to 10% either way, so feeds that failed together do not retry together.
    wait = base * (0.9 + 0.2 * rng.random())
    if retry_after_s is not None:
        wait = max(wait, retry_after_s)
    return now + timedelta(seconds=min(wait, max(max_backoff_s, retry_after_s or 0)))


def delivery_retry_at(now: datetime, attempts: int, created_at: datetime, max_age_s: float,
                      retry_after_s: float | None = None,
                      rng: random.Random | None = None) -> datetime | None:
    """When to try a failed delivery again; None when it should be declared dead.

    `attempts` counts the attempt that just failed.
    """
    rng = rng or random.Random()
    step = DELIVERY_BACKOFF_S[min(max(attempts - 1, 0), len(DELIVERY_BACKOFF_S) - 1)]
    wait = step * (0.8 + 0.4 * rng.random())
    if retry_after_s is not None:
        wait = max(wait, retry_after_s)
    when = now + timedelta(seconds=wait)
    if when - created_at > timedelta(seconds=max_age_s):
        return None
    return when
