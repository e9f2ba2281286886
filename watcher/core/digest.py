"""Alert fatigue: when a delivery goes out at once and when it waits for a digest.

Pure: `now` and the time zone are parameters. The dispatcher classifies new
deliveries with `classify` (the store applies the decisions), and groups what it
claimed with `group`.

- `cooldown`: the first match of a rule goes out at once and opens a window of
  `cooldown` seconds; matches inside the window are held until it ends and then
  go out together as one digest. The next match after the window alerts at once.
- a rule muted until a time: its matches are held until then and go out as one
  digest when the mute ends (a mute wins over both of the below); or, when the
  mute was set to drop, they are marked dropped and never go out.
- `digest`: every match waits for the next digest time ("hourly": the top of the
  hour, "daily": midnight, "HH:MM": that time each day). `digest` wins over
  `cooldown` when a rule has both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import TypeVar

from watcher.core.intents import HoldCandidate, HoldDecision

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Policy:
    """How one rule's alerts are paced. Neither set: every alert goes out at once."""

    cooldown_s: float | None = None
    digest: str | None = None
    # muted (from the web console): held until then, and then sent as one digest
    muted_until: datetime | None = None
    drop_muted: bool = False  # the mute drops what it holds instead

    @property
    def holds(self) -> bool:
        return bool(self.cooldown_s or self.digest or self.muted_until)


def parse_cooldown(value: object) -> float:
    """'30m', '2h', '90s', '1d' or a number of seconds -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 30m, 2h)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError("a cooldown must be greater than zero")
    return seconds


def parse_digest(value: object) -> str:
    """'hourly', 'daily' or 'HH:MM' -> the normalised form.

    YAML 1.1 reads an unquoted 8:30 as the number 510 (base 60); that is taken
    back to "08:30".
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        hours, minutes = divmod(value, 60)
        return f"{hours:02d}:{minutes:02d}"
    text = str(value).strip().lower()
    if text in ("hourly", "daily"):
        return text
    m = _CLOCK.match(text)
    if not m:
        raise ValueError(f"{value!r} is not a digest time (use hourly, daily or \"HH:MM\")")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def next_digest_at(spec: str, after: datetime, tz: tzinfo) -> datetime:
    """The first digest time strictly after `after` (aware), in `after`'s zone."""
    local = after.astimezone(tz)
    if spec == "hourly":
        when = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return when.astimezone(after.tzinfo)
    at = time(0, 0) if spec == "daily" else time(int(spec[:2]), int(spec[3:]))
    day = local.date()
    for offset in (0, 1, 2):
        naive = datetime.combine(day + timedelta(days=offset), at)
        when = naive.replace(tzinfo=tz)
        if when > local:
            return when.astimezone(after.tzinfo)
    raise AssertionError("unreachable: a digest time exists within two days")


def hold_until(policy: Policy, created_at: datetime, last_immediate_at: datetime | None,
               tz: tzinfo) -> datetime | None:
    """None: send now. Else the time the held delivery goes out in a digest.

    `last_immediate_at` is when the last alert of this rule to this channel that
    was *not* held was created (it opened the current cooldown window).
    """
    if policy.muted_until is not None and created_at < policy.muted_until:
        return policy.muted_until
    if policy.digest:
        return next_digest_at(policy.digest, created_at, tz)
    if policy.cooldown_s:
        if last_immediate_at is None:
            return None
        window_end = last_immediate_at + timedelta(seconds=policy.cooldown_s)
        return window_end if created_at < window_end else None
    return None


def dropped_why(muted_until: datetime) -> str:
    """What a dropped delivery says, in the outbox, of why it was not sent."""
    return (f"dropped: its rule was muted until {muted_until.isoformat(timespec='minutes')} "
            "with drop chosen; not sent")


def digest_id(rule: str, channel: str, held_until: datetime, salt: str = "") -> str:
    """Stable for one (rule, channel, release time): retries of the digest reuse it."""
    key = "\x00".join((rule, channel, held_until.isoformat(), salt))
    return "wg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def classify(candidates: Sequence[HoldCandidate],
             last_immediate: Mapping[tuple[str, str], datetime | None],
             policies: Mapping[str, Policy], tz: tzinfo) -> list[HoldDecision]:
    """Decide, in created order, whether each new delivery goes out now or is held.

    `last_immediate`: per (rule, channel), when the last delivery that was not held
    was created (it opened the current cooldown window); a delivery sent now
    opens the next one for those after it.
    """
    last = dict(last_immediate)
    out: list[HoldDecision] = []
    for c in sorted(candidates, key=lambda c: (c.created_at, c.id)):
        key = (c.rule, c.channel)
        basis = last.get(key)
        policy = policies.get(c.rule)
        until = (hold_until(policy, c.created_at, basis, tz)
                 if policy is not None and policy.holds else None)
        if until is None:
            last[key] = c.created_at
            out.append(HoldDecision(c.id, c.rule, c.channel, None, None, last_immediate.get(key)))
        else:
            dropped = bool(policy and policy.drop_muted and policy.muted_until == until)
            out.append(HoldDecision(c.id, c.rule, c.channel, until,
                                    digest_id(c.rule, c.channel, until),
                                    last_immediate.get(key), dropped))
    return out


T = TypeVar("T")


def group(items: Iterable[T], key_of: Iterable[str]) -> list[tuple[str, list[T]]]:
    """Group items by key, in first-seen order; `key_of` runs parallel to `items`."""
    out: dict[str, list[T]] = {}
    for item, key in zip(items, key_of, strict=True):
        out.setdefault(key, []).append(item)
    return list(out.items())
