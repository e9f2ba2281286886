"""`watcher check`: validate config and rules, print what was found."""

from __future__ import annotations

import argparse

from watcher.cli.common import load_all
from watcher.core.display import redact
from watcher.delivery.channels import check_channels
from watcher.rules.match import describe


def cmd_check(args: argparse.Namespace) -> int:
    settings, ruleset = load_all(args, cached=False)
    check_channels(settings.channels)  # templates compile and render, or exit 2
    print(f"config: {settings.source}")
    print(f"database: {settings.database_shown}")
    print(f"rules: {settings.rules} ({len(ruleset.rules)} rule(s))")
    print(f"feeds ({len(settings.feeds)}):")
    for f in settings.feed_models():
        tags = f" tags={','.join(f.tags)}" if f.tags else ""
        print(f"  {f.name}: {redact(f.url, settings.secrets)} every {f.interval_s:g}s{tags}")
    print(f"channels ({len(settings.channels)}):")
    for name, ch in settings.channels.items():
        print(f"  {name}: {ch.type}")
    for name, why in settings.unusable_channels.items():
        print(f"  {name}: UNUSABLE ({why}); no rule uses it")
    for notice in settings.notices:
        print(f"warning: {notice}")
    print("rules:")
    for r in ruleset.rules:
        pacing = (f" (digest {r.digest})" if r.digest else
                  f" (cooldown {r.cooldown_s:g}s)" if r.cooldown_s else "")
        print(f"  {r.name}: {describe(r)} -> {', '.join(r.notify)}{pacing}")
    print("ok")
    return 0
