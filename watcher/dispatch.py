"""Send due deliveries through their channels, with retry and dead-letter."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from watcher.channels import Channel
from watcher.errors import DeliveryError
from watcher.models import Delivery
from watcher.schedule import delivery_retry_at
from watcher.store import Store

log = logging.getLogger("watcher.dispatch")
# Long enough for a slow receiver within its own timeout; short enough that a
# crashed process's claims come back soon.
LEASE_S = 120.0


@dataclass
class DispatchReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0


async def dispatch_due(store: Store, channels: Mapping[str, Channel],
                       clock: Callable[[], datetime], *, max_age_s: float,
                       limit: int = 100, ignore_schedule: bool = False) -> DispatchReport:
    """Claim what is due and send it; each channel in order, channels side by side.

    `ignore_schedule` sends waiting retries now (`watcher run --once`).
    """
    report = DispatchReport()
    while True:
        batch = store.claim_deliveries(clock(), LEASE_S, limit, ignore_schedule=ignore_schedule)
        if not batch:
            return report
        by_channel: dict[str, list[Delivery]] = defaultdict(list)
        for d in batch:
            by_channel[d.channel].append(d)
        await asyncio.gather(*(
            _send_all(store, channels.get(name), name, items, clock, max_age_s, report)
            for name, items in by_channel.items()))
        if len(batch) < limit:
            return report


async def _send_all(store: Store, channel: Channel | None, name: str, items: list[Delivery],
                    clock: Callable[[], datetime], max_age_s: float,
                    report: DispatchReport) -> None:
    for d in items:
        try:
            if channel is None:
                raise DeliveryError(f"channel {name!r} is not configured (any more)")
            await channel.send(d.alert)
        except asyncio.CancelledError:
            store.release(d.id)
            raise
        except DeliveryError as exc:
            _failed(store, d, str(exc), exc.permanent, exc.retry_after, clock(), max_age_s,
                    report)
        except Exception as exc:  # a channel bug must cost one delivery, not the loop
            _failed(store, d, f"deliver: channel {name!r}: {type(exc).__name__}: {exc}",
                    False, None, clock(), max_age_s, report)
        else:
            store.mark_sent(d.id, clock())
            report.sent += 1
            log.info("deliver: %s sent to %r (rule %r)", d.id, name, d.rule)


def _failed(store: Store, d: Delivery, error: str, permanent: bool, retry_after: float | None,
            now: datetime, max_age_s: float, report: DispatchReport) -> None:
    attempts = d.attempts + 1
    when = None if permanent else delivery_retry_at(now, attempts, d.created_at, max_age_s,
                                                    retry_after)
    store.mark_failed(d.id, now, error, when)
    if when is None:
        report.dead += 1
        log.error("%s; delivery %s is dead after %d attempt(s) (rule %r)", error, d.id,
                  attempts, d.rule)
    else:
        report.retrying += 1
        log.warning("%s; delivery %s retries at %s (attempt %d)", error, d.id,
                    when.strftime("%H:%M:%S"), attempts)
