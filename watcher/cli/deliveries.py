"""`watcher deliveries [--status failed|dead|...] [--rule R]` and
`watcher deliveries retry ID... | --all-dead`: the outbox, for people."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from watcher.cli.commands import STATUSES
from watcher.cli.common import open_store_for, when
from watcher.core.display import printable, redact
from watcher.core.errors import ConfigError
from watcher.core.records import DeliveryRecord


def _shown_status(row: DeliveryRecord, now: datetime) -> str:
    if row.status == "pending" and row.held_until and row.attempts == 0 \
            and row.held_until > now:
        return "held"
    return "failed" if row.status == "retrying" else row.status


def cmd_list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    settings, store = open_store_for(args)
    try:
        rows = store.deliveries(STATUSES.get(args.status) if args.status else None, args.rule)
    finally:
        store.close()
    if args.status:
        rows = [r for r in rows if args.status in (_shown_status(r, now), r.status)
                or (args.status == "pending" and _shown_status(r, now) == "pending")]
    if not rows:
        print("no deliveries" + (f" with status {args.status}" if args.status else ""))
        return 0
    print(f"{'id':<36} {'status':<8} {'tries':>5}  {'rule':<20} {'channel':<14} "
          f"{'next / sent':<19}  title / last error")
    for r in rows:
        shown = _shown_status(r, now)
        at = r.sent_at if r.status == "sent" else (
            None if r.status == "dead" else r.next_attempt_at)
        print(f"{r.id:<36} {shown:<8} {r.attempts:>5}  {r.rule[:20]:<20} "
              f"{r.channel[:14]:<14} {when(at):<19}  {printable(r.title, limit=60)}")
        if r.digest_id:
            print(f"{'':<36} digest {r.digest_id}")
        if r.last_error and r.status != "sent":
            print(f"{'':<36} last error: {printable(redact(r.last_error, settings.secrets))}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if not args.ids and not args.all_dead:
        raise ConfigError("deliveries retry: name delivery ids or use --all-dead")
    _, store = open_store_for(args)
    try:
        done = store.requeue_deliveries(datetime.now(UTC), args.ids, all_dead=args.all_dead)
    finally:
        store.close()
    missing = [i for i in args.ids if i not in done]
    for i in missing:
        print(f"watcher: deliveries retry: {i}: no such delivery waiting or dead "
              "(unknown, or already sent)", file=sys.stderr)
    print(f"{len(done)} deliver{'y' if len(done) == 1 else 'ies'} queued again; "
          "the running daemon (or the next `watcher run --once`) sends them")
    return 1 if missing else 0
