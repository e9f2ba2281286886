"""The outbox in a real SQLite file: holds, digests, cooldowns, claims, requeues."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.delivery_helpers import (
    T0,
    Clock,
    RecordingChannel,
    add_match,
    statuses,
    store_at,
)
from watcher.core.digest import Policy
from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Digest
from watcher.delivery.dispatch import Dispatcher
from watcher.store.sqlite import SqliteStore as Store

UTC_TZ = ZoneInfo("UTC")


def dispatcher(store: Store, channel: RecordingChannel, clock: Clock,
               policies: dict[str, Policy] | None = None, **kw: object) -> Dispatcher:
    return Dispatcher(store, {channel.name: channel}, clock, tz=UTC_TZ,
                      policies=lambda: policies or {}, **kw)  # type: ignore[arg-type]


def test_cooldown_sends_the_first_then_one_digest_when_the_window_ends(
        tmp_path: Path) -> None:
    store, clock, hook = store_at(tmp_path), Clock(), RecordingChannel()
    d = dispatcher(store, hook, clock, {"missiles": Policy(cooldown_s=1800)})

    add_match(store, 1, clock.now)
    asyncio.run(d.dispatch_due())
    assert [type(m) for m in hook.sent] == [Alert]  # the first alerts at once

    for n, minutes in ((2, 5), (3, 12), (4, 29)):
        clock.now = T0 + timedelta(minutes=minutes)
        add_match(store, n, clock.now)
        asyncio.run(d.dispatch_due())
    assert len(hook.sent) == 1  # the rest are held, stored, not sent
    assert statuses(store) == {"sent": 1, "pending": 3}
    held = [r for r in store.deliveries() if r.status == "pending"]
    assert {r.held_until for r in held} == {datetime(2026, 3, 2, 10, 30, tzinfo=UTC)}
    assert len({r.digest_id for r in held}) == 1

    clock.now = T0 + timedelta(minutes=30)
    asyncio.run(d.dispatch_due())
    assert len(hook.sent) == 2
    digest = hook.sent[1]
    assert isinstance(digest, Digest) and digest.id == held[0].digest_id
    assert [a.title for a in digest.alerts] == [
        f"Story {n}: a new tactical missile" for n in (2, 3, 4)]
    assert statuses(store) == {"sent": 4}

    # After the window a new match alerts at once again.
    clock.now = T0 + timedelta(minutes=41)
    add_match(store, 5, clock.now)
    asyncio.run(d.dispatch_due())
    assert isinstance(hook.sent[-1], Alert) and hook.sent[-1].title.startswith("Story 5")


def test_cooldown_is_per_channel(tmp_path: Path) -> None:
    store, clock = store_at(tmp_path), Clock()
    hook, mail = RecordingChannel("hook"), RecordingChannel("mail")
    d = Dispatcher(store, {"hook": hook, "mail": mail}, clock, tz=UTC_TZ,
                   policies=lambda: {"missiles": Policy(cooldown_s=600)})
    add_match(store, 1, clock.now, channels=("hook", "mail"))
    clock.advance(60)
    add_match(store, 2, clock.now, channels=("hook", "mail"))
    asyncio.run(d.dispatch_due())
    assert len(hook.sent) == len(mail.sent) == 1
    clock.advance(600)
    asyncio.run(d.dispatch_due())
    assert isinstance(hook.sent[1], Digest) and isinstance(mail.sent[1], Digest)
    assert hook.sent[1].id != mail.sent[1].id


def test_digest_rule_waits_for_its_time_and_survives_a_restart(tmp_path: Path) -> None:
    clock, hook = Clock(T0 + timedelta(minutes=5)), RecordingChannel()
    policies = {"missiles": Policy(digest="hourly")}
    store = store_at(tmp_path)
    add_match(store, 1, clock.now)
    clock.advance(600)
    add_match(store, 2, clock.now)
    asyncio.run(dispatcher(store, hook, clock, policies).dispatch_due())
    assert hook.sent == []
    store.close()

    # A new process: the held deliveries are still there and still held.
    store = store_at(tmp_path)
    clock.now = T0 + timedelta(minutes=59)
    asyncio.run(dispatcher(store, hook, clock, policies).dispatch_due(ignore_schedule=True))
    assert hook.sent == []  # --once does not send a digest before its time
    clock.now = T0 + timedelta(hours=1)
    asyncio.run(dispatcher(store, hook, clock, policies).dispatch_due())
    assert len(hook.sent) == 1 and isinstance(hook.sent[0], Digest)
    assert len(hook.sent[0].alerts) == 2
    assert statuses(store) == {"sent": 2}


def test_a_digest_is_marked_sent_only_when_accepted_and_keeps_its_id(tmp_path: Path) -> None:
    store, clock, hook = store_at(tmp_path), Clock(), RecordingChannel()
    d = dispatcher(store, hook, clock, {"missiles": Policy(digest="hourly")},
                   backoff=(10, 20))
    for n in (1, 2, 3):
        add_match(store, n, clock.now)
    asyncio.run(d.dispatch_due())
    clock.now = T0 + timedelta(hours=1)
    hook.fail = [DeliveryError("deliver: channel 'hook': webhook answered 503")]
    asyncio.run(d.dispatch_due())
    rows = store.deliveries()
    assert {r.status for r in rows} == {"retrying"} and {r.attempts for r in rows} == {1}
    assert all(r.last_error and "503" in r.last_error and "retry at" in r.last_error
               for r in rows)
    clock.advance(13)
    asyncio.run(d.dispatch_due())
    assert statuses(store) == {"sent": 3}
    assert len(hook.sent) == 1 and len(hook.sent[0].alerts) == 3  # type: ignore[union-attr]
    digest_ids = {r.digest_id for r in store.deliveries()}
    assert digest_ids == {hook.sent[0].id}  # type: ignore[union-attr]


def test_a_late_member_never_reuses_the_id_of_a_digest_already_sent(tmp_path: Path) -> None:
    store, clock, hook = store_at(tmp_path), Clock(), RecordingChannel()
    d = dispatcher(store, hook, clock, {"missiles": Policy(digest="hourly")})
    add_match(store, 1, T0)
    clock.now = T0 + timedelta(hours=1)
    asyncio.run(d.dispatch_due())
    # A match made before the hour but written after its digest left (a crash between).
    add_match(store, 2, T0 + timedelta(minutes=59))
    asyncio.run(d.dispatch_due())
    assert len(hook.sent) == 2
    assert hook.sent[0].id != hook.sent[1].id  # type: ignore[union-attr]


def test_permanent_failure_is_dead_and_the_operator_is_told(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, clock = store_at(tmp_path), Clock()
    hook, ops = RecordingChannel("hook"), RecordingChannel("ops")
    hook.fail = [DeliveryError("deliver: channel 'hook': webhook answered 404",
                               permanent=True)]
    ops.fail = [DeliveryError("ops is down too")]  # told, but its own failure goes nowhere
    d = Dispatcher(store, {"hook": hook, "ops": ops}, clock, tz=UTC_TZ,
                   failure_channels=("ops", "hook"))
    add_match(store, 1, clock.now, channels=("hook",))
    add_match(store, 2, clock.now, channels=("hook",))
    hook.fail.append(DeliveryError("deliver: channel 'hook': webhook answered 404",
                                   permanent=True))
    report = asyncio.run(d.dispatch_due())
    assert report.dead == 2
    assert statuses(store) == {"dead": 2}
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("is dead after 1 attempt(s)" in e and "404" in e for e in errors)
    assert any("could not tell channel 'ops'" in e for e in errors)
    # The second notice reached ops; nothing was queued for it, nothing went to hook.
    assert len(ops.sent) == 1 and ops.sent[0].rule == "watcher-delivery-failed"  # type: ignore
    assert "404" in ops.sent[0].snippet  # type: ignore[union-attr]
    assert {r.channel for r in store.deliveries()} == {"hook"}

    # `watcher deliveries retry` puts them back; they go out with a fresh budget.
    requeued = store.requeue_deliveries(clock.now, all_dead=True)
    assert len(requeued) == 2
    asyncio.run(d.dispatch_due())
    assert statuses(store) == {"sent": 2}


def test_gone_channel_is_disabled_after_410(tmp_path: Path) -> None:
    store, clock, hook = store_at(tmp_path), Clock(), RecordingChannel()
    hook.fail = [DeliveryError("deliver: channel 'hook': webhook answered 410 Gone",
                               disable_channel=True)]
    d = dispatcher(store, hook, clock)
    for n in (1, 2, 3):
        add_match(store, n, clock.now)
    asyncio.run(d.dispatch_due())
    assert hook.sent == [] and statuses(store) == {"dead": 3}
    assert "hook" in d.disabled
    errors = [r.last_error for r in store.deliveries()]
    assert sum("410" in e for e in errors) == 3 and sum("is disabled" in e for e in errors) == 2


def test_two_dispatchers_on_one_database_never_send_the_same_delivery(tmp_path: Path) -> None:
    """Each with its own connection, sending slowly, side by side."""
    seed = store_at(tmp_path)
    clock = Clock()
    for n in range(40):
        add_match(seed, n, clock.now, channels=("hook", "mail"))

    class Slow(RecordingChannel):
        async def send(self, alert: Alert) -> None:
            await asyncio.sleep(0.002)
            await super().send(alert)

    a_hook, b_hook, a_mail, b_mail = Slow("hook"), Slow("hook"), Slow("mail"), Slow("mail")
    a = Dispatcher(store_at(tmp_path), {"hook": a_hook, "mail": a_mail}, clock, limit=7)
    b = Dispatcher(store_at(tmp_path), {"hook": b_hook, "mail": b_mail}, clock, limit=7)

    async def both() -> None:
        await asyncio.gather(a.dispatch_due(), b.dispatch_due(), a.dispatch_due())

    asyncio.run(both())
    sent = a_hook.alert_ids() + b_hook.alert_ids() + a_mail.alert_ids() + b_mail.alert_ids()
    assert len(sent) == 80 and len(set(sent)) == 80
    assert a_hook.sent and b_hook.sent  # both did work
    assert statuses(seed) == {"sent": 80}


def test_claim_takes_every_member_of_a_digest_even_past_the_batch_limit(
        tmp_path: Path) -> None:
    store, clock, hook = store_at(tmp_path), Clock(), RecordingChannel()
    d = dispatcher(store, hook, clock, {"missiles": Policy(digest="hourly")}, limit=2)
    for n in range(5):
        add_match(store, n, clock.now)
    asyncio.run(d.dispatch_due())
    clock.now = T0 + timedelta(hours=1)
    asyncio.run(d.dispatch_due())
    assert len(hook.sent) == 1 and len(hook.sent[0].alerts) == 5  # type: ignore[union-attr]


def test_migration_keeps_older_deliveries_sendable(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    add_match(store, 1, T0)
    store.close()
    with sqlite3.connect(tmp_path / "watcher.db") as db:
        cols = {r[1] for r in db.execute("PRAGMA table_info(deliveries)")}
        assert {"classified_at", "held_until", "digest_id", "requeued_at"} <= cols


@pytest.mark.parametrize("drop", [False, True])
def test_a_muted_rule_sends_one_digest_when_the_mute_ends_or_drops_what_it_held(
        tmp_path: Path, drop: bool) -> None:
    store, clock, hook = store_at(tmp_path), Clock(), RecordingChannel()
    until = T0 + timedelta(hours=1)
    d = dispatcher(store, hook, clock, {"missiles": Policy(muted_until=until, drop_muted=drop)})
    for n, minutes in ((1, 0), (2, 20)):
        clock.now = T0 + timedelta(minutes=minutes)
        add_match(store, n, clock.now)
        asyncio.run(d.dispatch_due())
    assert hook.sent == []
    assert statuses(store) == ({"dropped": 2} if drop else {"pending": 2})
    clock.now = until + timedelta(minutes=1)
    asyncio.run(d.dispatch_due())
    if drop:
        assert hook.sent == [] and statuses(store) == {"dropped": 2}
        assert all("muted until" in (r.last_error or "") for r in store.deliveries())
    else:
        assert [type(m) for m in hook.sent] == [Digest] and statuses(store) == {"sent": 2}
