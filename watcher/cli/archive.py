"""`watcher search`, `show` and `status`: what the daemon stored."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.cli.common import essentials_for, jsonable, open_store_for, when
from watcher.core.display import printable, redact
from watcher.core.errors import ConfigError
from watcher.core.records import ArticleRecord, ProblemRecord, StatusReport
from watcher.service.lock import holder
from watcher.store import open_store


def cmd_search(args: argparse.Namespace) -> int:
    from watcher.settings import parse_duration

    since = None
    if args.since:
        try:
            since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
        except ValueError as exc:
            raise ConfigError(f"search: --since: {exc}") from None
    _, store = open_store_for(args)
    try:
        hits = store.search(args.query, since=since, feed=args.feed, limit=args.limit)
    finally:
        store.close()
    if args.json:
        for h in hits:
            print(json.dumps(jsonable(h), ensure_ascii=False))
        return 0
    if not hits:
        print("no articles match")
    for h in hits:  # feed content: printable, never raw
        print(printable(f"#{h.id}  {when(h.published_at or h.fetched_at, 16)}  [{h.feed}]  "
                        f"{h.title}"))
        print(f"    {printable(h.snippet)}")
        if h.url:
            print(f"    {printable(h.url)}")
    return 0


def record_json(record: ArticleRecord) -> dict[str, Any]:
    """`watcher show --json`: the article's columns, then what it matched and where
    its story's alerts and copies went."""
    a = record.article
    out: dict[str, Any] = {
        "id": a.id, "feed": a.feed, "entry_id": a.entry_id, "url": a.url, "title": a.title,
        "summary": a.summary, "body": a.body, "text_source": a.text_source,
        "page_error": a.page_error, "author": a.author, "language": a.language,
        "sitename": a.sitename, "tags": list(a.tags), "published_at": a.published,
        "fetched_at": a.fetched_at, "matched_at": record.matched_at,
        "canonical_url": a.canonical_url, "story_id": a.story_id,
        "matches": record.matches, "deliveries": record.deliveries, "sources": record.sources}
    return jsonable(out)


def cmd_show(args: argparse.Namespace) -> int:
    settings, store = open_store_for(args)
    try:
        record = store.article_record(args.article_id)
    finally:
        store.close()
    if record is None:
        print(f"show: no article #{args.article_id}", file=sys.stderr)
        return 1
    if args.json:
        shown = record_json(record)
        shown["page_error"] = redact(shown["page_error"], settings.secrets) or None
        for d in shown["deliveries"]:
            d["last_error"] = redact(d["last_error"], settings.secrets) or None
        print(json.dumps(shown, ensure_ascii=False, indent=2))
        return 0
    _print_record(record, settings.secrets)
    return 0


def _print_record(record: ArticleRecord, secrets: tuple[str, ...]) -> None:
    """Feed content and errors printable (and errors redacted), never raw."""
    a = record.article
    print(printable(f"#{a.id} {a.title}"))
    print(printable(f"feed:      {a.feed}   entry: {a.entry_id}"))
    print(printable(f"link:      {a.url or '-'}"))
    print(f"published: {when(a.published)}   fetched: {when(a.fetched_at)}")
    print(f"text from: {a.text_source}" + (
        f" (page failed: {printable(redact(a.page_error, secrets))})" if a.page_error else ""))
    if record.matches:
        print("matched:")
        for m in record.matches:
            print(printable(f"  {m.rule}: {m.query} in {m.field}: {m.snippet}"))
        for d in record.deliveries:
            print(f"  -> {d.channel}: {d.status} after {d.attempts} attempt(s)" + (
                f" ({printable(redact(d.last_error, secrets))})" if d.last_error else ""))
    else:
        print("matched:   no rule")
    if len(record.sources) > 1:
        print("sources:")
        for s in record.sources:
            print(printable(f"  {when(s.seen_at, 16)}  [{s.feed}] {s.title or ''}  "
                            f"{s.url or ''}"))
    print()
    if a.summary:
        print(printable(a.summary, multiline=True))
        print()
    print(printable(a.body, multiline=True))


def _redacted(report: StatusReport, secrets: tuple[str, ...]) -> StatusReport:
    """The report with its errors redacted: they may quote a feed's URL and its token."""
    def clean(problems: tuple[ProblemRecord, ...]) -> tuple[ProblemRecord, ...]:
        return tuple(replace(p, error=redact(p.error, secrets)) for p in problems)
    return replace(report, feed_errors=clean(report.feed_errors),
                   delivery_errors=clean(report.delivery_errors))


def cmd_status(args: argparse.Namespace) -> int:
    settings = essentials_for(args)
    store = open_store(settings.database_target)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        report = _redacted(store.status_report(now, midnight), settings.secrets)
        # alive: a heartbeat within three ticks (a minute at least)
        daemons = store.live_daemons(now - timedelta(seconds=max(3 * settings.poll_tick, 60)))
    finally:
        store.close()
    pid = None if settings.shared else holder(Path(settings.database))
    differ = len({d.rules_hash for d in daemons}) > 1
    config_differs = len({d.config_hash for d in daemons}) > 1
    if args.json:
        print(json.dumps({**jsonable(report), "daemon": {"running": pid is not None,
                                                         "pid": pid},
                          "daemons": jsonable(daemons), "rules_differ": differ,
                          "config_differs": config_differs},
                         ensure_ascii=False, indent=2))
        return 0
    f, d = report.feeds, report.deliveries
    if settings.shared:
        print(f"daemons:    {len(daemons)} running")
        for info in daemons:
            print(f"  {info.host} pid {info.pid}, since {when(info.started_at)}, last seen "
                  f"{when(info.heartbeat_at)}, rules {info.rules_hash[:12]}")
        if differ:
            print("  WARNING: the daemons run different rules.yaml versions")
        if config_differs:
            print("  WARNING: the daemons run different configurations (watcher.yaml)")
    else:
        print(f"daemon:     {'running (pid ' + str(pid) + ')' if pid else 'not running'}")
    print(f"database:   {settings.database_shown}")
    print(f"feeds:      {f.total} total, {f.healthy} healthy, "
          f"{f.failing} failing ({f.unhealthy} unhealthy), {f.gone} gone")
    print(f"articles:   {report.articles_today} today, {report.articles_total} stored")
    print(f"matches:    {report.matches_today} today")
    print(f"deliveries: {report.backlog} waiting"
          + (f" (oldest {when(report.backlog_oldest)})" if report.backlog_oldest else "")
          + f", {d.get('sent', 0)} sent, {d.get('dead', 0)} dead")
    if report.feed_errors or report.delivery_errors:
        print("last errors:")
        for e in (*report.feed_errors, *report.delivery_errors):
            print(f"  {when(e.at)}  {printable(e.error)}")
    return 0
