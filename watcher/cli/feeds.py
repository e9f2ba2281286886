"""`watcher feeds [list|add|import|export]`: the feeds people manage."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from watcher.cli.common import Progress, open_store_for, when
from watcher.cli.propose import propose
from watcher.core.display import printable, redact
from watcher.core.errors import ConfigError
from watcher.fetch.client import HttpLimits
from watcher.settings import config_path, load_settings, parse_duration
from watcher.settings.opml import Subscription, read_opml, slug, write_opml


def cmd_list(args: argparse.Namespace) -> int:
    settings, store = open_store_for(args)
    configured = {f.name for f in settings.feeds}
    try:
        rows = {r.name: r for r in store.feed_health(datetime.now(UTC))}
        pushes = {sub.feed: sub for sub in store.websub_subscriptions()}
    finally:
        store.close()
    header = f"{'feed':<22} {'type':<8} {'state':<10} {'last success':<19}  " \
             f"{'next poll':<19}  {'fails':>5} {'7d':>5}  last error"
    print(header)
    for f in settings.feeds:
        r = rows.get(f.name)
        if r is None:
            print(f"{f.name:<22} {f.type:<8} {'new':<10} {'-':<19}  {'-':<19}  "
                  f"{0:>5} {0:>5}")
            continue
        state = ("paused" if r.paused_at else "gone" if r.gone_at
                 else "unhealthy" if r.unhealthy_since
                 else "failing" if r.consecutive_failures else "ok"
                 if r.last_success_at else "new")
        error = (r.last_error or "") if r.consecutive_failures or r.gone_at else ""
        error = printable(redact(error, settings.secrets))
        print(f"{f.name:<22} {f.type:<8} {state:<10} {when(r.last_success_at):<19}  "
              f"{when(r.next_poll_at):<19}  {r.consecutive_failures:>5} "
              f"{r.items_7d:>5}  {error}")
        sub = pushes.get(f.name)
        if sub is not None:
            lease = f", lease until {when(sub.lease_until)}" if sub.lease_until else ""
            print(f"{'':<22} websub: {sub.state} at {printable(redact(sub.hub))}{lease}")
    stale = sorted(set(rows) - configured)
    if stale:
        print(f"(in the database but no longer configured: {', '.join(stale)})")
    return 0


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def cmd_add(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    settings = load_settings(path)
    if urlsplit(args.url).scheme not in ("http", "https"):
        raise ConfigError(f"feeds add: {args.url!r} is not an http(s) URL")
    if args.interval:
        try:
            parse_duration(args.interval)
        except ValueError as exc:
            raise ConfigError(f"feeds add: --interval: {exc}") from None
    limits = HttpLimits(timeout_s=settings.fetch.timeout,
                        max_feed_bytes=settings.fetch.max_feed_bytes)
    found = asyncio.run(propose(args.url, args.allow_private, limits))
    feed_url = found.url
    taken = {f.name for f in settings.feeds}
    if args.name:
        if args.name in taken:
            raise ConfigError(f"feeds add: a feed named {args.name!r} already exists")
        name = args.name
    else:
        name = _unique(slug(found.title or urlsplit(feed_url).hostname or "feed"), taken)
    entry: dict[str, Any] = {"name": name, "url": feed_url}
    if found.kind != "feed":
        entry["type"] = found.kind
    if args.interval:
        entry["interval"] = args.interval
    if args.tag:
        entry["tags"] = list(args.tag)
    if args.allow_private:
        entry["allow_private"] = True
    from watcher.settings.edit import add_feeds  # ruamel.yaml: not in the daemon

    added = add_feeds(path, [entry])
    if not added:
        print(f"feeds add: {redact(feed_url)} is already in {path}")
        return 0
    load_settings(path)  # the edited file must still validate
    what = "feed" if found.kind == "feed" else f"{found.kind} source"
    print(f"added {what} {name!r}: {redact(feed_url)} ({printable(found.title) or 'untitled'}; "
          f"chose {printable(found.why)}) to {path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    settings = load_settings(path)
    source = Path(args.file)
    try:
        subs = read_opml(source.read_bytes(), str(source))
    except OSError as exc:
        raise ConfigError(f"feeds import: cannot read {source}: {exc.strerror or exc}") from None
    taken = {f.name for f in settings.feeds}
    entries: list[dict[str, Any]] = []
    skipped = 0
    progress = Progress(len(subs), "importing", "feed(s)", every=200)
    for s in subs:
        progress(1)
        if urlsplit(s.url).scheme not in ("http", "https"):
            print(f"feeds import: skipped {printable(redact(s.url))!r}: not an http(s) URL",
                  file=sys.stderr)
            skipped += 1
            continue
        name = _unique(slug(s.title or urlsplit(s.url).hostname or "feed"), taken)
        taken.add(name)
        entry: dict[str, Any] = {"name": name, "url": s.url}
        if args.interval:
            entry["interval"] = args.interval
        tags = [slug(c) for c in s.categories if slug(c, "")]
        if tags:
            entry["tags"] = tags
        entries.append(entry)
    progress.close()
    from watcher.settings.edit import add_feeds

    added = add_feeds(path, entries)
    load_settings(path)
    print(f"imported {len(added)} feed(s) from {source} into {path}"
          f" ({len(entries) - len(added)} already present, {skipped} skipped)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    settings = load_settings(config_path(args.config))
    # Sitemap and page sources are not feeds another reader could subscribe to.
    subs = [Subscription(title=f.name, url=f.url, categories=tuple(f.tags))
            for f in settings.feeds if f.type == "feed"]
    data = write_opml(subs, "watcher feeds", datetime.now(UTC))
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0
