"""`watcher search`, `show`, `status` and `db prune`: what the daemon stored."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.cli.common import Progress, load_settings_for
from watcher.core.errors import ConfigError
from watcher.service.lock import holder
from watcher.settings.config import parse_duration
from watcher.store.sqlite import Store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("search", parents=[common], help="full-text search of stored articles")
    s.add_argument("query", help='FTS5 query: words, "a phrase", AND/OR/NOT, prefix*')
    s.add_argument("--since", help="only articles fetched in this period, e.g. 7d")
    s.add_argument("--feed", help="only this feed")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true", help="JSON lines for scripts")
    s.set_defaults(func=cmd_search)

    show = sub.add_parser("show", parents=[common], help="one stored article and its alerts")
    show.add_argument("article_id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    status = sub.add_parser("status", parents=[common], help="the daemon at a glance")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    db = sub.add_parser("db", parents=[common], help="database maintenance")
    dbs = db.add_subparsers(dest="db_command", required=True)
    prune = dbs.add_parser("prune", parents=[common],
                           help="remove articles older than the retention settings")
    prune.set_defaults(func=cmd_prune)


def _open(args: argparse.Namespace) -> tuple[Any, Store]:
    settings = load_settings_for(args)
    return settings, Store(settings.database)


def cmd_search(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
        except ValueError as exc:
            raise ConfigError(f"search: --since: {exc}") from None
    _, store = _open(args)
    try:
        rows = store.search(args.query, since=since, feed=args.feed, limit=args.limit)
    finally:
        store.close()
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    if not rows:
        print("no articles match")
    for r in rows:
        when = (r["published_at"] or r["fetched_at"] or "")[:16].replace("T", " ")
        print(f"#{r['id']}  {when}  [{r['feed']}]  {r['title']}")
        print(f"    {' '.join(r['snippet'].split())}")
        if r["url"]:
            print(f"    {r['url']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _, store = _open(args)
    try:
        record = store.article_record(args.article_id)
    finally:
        store.close()
    if record is None:
        print(f"show: no article #{args.article_id}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    print(f"#{record['id']} {record['title']}")
    print(f"feed:      {record['feed']}   entry: {record['entry_id']}")
    print(f"link:      {record['url'] or '-'}")
    print(f"published: {record['published_at'] or '-'}   fetched: {record['fetched_at']}")
    print(f"text from: {record['text_source']}"
          + (f" (page failed: {record['page_error']})" if record["page_error"] else ""))
    if record["matches"]:
        print("matched:")
        for m in record["matches"]:
            print(f"  {m['rule']}: {m['query']} in {m['field']}: {m['snippet']}")
        for d in record["deliveries"]:
            print(f"  -> {d['channel']}: {d['status']} after {d['attempts']} attempt(s)"
                  + (f" ({d['last_error']})" if d["last_error"] else ""))
    else:
        print("matched:   no rule")
    print()
    if record["summary"]:
        print(record["summary"])
        print()
    print(record["body"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        report = store.status_report(now, midnight)
    finally:
        store.close()
    pid = holder(settings.database)
    report["daemon"] = {"running": pid is not None, "pid": pid}
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        return 0
    f = report["feeds"]
    print(f"daemon:     {'running (pid ' + str(pid) + ')' if pid else 'not running'}")
    print(f"database:   {settings.database}")
    print(f"feeds:      {f['total'] or 0} total, {f['healthy'] or 0} healthy, "
          f"{f['failing'] or 0} failing ({f['unhealthy'] or 0} unhealthy), {f['gone'] or 0} gone")
    print(f"articles:   {report['articles_today']} today, {report['articles_total']} stored")
    print(f"matches:    {report['matches_today']} today")
    d = report["deliveries"]
    print(f"deliveries: {report['backlog']} waiting"
          + (f" (oldest {report['backlog_oldest'][:19].replace('T', ' ')})"
             if report["backlog_oldest"] else "")
          + f", {d.get('sent', 0)} sent, {d.get('dead', 0)} dead")
    if report["feed_errors"] or report["delivery_errors"]:
        print("last errors:")
        for e in report["feed_errors"]:
            print(f"  {e['last_error_at'][:19].replace('T', ' ')}  {e['last_error']}")
        for e in report["delivery_errors"]:
            print(f"  {(e['last_attempt_at'] or '')[:19].replace('T', ' ')}  {e['last_error']}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    bar: list[Progress] = []
    try:
        removed = store.prune(datetime.now(UTC), settings.retention.days,
                              settings.retention.matched_days,
                              progress=lambda n: bar[0](n) if bar else None,
                              total=lambda n: bar.append(Progress(n, "pruning",
                                                                  "article(s)", 2000)))
    finally:
        for b in bar:
            b.close()
        store.close()
    print(f"db prune: removed {removed} article(s) (unmatched older than "
          f"{settings.retention.days:g} days, matched older than "
          f"{settings.retention.matched_days:g} days)")
    return 0
