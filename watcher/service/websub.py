"""WebSub in the daemon: subscribe to the hubs feeds name, answer the hubs on the web
server (the console's), and ingest what they push at once.

A subscription is asked for when a polled feed names a hub (rel="hub") and
`web.public_url` is set; the hub verifies our intent on the callback, each
subscription's own path under `/websub/` on the web server (`web.listen`), which
hands the requests to `WebSub.answer` on the daemon's loop (watcher.web.websub). A
push is read only up to the feed size cap and believed only with a good
X-Hub-Signature (checked before parsing); it is then parsed and ingested like a
poll's entries. Leases are renewed before they end,
a feed removed from the config is unsubscribed, and while pushes are expected the
feed is still polled, at `web.websub_poll_interval`, as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from watcher.core.errors import FetchError, ParseError, StoreError
from watcher.core.models import Feed, ParsedFeed
from watcher.core.parse import parse_feed
from watcher.core.websub import (
    Subscription,
    needs_renewal,
    pushing,
    signature_ok,
    verify_intent,
)
from watcher.service.ingest import IngestContext, ingest_entries

log = logging.getLogger("watcher.service.websub")
_PATH = "/websub/"


class Door(Protocol):
    """Where the web server hands the hubs' requests over (watcher.web.websub.WebSubDoor):
    the daemon and the console know each other only through this."""

    def attach(self, loop: asyncio.AbstractEventLoop, answer: Callable[
            [str, str, Mapping[str, str], Mapping[str, str], bytes | None],
            Coroutine[Any, Any, tuple[int, str]]],
               knows: Callable[[str], Coroutine[Any, Any, bool]]) -> None: ...

    def detach(self) -> None: ...


class WebSub:
    def __init__(self, listen: str, public_url: str, lease_s: float, poll_s: float,
                 feeds: Callable[[], Mapping[str, Feed]], ctx: Callable[[], IngestContext],
                 max_bytes: int) -> None:
        self.listen = listen
        self.public_url = public_url.rstrip("/")
        self.lease_s, self.poll_s, self.max_bytes = lease_s, poll_s, max_bytes
        self._feeds, self._ctx = feeds, ctx
        self.subs: dict[str, Subscription] = {}
        self._asking: set[str] = set()  # feeds with a request under way
        self._told: set[str] = set()  # callbacks whose bad signatures were logged
        self._silent: set[str] = set()  # feeds whose hub stopped pushing
        self._reloaded = 0.0  # when the subscriptions were last read again (monotonic)
        self._tasks: set[asyncio.Task[None]] = set()
        # feeds as last configured: a removed one is unsubscribed under its own rules
        # (allow_private), as long as this process saw it
        self._known: dict[str, Feed] = {}
        self._door: Door | None = None
        self._stopped = False

    # -- life ---------------------------------------------------------------

    async def start(self, door: Door | None) -> None:
        self.subs = {s.feed: s for s in self._ctx().store.websub_subscriptions()}
        self._door = door
        if door is None:
            log.error("websub: no web server to take the hubs' callbacks (web.listen); "
                      "feeds are polled")
            return
        door.attach(asyncio.get_running_loop(), self.answer, self.knows)
        log.info("websub: callbacks on the web server (%s), reached at %s%s", self.listen,
                 self.public_url, _PATH)

    async def stop(self) -> None:
        self._stopped = True
        if self._door is not None:
            self._door.detach()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what ingest asks ---------------------------------------------------

    def poll_after(self, feed: str, now: datetime, planned: datetime) -> datetime:
        """While pushes are expected, the feed is polled only as a safety net."""
        if pushing(self.subs.get(feed), now) and feed not in self._silent:
            return max(planned, now + timedelta(seconds=self.poll_s))
        return planned

    def polled(self, feed: str, new_articles: int, now: datetime) -> None:
        """A poll found entries no push brought: the hub has stopped pushing, so polling
        takes over at the feed's own pace until a push comes again."""
        if new_articles and pushing(self.subs.get(feed), now) and feed not in self._silent:
            self._silent.add(feed)
            log.warning("websub: feed %r: a poll found %d entries the hub never pushed; "
                        "polling at the feed's own interval until a push comes",
                        feed, new_articles)

    def noticed(self, feed: Feed, hub: str, topic: str) -> None:
        """A poll found the feed naming a hub: subscribe, unless that is done or under way."""
        self._known[feed.name] = feed
        sub = self.subs.get(feed.name)
        if feed.name in self._asking or (sub is not None and (sub.hub, sub.topic) == (hub, topic)
                                         and sub.state != "unsubscribing"):
            return
        self._spawn(self._request(feed, hub, topic, "subscribe"))

    # -- requests to hubs ---------------------------------------------------

    async def _request(self, feed: Feed, hub: str, topic: str, mode: str,
                       old: Subscription | None = None) -> None:
        ctx = self._ctx()
        now = ctx.clock()
        sub = old if old is not None else Subscription(
            feed.name, hub, topic, secrets.token_urlsafe(24), secrets.token_urlsafe(32),
            "subscribing", now)
        sub = Subscription(sub.feed, sub.hub, sub.topic, sub.callback_id, sub.secret,
                           "unsubscribing" if mode == "unsubscribe" else
                           ("active" if sub.state == "active" else "subscribing"),
                           now, sub.lease_until)
        self._asking.add(feed.name)
        try:
            self._save(sub)  # before asking: the hub may verify before it answers
            fields = {"hub.mode": mode, "hub.topic": topic,
                      "hub.callback": f"{self.public_url}{_PATH}{sub.callback_id}"}
            if mode == "subscribe":
                fields |= {"hub.secret": sub.secret, "hub.lease_seconds": f"{self.lease_s:.0f}"}
            status = await ctx.fetcher.post_form(feed, hub, fields)
            if status >= 300:
                raise FetchError(f"websub: feed {feed.name!r}: hub {hub} answered {status} "
                                 f"to {mode}")
            log.info("websub: feed %r: %s requested at %s", feed.name, mode, hub)
        except (FetchError, StoreError) as exc:
            log.warning("%s; polling goes on (asked again later)", exc)
        finally:
            self._asking.discard(feed.name)

    async def maintain(self) -> None:
        """Renew leases coming to an end; unsubscribe feeds no longer configured."""
        feeds, now = self._feeds(), self._ctx().clock()
        self._known.update(feeds)
        for sub in list(self.subs.values()):
            if sub.feed in self._asking:
                continue
            feed = feeds.get(sub.feed)
            if feed is None:
                if sub.state != "unsubscribing":
                    gone = self._known.get(sub.feed) or Feed(sub.feed, sub.topic, 0)
                    await self._request(gone, sub.hub, sub.topic, "unsubscribe", sub)
                elif needs_renewal(sub, now, self.lease_s):
                    self._drop(sub)  # the hub never confirmed: forget it
            elif needs_renewal(sub, now, self.lease_s):
                await self._request(feed, sub.hub, sub.topic, "subscribe", sub)

    def _save(self, sub: Subscription) -> None:
        self._ctx().store.save_websub(sub)
        self.subs[sub.feed] = sub

    def _drop(self, sub: Subscription) -> None:
        self._ctx().store.drop_websub(sub.feed)
        self.subs.pop(sub.feed, None)

    # -- the callbacks ------------------------------------------------------

    async def answer(self, method: str, callback: str, query: Mapping[str, str],
                     headers: Mapping[str, str], body: bytes | None) -> tuple[int, str]:
        """A hub's request on the web server's `/websub/<callback>` (watcher.web.websub
        hands it over): a verification of intent, or a push. `body` is None when it was
        not read: its declared length is missing or over the cap."""
        if self._stopped:
            return 503, "try again"
        try:
            return self._answer(method, callback, query, headers, body)
        except StoreError as exc:
            log.error("%s", exc)
            return 503, "try again"

    async def knows(self, callback: str) -> bool:
        """Whether a push on this callback would be taken: asked before its body is read."""
        if self._stopped:
            return False
        try:
            sub = self._lookup(callback)
        except StoreError as exc:
            log.error("%s", exc)
            return False
        return sub is not None and sub.feed in self._feeds()

    def _answer(self, method: str, callback: str, query: Mapping[str, str],
                headers: Mapping[str, str], body: bytes | None) -> tuple[int, str]:
        sub = self._lookup(callback)
        if method == "GET":
            return self._verify(sub, dict(query))
        if method != "POST":
            return 405, "method not allowed"
        if sub is None or sub.feed not in self._feeds():
            return 404, "unknown subscription"
        declared = headers.get("content-length", "")
        if not declared.isdigit():
            return 411, "length required"
        if body is None or int(declared) > self.max_bytes:
            log.warning("websub: feed %r: a push of %s bytes, over the %d byte cap; refused",
                        sub.feed, declared, self.max_bytes)
            return 413, "too large"
        if not signature_ok(sub.secret, headers.get("x-hub-signature"), body):
            if sub.callback_id not in self._told:
                self._told.add(sub.callback_id)
                log.warning("websub: feed %r: a push with a missing or wrong X-Hub-Signature; "
                            "refused (logged once)", sub.feed)
            return 403, "bad signature"
        self._silent.discard(sub.feed)
        self._spawn(self._ingest(sub.feed, body, dict(headers)))
        return 202, "accepted"

    def _lookup(self, callback: str) -> Subscription | None:
        """The subscription a callback path names. One this process does not know may
        have been made by another daemon sharing the database: read them again, at
        most once a second (a stranger probing paths costs no more than that)."""
        if not callback:
            return None
        found = next((s for s in self.subs.values() if s.callback_id == callback), None)
        now = time.monotonic()
        if found is None and now - self._reloaded > 1.0:
            self._reloaded = now
            self.subs = {s.feed: s for s in self._ctx().store.websub_subscriptions()}
            found = next((s for s in self.subs.values() if s.callback_id == callback), None)
        return found

    def _verify(self, sub: Subscription | None, params: dict[str, str]) -> tuple[int, str]:
        answer = verify_intent(sub, params, self._ctx().clock())
        if sub is not None and answer.changed:
            if answer.subscription is None:
                self._drop(sub)
                log.info("websub: feed %r: %s at %s", sub.feed,
                         "unsubscribed" if params.get("hub.mode") == "unsubscribe"
                         else "subscription denied", sub.hub)
            else:
                self._save(answer.subscription)
                log.info("websub: feed %r: subscribed at %s until %s", sub.feed, sub.hub,
                         answer.subscription.lease_until)
        return answer.status, answer.body

    async def _ingest(self, name: str, body: bytes, headers: dict[str, str]) -> None:
        feed, ctx = self._feeds().get(name), self._ctx()
        if feed is None:
            return
        try:
            state = ctx.store.feed_state(name)
            paused = state is not None and state.paused
        except StoreError as exc:
            log.error("%s; feed %r's pushed entries wait for its next poll", exc, name)
            return
        if paused:  # paused in the console: what the hub pushes waits for the resume
            log.info("websub: feed %r is paused; a push ignored", name)
            return
        sub = self.subs.get(name)
        try:
            parsed: ParsedFeed = await asyncio.to_thread(
                parse_feed, body, {"content-type": headers.get("content-type", "")},
                sub.topic if sub else feed.url)
        except ParseError as exc:
            log.warning("parse: feed %r: a pushed document: %s; ignored", name, exc)
            return
        try:
            outcome = await ingest_entries(feed, parsed, ctx)
        except StoreError as exc:
            # The entries stay new: the next poll of the feed stores them.
            log.error("%s; feed %r's pushed entries wait for its next poll", exc, name)
            return
        log.info("websub: feed %r: pushed %d entries, %d new, %d matches", name,
                 len(parsed.entries), outcome.new_articles, outcome.matches)


async def start_websub(daemon: Any, scheduler: Any) -> WebSub | None:
    """The daemon's WebSub side, when `web.public_url` is set: the callback server
    started, its upkeep scheduled, and the ingest context told (to subscribe)."""
    web = daemon.settings.web
    if not web.public_url or not web.listen:
        return None
    websub = WebSub(web.listen, web.public_url, web.websub_lease, web.websub_poll_interval,
                    lambda: daemon.feeds, lambda: daemon.ctx,
                    daemon.settings.fetch.max_feed_bytes)
    await websub.start(daemon.websub_door)
    daemon.ctx = replace(daemon.ctx, websub=websub)
    # Often enough that a lease is renewed within its last tenth.
    scheduler.add_job(websub.maintain, "interval", seconds=min(60.0, max(1.0, web.websub_lease
                                                                        / 20)),
                      id="websub", max_instances=1, coalesce=True, misfire_grace_time=None)
    return websub
