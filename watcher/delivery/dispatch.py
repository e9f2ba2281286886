"""Send due deliveries through their channels, with retry, digests and dead-letter.

One pass: classify new deliveries as immediate or held for a digest (a pure
decision, watcher.core.digest.classify, that the store applies), claim what is
due (the store always claims a digest's members together), send each unit (one
alert, or one digest) through its channel, then mark the unit sent, retrying or
dead. A unit is marked sent only after the channel accepted it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from watcher.core.alerts import ALERT_TITLE_LIMIT
from watcher.core.digest import Policy, classify, group
from watcher.core.display import shorten
from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Delivery, Digest
from watcher.core.schedule import DELIVERY_BACKOFF_S, delivery_retry_at
from watcher.delivery.channels import Channel
from watcher.store.protocol import OutboxStore

log = logging.getLogger("watcher.delivery.dispatch")
# Long enough for a slow receiver within its own timeout; short enough that a
# crashed process's claims come back soon.
LEASE_S = 120.0
FAILURE_RULE = "watcher-delivery-failed"


@dataclass
class DispatchReport:
    """What one pass of the dispatcher did."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0


@dataclass
class Dispatcher:
    """Sends what the outbox holds through the channels, retrying with backoff."""

    store: OutboxStore
    channels: Mapping[str, Channel]
    clock: Callable[[], datetime]
    max_age_s: float = 48 * 3600.0
    backoff: Sequence[float] = DELIVERY_BACKOFF_S
    # rule name -> cooldown/digest policy; read at each pass (rules may be reloaded)
    policies: Callable[[], Mapping[str, Policy]] = dict
    tz: tzinfo = UTC
    # channels told (best effort, outside the outbox) when a delivery is dead
    failure_channels: Sequence[str] = ()
    limit: int = 100
    lease_s: float = LEASE_S
    # channel name -> why it was disabled (a webhook answered 410), for this process
    disabled: dict[str, str] = field(default_factory=dict)
    # told of every outcome: (channel, "sent" | "retrying" | "dead", deliveries)
    counted: Callable[[str, str, int], None] = lambda channel, status, n: None
    # who holds our claims in the database: host, process id and a nonce
    owner: str = field(default_factory=lambda: claim_owner(socket.gethostname(), os.getpid()))

    def release_orphans(self, alive: Callable[[int], bool]) -> int:
        """Free claims left by processes on this host that died (kill -9, power cut),
        so their deliveries need not wait for the lease to run out."""
        host = socket.gethostname()
        freed = 0
        for owner in self.store.claim_owners(self.clock()):
            o_host, pid = parse_owner(owner)
            if owner != self.owner and o_host == host and pid is not None \
                    and (pid == os.getpid() or not alive(pid)):
                freed += self.store.release_claims_of(owner)
        if freed:
            log.info("deliver: %d delivery claim(s) of a stopped process released", freed)
        return freed

    def classify_new(self) -> int:
        """Decide for each new delivery whether it goes now or waits for a digest."""
        candidates, last_immediate = self.store.hold_candidates()
        if not candidates:
            return 0
        decisions = classify(candidates, last_immediate, self.policies(), self.tz)
        return self.store.apply_holds(decisions, self.clock())

    async def dispatch_due(self, ignore_schedule: bool = False) -> DispatchReport:
        """Claim what is due and send it; each channel in order, channels side by side.

        `ignore_schedule` sends waiting retries now (`watcher run --once`).
        """
        report = DispatchReport()
        # Ignoring the schedule, a failed delivery would be due again at once: each
        # is tried once per pass (else a long outage would keep `--once` busy forever).
        pass_start = self.clock() if ignore_schedule else None
        while True:
            self.classify_new()
            batch = self.store.claim_deliveries(self.clock(), self.lease_s, self.limit,
                                                ignore_schedule=ignore_schedule,
                                                owner=self.owner, tried_before=pass_start)
            if not batch:
                return report
            batch = self._with_sources(batch)
            by_channel: dict[str, list[Delivery]] = defaultdict(list)
            for d in batch:
                by_channel[d.channel].append(d)
            await asyncio.gather(*(self._send_channel(name, items, report)
                                   for name, items in by_channel.items()))
            if len(batch) < self.limit:
                return report

    def _with_sources(self, batch: list[Delivery]) -> list[Delivery]:
        """The story's other copies known now, so the message can say "also reported by"."""
        known = self.store.story_sources(d.story_id for d in batch if d.story_id is not None)
        out = []
        for d in batch:
            own = (d.alert.feed, d.alert.url)
            others = tuple((s.feed, shorten(s.title or "", ALERT_TITLE_LIMIT), s.url)
                           for s in known.get(d.story_id, ())
                           if (s.feed, s.url) != own) if d.story_id is not None else ()
            out.append(replace(d, alert=replace(d.alert, sources=others)) if others else d)
        return out

    async def _send_channel(self, name: str, items: list[Delivery],
                            report: DispatchReport) -> None:
        units = group(items, (d.digest_id or d.id for d in items))
        for i, (_, unit) in enumerate(units):
            try:
                await self._send_unit(name, unit, report)
            except asyncio.CancelledError:
                self.store.release([d.id for _, u in units[i:] for d in u])
                raise

    async def _send_unit(self, name: str, unit: list[Delivery],
                         report: DispatchReport) -> None:
        channel = self.channels.get(name)
        first = unit[0]
        ids = [d.id for d in unit]
        # Earlier units of this batch may have been slow: make sure it is still ours.
        if not self.store.renew_claim(ids, self.owner, self.clock(), self.lease_s):
            log.warning("deliver: %s: claim lost before sending; another loop has it",
                        first.digest_id or first.id)
            return
        try:
            if name in self.disabled:
                raise DeliveryError(f"channel {name!r} is disabled: {self.disabled[name]}",
                                    permanent=True)
            if channel is None:
                raise DeliveryError(f"channel {name!r} is not configured (any more)",
                                    permanent=True)
            if first.digest_id:
                await channel.send_digest(
                    Digest(id=first.digest_id, rule=first.rule,
                           alerts=tuple(d.alert for d in unit)))
            else:
                await channel.send(first.alert)
        except asyncio.CancelledError:
            raise
        except DeliveryError as exc:
            if exc.disable_channel:
                self.disabled[name] = str(exc)
                log.error("%s", exc)
            await self._failed(name, unit, str(exc), exc.permanent, exc.retry_after, report)
        except Exception as exc:  # a channel bug must cost one delivery, not the loop
            await self._failed(name, unit,
                               f"deliver: channel {name!r}: {type(exc).__name__}: {exc}",
                               False, None, report)
        else:
            self.store.mark_sent(ids, self.clock())
            report.sent += len(unit)
            self.counted(name, "sent", len(unit))
            what = f"digest {first.digest_id} ({len(unit)} alert(s))" if first.digest_id \
                else first.id
            log.info("deliver: %s sent to %r (rule %r)", what, name, first.rule)

    async def _failed(self, name: str, unit: list[Delivery], error: str, permanent: bool,
                      retry_after: float | None, report: DispatchReport) -> None:
        now = self.clock()
        attempts = max(d.attempts for d in unit) + 1
        created = min(d.created_at for d in unit)
        when = None if permanent else delivery_retry_at(
            now, attempts, created, self.max_age_s, retry_after, steps=self.backoff)
        unit_id = unit[0].digest_id or unit[0].id
        if when is None:
            self.store.mark_failed([d.id for d in unit], now, error, None)
            report.dead += len(unit)
            self.counted(name, "dead", len(unit))
            log.error("%s; delivery %s is dead after %d attempt(s) (rule %r); "
                      "`watcher deliveries retry %s` sends it again", error, unit_id,
                      attempts, unit[0].rule, unit[0].id)
            await self._tell_operator(name, unit, error)
        else:
            message = f"{error}; retry at {when.astimezone(UTC):%H:%M:%S}"
            self.store.mark_failed([d.id for d in unit], now, message, when)
            report.retrying += len(unit)
            self.counted(name, "retrying", len(unit))
            log.warning("%s (delivery %s, attempt %d)", message, unit_id, attempts)

    async def _tell_operator(self, failed: str, unit: list[Delivery], error: str) -> None:
        """Best effort, never through the outbox: a failing notice is only logged."""
        first = unit[0]
        notice = Alert(
            delivery_id="wn_" + (first.digest_id or first.id)[3:], rule=FAILURE_RULE,
            query=f"delivery to channel {failed!r} failed for good",
            title=f"Undelivered alert for rule {first.rule!r} on channel {failed!r}: "
                  f"{first.alert.title}" + (f" (+{len(unit) - 1} more)" if len(unit) > 1
                                            else ""),
            url=first.alert.url, feed=first.alert.feed, published=first.alert.published,
            field="delivery", snippet=error, matched=())
        for name in self.failure_channels:
            channel = self.channels.get(name)
            if name == failed or name in self.disabled or channel is None:
                continue
            try:
                await channel.send(notice)
            except Exception as exc:
                log.error("deliver: could not tell channel %r that a delivery is dead: %s",
                          name, exc)


def claim_owner(host: str, pid: int) -> str:
    return f"{host}|{pid}|{os.urandom(4).hex()}"


def parse_owner(owner: str) -> tuple[str, int | None]:
    host, _, rest = owner.partition("|")
    pid = rest.partition("|")[0]
    return host, int(pid) if pid.isdigit() else None


async def dispatch_due(store: OutboxStore, channels: Mapping[str, Channel],
                       clock: Callable[[], datetime], *, max_age_s: float,
                       limit: int = 100, ignore_schedule: bool = False) -> DispatchReport:
    """One pass with default settings (no holds, the standard backoff)."""
    return await Dispatcher(store, channels, clock, max_age_s=max_age_s,
                            limit=limit).dispatch_due(ignore_schedule)
