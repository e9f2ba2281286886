"""When to poll a feed next, and when to retry a delivery. Pure: `now` is a parameter."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise

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
        if when.tzinfo is None:  # asctime and other zone-less forms are GMT (RFC 9110)
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)



@dataclass(frozen=True)
class PollPolicy:
    """How one feed is paced. Every figure in seconds."""

    interval_s: float = 900.0
    min_interval_s: float = 120.0
    max_interval_s: float = 2 * 3600.0
    max_server_wait_s: float = 6 * 3600.0  # a <ttl> or max-age beyond this is not obeyed
    adaptive: bool = True


def cache_lifetime_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """Cache-Control max-age (or s-maxage), else Expires relative to Date (or now)."""
    cc = headers.get("cache-control", "")
    if "no-store" not in cc and "no-cache" not in cc:
        for part in cc.split(","):
            name, _, value = part.strip().partition("=")
            if name.lower() in ("max-age", "s-maxage") and value.strip().strip('"').isdigit():
                return float(value.strip().strip('"'))
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        when = parsedate_to_datetime(expires)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ref = now
    if headers.get("date"):
        try:
            ref = parsedate_to_datetime(headers["date"]) or now
        except (TypeError, ValueError, IndexError):
            ref = now
        if ref.tzinfo is None:
            ref = ref.replace(tzinfo=UTC)
    return max((when - ref).total_seconds(), 0.0)


def server_min_wait_s(headers: Mapping[str, str], now: datetime, ttl_minutes: int | None,
                      sy_period_s: float | None, cap_s: float) -> float:
    """The longest wait the feed or its server asks for, bounded by `cap_s`."""
    asks = [0.0]
    if ttl_minutes and ttl_minutes > 0:
        asks.append(ttl_minutes * 60.0)
    if sy_period_s:
        asks.append(sy_period_s)
    lifetime = cache_lifetime_s(headers, now)
    if lifetime:
        asks.append(lifetime)
    return min(max(asks), cap_s)


def publishing_gap_s(published: Sequence[datetime | None], now: datetime) -> float | None:
    """Median gap between the feed's recent items, or None with too little to go on."""
    stamps = sorted({p for p in published if p is not None and p <= now}, reverse=True)[:20]
    if len(stamps) < 3:
        return None
    gaps = sorted((a - b).total_seconds() for a, b in pairwise(stamps))
    return gaps[len(gaps) // 2]


def next_poll_after_success(now: datetime, policy: PollPolicy,
                            published: Sequence[datetime | None] = (),
                            server_wait_s: float = 0.0) -> datetime:
    """The configured interval, adapted to how often the feed publishes, never sooner
    than the feed or its server asked for.

    Adapting: a feed that publishes every 10 minutes is polled about every 5 (but
    not below min_interval); a feed that publishes daily is polled at max_interval.
    """
    wait = policy.interval_s
    gap = publishing_gap_s(published, now) if policy.adaptive else None
    if gap is not None:
        wait = min(max(gap / 2, policy.min_interval_s), policy.max_interval_s)
    wait = max(wait, min(server_wait_s, policy.max_server_wait_s))
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
                      rng: random.Random | None = None,
                      steps: Sequence[float] = DELIVERY_BACKOFF_S) -> datetime | None:
    """When to try a failed delivery again; None when it should be declared dead.

    `attempts` counts the attempt that just failed; `steps` is the wait after
    the 1st, 2nd ... failure (the last step repeats).
    """
    rng = rng or random.Random()
    steps = tuple(steps) or DELIVERY_BACKOFF_S
    step = steps[min(max(attempts - 1, 0), len(steps) - 1)]
    wait = step * (0.8 + 0.4 * rng.random())
    if retry_after_s is not None:
        wait = max(wait, retry_after_s)
    when = now + timedelta(seconds=wait)
    if when - created_at > timedelta(seconds=max_age_s):
        return None
    return when
