"""The feeds: their state and items per day; adding one by URL (what discovery found
is shown before it is added), pausing, resuming, removing, OPML in and out. Pages and
their JSON under /api/v1.

Feeds live in config/watcher.yaml: adding and removing edit that file in place
(comments and layout kept), only over the version the page or caller read, and only
when the result loads; the daemon notices the changed file and reloads it. Pausing is
state in the store, so every daemon sharing the database honours it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from watcher.core.errors import ConfigError, FetchError, ParseError
from watcher.core.records import FeedHealth
from watcher.fetch.client import HttpLimits
from watcher.fetch.propose import propose
from watcher.rules.load import digest_of
from watcher.settings import Settings, load_settings
from watcher.settings.edit import FeedsEdit, VersionConflict, feeds_edited, save_config
from watcher.settings.model import FeedConfig
from watcher.settings.opml import Subscription, read_opml, slug, write_opml
from watcher.web.auth import Principal
from watcher.web.charts import days_back, sparkline
from watcher.web.context import Console, console, editor, principal, safe_url
from watcher.web.pages import form_of, render
from watcher.web.security import check_form_csrf

router = APIRouter()
Ctx = Annotated[Console, Depends(console)]
Viewer = Annotated[Principal, Depends(principal)]
Editor = Annotated[Principal, Depends(editor)]
OPML_MAX_BYTES = 2_000_000  # thousands of feeds; past this an upload is refused
DAYS = 30
KINDS = ("feed", "sitemap", "page")


# -- what the page and the API show ----------------------------------------------------------


@dataclass(frozen=True)
class Configured:
    version: str  # of config/watcher.yaml's text, for If-Match
    feeds: list[FeedConfig]
    error: str  # the file does not load: shown, and nothing can be edited


def configured(ctx: Console) -> Configured:
    path = ctx.settings.source
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Configured("", [], f"config: {path}: cannot read: {exc}")
    try:
        return Configured(digest_of(text), list(load_settings(path).feeds), "")
    except ConfigError as exc:
        return Configured(digest_of(text), [], str(exc))


def _state(h: FeedHealth | None) -> str:
    if h is None:
        return "new"
    return ("paused" if h.paused_at else "gone" if h.gone_at else "unhealthy"
            if h.unhealthy_since else "failing" if h.consecutive_failures else "ok"
            if h.last_success_at else "new")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def feed_rows(ctx: Console, found: Configured) -> list[dict[str, Any]]:
    """Every configured feed with its state, and those the database still knows."""
    now = ctx.now()
    health = {h.name: h for h in ctx.store.feed_health(now)}
    per_day = ctx.store.items_per_day(now - timedelta(days=DAYS))
    days = days_back(now, DAYS)
    rows = []
    for f in found.feeds:
        h = health.pop(f.name, None)
        rows.append(_row(f.name, f.url, f.type, h, per_day.get(f.name, {}), days, True))
    for h in health.values():  # removed from the config; the daemon no longer polls them
        rows.append(_row(h.name, h.url, "feed", h, per_day.get(h.name, {}), days, False))
    return rows


def _row(name: str, url: str, kind: str, h: FeedHealth | None, counts: dict[str, int],
         days: list[str], in_config: bool) -> dict[str, Any]:
    return {"name": name, "url": safe_url(url), "type": kind, "configured": in_config,
            "state": _state(h) if in_config else "removed",
            "title": h.title if h else None,
            "last_success_at": _iso(h.last_success_at) if h else None,
            "last_error": h.last_error if h and (h.consecutive_failures or h.gone_at) else None,
            "last_error_at": _iso(h.last_error_at) if h else None,
            "next_poll_at": _iso(h.next_poll_at) if h else None,
            "consecutive_failures": h.consecutive_failures if h else 0,
            "paused_at": _iso(h.paused_at) if h else None,
            "items_7d": h.items_7d if h else 0,
            "items_per_day": {d: counts[d] for d in days if d in counts},
            "chart": sparkline(counts, days, what="item(s)")}


# -- editing the config ----------------------------------------------------------------------


class Problem(Exception):
    """A refusal with its HTTP status and a message naming the field and reason."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def new_entry(settings: Settings, taken: set[str], url: str, name: str | None,
              kind: str, title: str, interval: str | None, tags: list[str],
              allow_private: bool) -> dict[str, Any]:
    """A feed's config entry from what was asked, named from its title when no name."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise Problem(422, f"url: {url!r} is not an http(s) URL")
    if kind not in KINDS:
        raise Problem(422, f"type: {kind!r} is not one of {', '.join(KINDS)}")
    if name and name in taken:
        raise Problem(409, f"name: a feed named {name!r} already exists")
    base = slug(title or urlsplit(url).hostname or "feed")
    chosen, n = name or base, 2
    while chosen in taken:
        chosen, n = f"{base}-{n}", n + 1
    entry: dict[str, Any] = {"name": chosen, "url": url}
    if kind != "feed":
        entry["type"] = kind
    if interval:
        entry["interval"] = interval
    if tags:
        entry["tags"] = tags
    if allow_private:
        entry["allow_private"] = True
    return entry


def write_feeds(ctx: Console, version: str | None, add: list[dict[str, Any]] | None = None,
                remove: tuple[str, ...] = ()) -> tuple[FeedsEdit, str]:
    """Edit, validate and write config/watcher.yaml over `version`; (the edit, the new
    version). Problem: no version (428), changed on disk (412), refused (422)."""
    if not version:
        raise Problem(428, "version: editing the feeds needs the config's version "
                           "(If-Match, or the page's form)")
    path = ctx.settings.source
    try:
        edit = feeds_edited(path, add or [], remove)
        if edit.version != version:
            raise VersionConflict(f"{path}: changed since it was read", "")
        if not edit.added and not edit.removed:
            return edit, version
        return edit, save_config(path, edit.text, version)
    except VersionConflict:
        raise Problem(412, f"version: {path} changed on disk since it was read; load the "
                           "feeds again and redo the change") from None
    except ConfigError as exc:
        raise Problem(422, str(exc)) from None


def taken_names(ctx: Console) -> set[str]:
    return {f.name for f in configured(ctx).feeds}


def import_opml(ctx: Console, data: bytes, version: str | None
                ) -> tuple[FeedsEdit, str, list[tuple[str, str]]]:
    """Add every outline's feed (a URL already configured is skipped, said why)."""
    if len(data) > OPML_MAX_BYTES:
        raise Problem(413, f"opml: {len(data)} bytes; at most {OPML_MAX_BYTES} are read")
    try:
        subs = read_opml(data, "opml")
    except ConfigError as exc:
        raise Problem(422, str(exc)) from None
    taken = taken_names(ctx)
    entries, skipped = [], []
    for s in subs:
        kind = s.kind if s.kind in KINDS else "feed"
        try:
            entry = new_entry(ctx.settings, taken, s.url, None, kind, s.title, None,
                              [slug(c) for c in s.categories if slug(c, "")], False)
        except Problem as exc:
            skipped.append((s.url, exc.message))
            continue
        taken.add(entry["name"])
        entries.append(entry)
    edit, new_version = write_feeds(ctx, version, entries)
    return edit, new_version, skipped + edit.skipped


def export_opml(ctx: Console) -> bytes:
    subs = [Subscription(title=f.name, url=f.url, categories=tuple(f.tags),
                         kind="rss" if f.type == "feed" else f.type)
            for f in configured(ctx).feeds]
    return write_opml(subs, "watcher feeds", ctx.now())


def pause(ctx: Console, name: str, paused: bool) -> datetime | None:
    """Pause or resume a configured feed; when the paused feed is paused since."""
    found = next((f for f in configured(ctx).feeds if f.name == name), None)
    if found is None:
        raise Problem(404, f"name: no feed named {name!r} in the config")
    if not ctx.store.pause_feed(name, paused, ctx.now()):
        # Added a moment ago: the daemon has not made its row yet.
        ctx.store.sync_feeds(replace(ctx.settings, feeds=(found,)).feed_models())
        ctx.store.pause_feed(name, paused, ctx.now())
    h = next((h for h in ctx.store.feed_health(ctx.now()) if h.name == name), None)
    return h.paused_at if h else None


async def discover(ctx: Console, url: str, allow_private: bool) -> dict[str, Any]:
    if urlsplit(url).scheme not in ("http", "https"):
        raise Problem(422, f"url: {url!r} is not an http(s) URL")
    limits = HttpLimits(timeout_s=ctx.settings.fetch.timeout,
                        max_feed_bytes=ctx.settings.fetch.max_feed_bytes)
    try:
        found = await propose(url, allow_private, limits)
    except (FetchError, ParseError) as exc:
        raise Problem(422, f"url: {exc}") from None
    entry = new_entry(ctx.settings, taken_names(ctx), found.url, None, found.kind,
                      found.title, None, [], allow_private)
    return {"type": found.kind, "url": found.url, "title": found.title, "why": found.why,
            "name": entry["name"]}


# -- the API ---------------------------------------------------------------------------------


def _answer(exc: Problem) -> JSONResponse:
    return JSONResponse({"detail": exc.message, **exc.extra}, status_code=exc.status)


def _version(if_match: str | None) -> str | None:
    return if_match.strip().strip('"') if if_match else None


class DiscoverIn(BaseModel):
    url: str = Field(max_length=2000)
    allow_private: bool = False


class FeedIn(BaseModel):
    url: str = Field(max_length=2000)
    name: str | None = Field(default=None, max_length=100)
    type: Literal["feed", "sitemap", "page"] = "feed"
    interval: str | None = Field(default=None, max_length=20)
    tags: list[str] = Field(default_factory=list, max_length=50)
    allow_private: bool = False


@router.get("/api/v1/feeds")
def feeds(ctx: Ctx, _: Viewer) -> JSONResponse:
    """Every feed: its type, state, last success and error, next poll, items per day."""
    found = configured(ctx)
    rows = [{k: v for k, v in r.items() if k != "chart"} for r in feed_rows(ctx, found)]
    return JSONResponse({"version": found.version, "error": found.error or None,
                         "feeds": rows}, headers={"ETag": f'"{found.version}"'})


@router.post("/api/v1/feeds/discover")
async def discover_api(body: DiscoverIn, ctx: Ctx, _: Editor) -> JSONResponse:
    """What adding this URL would add: its feed, else its news sitemap, else the page."""
    try:
        return JSONResponse(await discover(ctx, body.url, body.allow_private))
    except Problem as exc:
        return _answer(exc)


@router.post("/api/v1/feeds", status_code=201)
def add_api(body: FeedIn, ctx: Ctx, _: Editor,
            if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Add a feed to config/watcher.yaml (If-Match: the version GET gave)."""
    try:
        entry = new_entry(ctx.settings, taken_names(ctx), body.url, body.name, body.type,
                          "", body.interval, body.tags, body.allow_private)
        edit, version = write_feeds(ctx, _version(if_match), [entry])
    except Problem as exc:
        return _answer(exc)
    if not edit.added:
        return JSONResponse({"detail": f"url: {edit.skipped[0][1]}"}, status_code=409)
    return JSONResponse({"added": entry, "version": version}, status_code=201,
                        headers={"ETag": f'"{version}"'})


@router.delete("/api/v1/feeds/{name}")
def remove_api(name: str, ctx: Ctx, _: Editor,
               if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    try:
        version = write_feeds(ctx, _version(if_match), remove=(name,))[1]
    except Problem as exc:
        return _answer(exc)
    return JSONResponse({"removed": name, "version": version},
                        headers={"ETag": f'"{version}"'})


@router.post("/api/v1/feeds/{name}/pause")
def pause_api(name: str, ctx: Ctx, _: Editor) -> JSONResponse:
    """No daemon sharing the database polls the feed until it is resumed."""
    try:
        return JSONResponse({"feed": name, "paused_at": _iso(pause(ctx, name, True))})
    except Problem as exc:
        return _answer(exc)


@router.post("/api/v1/feeds/{name}/resume")
def resume_api(name: str, ctx: Ctx, _: Editor) -> JSONResponse:
    """The feed is due at once."""
    try:
        return JSONResponse({"feed": name, "paused_at": _iso(pause(ctx, name, False))})
    except Problem as exc:
        return _answer(exc)


@router.get("/api/v1/feeds/opml")
def opml_api(ctx: Ctx, _: Viewer) -> Response:
    """Every configured feed as OPML 2.0: name, URL and type (feed, sitemap, page)."""
    return Response(export_opml(ctx), media_type="text/x-opml; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="watcher.opml"'})


@router.post("/api/v1/feeds/opml")
async def import_api(request: Request, ctx: Ctx, _: Editor,
                     if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    """The request's body is an OPML document; its feeds are added, duplicates skipped."""
    data = await _body(request)
    try:
        edit, version, skipped = await run_in_threadpool(import_opml, ctx, data,
                                                         _version(if_match))
    except Problem as exc:
        return _answer(exc)
    return JSONResponse({"added": edit.added, "version": version,
                         "skipped": [{"url": u, "why": w} for u, w in skipped]},
                        headers={"ETag": f'"{version}"'})


async def _body(request: Request) -> bytes:
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > OPML_MAX_BYTES:
            break  # enough to refuse it
    return data


# -- the pages -------------------------------------------------------------------------------


def _page(request: Request, ctx: Console, status: int = 200, **values: Any) -> HTMLResponse:
    found = configured(ctx)
    values.setdefault("error", found.error)
    return render(request, "feeds.html", status, feeds=feed_rows(ctx, found),
                  version=found.version, kinds=KINDS, **values)


@router.get("/feeds", include_in_schema=False)
def feeds_page(request: Request, ctx: Ctx, _: Viewer, done: str = "") -> HTMLResponse:
    return _page(request, ctx, done=done[:200])


@router.post("/feeds/discover", include_in_schema=False)
async def discover_form(request: Request, ctx: Ctx, _: Editor) -> HTMLResponse:
    form = await form_of(request)
    allow = form.get("allow_private") == "1"
    try:
        proposal = await discover(ctx, form.get("url", "").strip(), allow)
    except Problem as exc:
        return _page(request, ctx, exc.status, error=exc.message, url=form.get("url", ""))
    return _page(request, ctx, proposal=proposal, allow_private=allow)


@router.post("/feeds/add", include_in_schema=False)
async def add_form(request: Request, ctx: Ctx, _: Editor) -> Response:
    form = await form_of(request)
    try:
        entry = new_entry(ctx.settings, taken_names(ctx), form.get("url", "").strip(),
                          form.get("name", "").strip() or None, form.get("type", "feed"),
                          "", form.get("interval", "").strip() or None,
                          [t.strip() for t in form.get("tags", "").split(",") if t.strip()],
                          form.get("allow_private") == "1")
        edit = (await run_in_threadpool(write_feeds, ctx, form.get("version"), [entry]))[0]
    except Problem as exc:
        return _page(request, ctx, exc.status, error=exc.message)
    if not edit.added:
        return _page(request, ctx, 409, error=f"url: {edit.skipped[0][1]}")
    return RedirectResponse(f"/feeds?done=added+{entry['name']}", status_code=303)


@router.post("/feeds/{name}/{action}", include_in_schema=False)
async def feed_form(name: str, action: str, request: Request, ctx: Ctx, _: Editor) -> Response:
    form = await form_of(request)
    try:
        if action in ("pause", "resume"):
            await run_in_threadpool(pause, ctx, name, action == "pause")
        elif action == "remove":
            await run_in_threadpool(write_feeds, ctx, form.get("version"), None, (name,))
        else:
            raise HTTPException(404, f"feeds: no action {action!r}")
    except Problem as exc:
        return _page(request, ctx, exc.status, error=exc.message)
    done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[action]
    return RedirectResponse(f"/feeds?done={done}+{name}", status_code=303)


@router.post("/feeds-import", include_in_schema=False)
async def import_form(request: Request, ctx: Ctx, _: Editor) -> HTMLResponse:
    form = await request.form(max_part_size=OPML_MAX_BYTES + 1)
    plain = {k: v for k, v in form.items() if isinstance(v, str)}
    await _check_csrf(request, plain.get("csrf"))
    upload = form.get("opml")
    data = b"" if upload is None or isinstance(upload, str) else \
        await upload.read(OPML_MAX_BYTES + 1)
    try:
        edit, _version_now, skipped = await run_in_threadpool(import_opml, ctx, data,
                                                              plain.get("version"))
    except Problem as exc:
        return _page(request, ctx, exc.status, error=exc.message)
    return _page(request, ctx, imported={"added": edit.added, "skipped": skipped})


async def _check_csrf(request: Request, sent: str | None) -> None:
    if not check_form_csrf(request, sent):
        raise HTTPException(403, "web: missing or wrong CSRF token")

