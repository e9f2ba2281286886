"""WebSub subscriptions: one per feed, kept across restarts for renewal and removal."""

from __future__ import annotations

from watcher.core.websub import Subscription
from watcher.store.sqlite.base import Row, SqliteBase, from_ts, must_ts, ts


def _sub(r: Row) -> Subscription:
    return Subscription(r["feed"], r["hub"], r["topic"], r["callback_id"], r["secret"],
                        r["state"], must_ts(r["requested_at"]), from_ts(r["lease_until"]))


class WebSubStore(SqliteBase):
    def websub_subscriptions(self) -> list[Subscription]:
        return [_sub(r) for r in self._rows("SELECT * FROM websub ORDER BY feed")]

    def save_websub(self, sub: Subscription) -> None:
        with self._atomic():
            self._exec(
                "INSERT OR REPLACE INTO websub (feed, hub, topic, callback_id, secret, state, "
                "requested_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [sub.feed, sub.hub, sub.topic, sub.callback_id, sub.secret, sub.state,
                 ts(sub.requested_at), ts(sub.lease_until)])

    def drop_websub(self, feed: str) -> None:
        with self._atomic():
            self._exec("DELETE FROM websub WHERE feed = ?", [feed])
