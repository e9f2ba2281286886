"""WebSub subscriptions on PostgreSQL: one per feed, kept for renewal and removal."""

from __future__ import annotations

from watcher.core.websub import Subscription
from watcher.store.postgres.base import PgBase


class WebSubPg(PgBase):
    def websub_subscriptions(self) -> list[Subscription]:
        return [Subscription(r["feed"], r["hub"], r["topic"], r["callback_id"], r["secret"],
                             r["state"], r["requested_at"], r["lease_until"])
                for r in self._rows("SELECT * FROM websub ORDER BY feed")]

    def save_websub(self, sub: Subscription) -> None:
        with self._tx():
            self._exec(
                "INSERT INTO websub (feed, hub, topic, callback_id, secret, state, "
                "requested_at, lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (feed) DO UPDATE SET hub = excluded.hub, topic = excluded.topic, "
                "callback_id = excluded.callback_id, secret = excluded.secret, "
                "state = excluded.state, requested_at = excluded.requested_at, "
                "lease_until = excluded.lease_until",
                [sub.feed, sub.hub, sub.topic, sub.callback_id, sub.secret, sub.state,
                 sub.requested_at, sub.lease_until])

    def drop_websub(self, feed: str) -> None:
        with self._tx():
            self._exec("DELETE FROM websub WHERE feed = %s", [feed])
