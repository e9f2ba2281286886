"""The daemon's jobs in-process: overlapping ticks, due feeds, feed health."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from tests.servers import LoopbackServer, Request, Response
from watcher.rules import compile_rules, load_rules
from watcher.service.daemon import Daemon
from watcher.settings import load_settings

FEED = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><guid>1</guid><title>One</title></item></channel></rss>")


def make_daemon(tmp: Path, url: str) -> Daemon:
    (tmp / "watcher.yaml").write_text(yaml.safe_dump({
        "database": "watcher.db", "rules": "rules.yaml", "channels": {},
        "feeds": [{"name": "slow", "url": url, "allow_private": True}],
        "fetch": {"fetch_pages": False}}))
    (tmp / "rules.yaml").write_text("rules: []\n")
    settings = load_settings(tmp / "watcher.yaml")
    return Daemon(settings, compile_rules(load_rules(settings.rules)))


def test_tick_does_not_restart_a_feed_still_in_flight(tmp_path: Path) -> None:
    server = LoopbackServer()

    def slow(req: Request) -> Response:
        time.sleep(0.5)
        return 200, {"Content-Type": "application/rss+xml"}, FEED

    server.routes["/f.xml"] = slow
    try:
        daemon = make_daemon(tmp_path, server.url("/f.xml"))

        async def go() -> tuple[list, list]:
            first = asyncio.create_task(daemon.poll())
            await asyncio.sleep(0.1)
            second = await daemon.poll()  # the next tick, while the first is under way
            result = await first, second
            await daemon.close()
            return result

        first, second = asyncio.run(go())
        assert [o.feed for o in first] == ["slow"] and second == []
        assert len(server.requests) == 1
    finally:
        server.close()


def test_polled_feed_is_not_due_again_until_its_interval(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.routes["/f.xml"] = (200, {"Content-Type": "application/rss+xml"}, FEED)
    try:
        daemon = make_daemon(tmp_path, server.url("/f.xml"))

        async def go() -> tuple[list, list]:
            result = await daemon.poll(), await daemon.poll()
            await daemon.close()
            return result

        first, second = asyncio.run(go())
        assert len(first) == 1 and second == []
        assert len(server.requests) == 1
    finally:
        server.close()
