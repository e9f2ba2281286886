"""The archive (full-text search, an article) and the outbox (retry what died): pages
and their JSON under /api/v1 (the feeds: watcher/web/feeds.py)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from watcher.core.errors import StoreError
from watcher.core.records import DeliveryRecord, SearchHit
from watcher.web.auth import Principal
from watcher.web.context import Console, console, editor, principal, safe_url
from watcher.web.pages import form_of, render

router = APIRouter()
Ctx = Annotated[Console, Depends(console)]
Viewer = Annotated[Principal, Depends(principal)]
Editor = Annotated[Principal, Depends(editor)]
STATUSES = ("pending", "retrying", "sent", "dead", "dropped")
SHOWN = 200


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _hit(h: SearchHit) -> dict[str, Any]:
    return _jsonable({"id": h.id, "feed": h.feed, "title": h.title, "url": safe_url(h.url),
                      "published_at": h.published_at, "fetched_at": h.fetched_at,
                      "snippet": h.snippet})


def _search(ctx: Console, q: str, feed: str | None, since: datetime | None,
            limit: int, before: int | None = None) -> list[SearchHit]:
    try:
        return ctx.store.search(q, since=since, feed=feed or None, limit=limit,
                                before_id=before)
    except StoreError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/api/v1/articles")
def articles(ctx: Ctx, _: Viewer, q: Annotated[str, Query(min_length=1, max_length=500)],
             feed: str | None = None, since: datetime | None = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50,
             before: int | None = None) -> dict[str, Any]:
    """Full-text search (the archive's syntax: words, "phrases", OR, -word, prefix*),
    newest first; `before` (the last article's id) gives the next page."""
    found = _search(ctx, q, feed, since, limit, before)
    return {"articles": [_hit(h) for h in found],
            "next_before": found[-1].id if len(found) == limit else None}


@router.get("/api/v1/articles/{article_id}")
def article(article_id: int, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    record = ctx.store.article_record(article_id)
    if record is None:
        raise HTTPException(404, f"archive: no article {article_id}")
    a = record.article
    return _jsonable({
        "id": a.id, "feed": a.feed, "title": a.title, "url": safe_url(a.url),
        "summary": a.summary, "body": a.body, "published_at": a.published,
        "fetched_at": a.fetched_at, "matches": [asdict(m) for m in record.matches],
        "deliveries": [asdict(d) for d in record.deliveries],
        "sources": [{**asdict(s), "url": safe_url(s.url)} for s in record.sources]})


@router.get("/api/v1/deliveries")
def deliveries(ctx: Ctx, _: Viewer, status: str | None = None, rule: str | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = SHOWN) -> dict[str, Any]:
    found = _newest(ctx.store.deliveries(status=status or None, rule=rule or None), limit)
    return {"deliveries": [_jsonable(asdict(d)) for d in found]}


def _newest(found: list[DeliveryRecord], limit: int) -> list[DeliveryRecord]:
    return list(reversed(found[-limit:]))


@router.post("/api/v1/deliveries/{delivery_id}/retry")
def retry(delivery_id: str, ctx: Ctx, _: Editor) -> dict[str, Any]:
    requeued = ctx.store.requeue_deliveries(ctx.now(), [delivery_id])
    if not requeued:
        raise HTTPException(404, f"deliver: no dead, retrying or pending delivery "
                                 f"{delivery_id!r}")
    return {"requeued": requeued}


# -- pages ----------------------------------------------------------------------------------


_PAGE = 100


@router.get("/archive", include_in_schema=False)
def archive_page(request: Request, ctx: Ctx, _: Viewer, q: str = "", feed: str = "",
                 since: str = "", before: int | None = None) -> HTMLResponse:
    hits: list[dict[str, Any]] = []
    error = ""
    if q.strip():
        day = None
        if since:
            try:
                day = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError:
                error = f"since: {since!r} is not a date (YYYY-MM-DD)"
        try:
            hits = [_hit(h) for h in _search(ctx, q[:500], feed, day, _PAGE, before)] \
                if not error else []
        except HTTPException as exc:
            error = str(exc.detail)
    older = "/archive?" + urlencode({"q": q, "feed": feed, "since": since,
                                     "before": hits[-1]["id"]}) if len(hits) == _PAGE else ""
    return render(request, "archive.html", hits=hits, q=q, feed=feed, since=since,
                  error=error, older=older, page_size=_PAGE, paged=before is not None)


@router.get("/deliveries", include_in_schema=False)
def deliveries_page(request: Request, ctx: Ctx, _: Viewer,
                    status: str = "dead") -> HTMLResponse:
    chosen = status if status in STATUSES else "dead"
    found = _newest(ctx.store.deliveries(status=chosen), SHOWN)
    return render(request, "deliveries.html", deliveries=found, chosen=chosen,
                  statuses=STATUSES)


@router.post("/deliveries/{delivery_id}/retry", include_in_schema=False)
async def retry_form(delivery_id: str, request: Request, ctx: Ctx, _: Editor) -> Response:
    await form_of(request)
    if not ctx.store.requeue_deliveries(ctx.now(), [delivery_id]):
        raise HTTPException(404, f"deliver: no delivery {delivery_id!r} to retry")
    return RedirectResponse("/deliveries?status=pending", status_code=303)
