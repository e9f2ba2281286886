"""The JSON API under /api/v1 (its schema at /api/v1/openapi.json)."""

from __future__ import annotations

import difflib
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from watcher.core.errors import ConfigError, RuleError, StoreError
from watcher.core.records import AlertRecord
from watcher.rules.load import digest_of
from watcher.settings.edit import VersionConflict, replace_text
from watcher.web import rulework
from watcher.web.auth import Principal
from watcher.web.context import Console, console, editor, principal, safe_url

router = APIRouter(prefix="/api/v1")
Viewer = Annotated[Principal, Depends(principal)]
Editor = Annotated[Principal, Depends(editor)]
Ctx = Annotated[Console, Depends(console)]


class RulesText(BaseModel):
    rules_yaml: str = Field(max_length=1_000_000)


class PreviewIn(RulesText):
    rule: str
    since: str = "30d"


class ExplainIn(BaseModel):
    rule: str
    article_id: int
    rules_yaml: str | None = Field(default=None, max_length=1_000_000,
                                   description="a draft; the saved rules when absent")


class MuteIn(BaseModel):
    span: str | None = Field(default="1h", alias="for",
                             description="1h, 1d, 1w or a duration (30m); null unmutes")
    drop: bool = Field(default=False, description="drop what the mute holds (marked "
                       "'dropped' in the outbox) instead of sending it as one digest")


class FeedbackIn(BaseModel):
    verdict: Literal["not_relevant"] = "not_relevant"


def alert_json(a: AlertRecord) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "title": a.title, "url": safe_url(a.url),
            "feed": a.feed, "snippet": a.snippet, "query": a.query, "field": a.field,
            "matched": list(a.matched), "created_at": a.created_at.isoformat(),
            "article_id": a.article_id, "not_relevant": a.not_relevant}


def _parsed(text: str, ctx: Console) -> Any:
    try:
        return rulework.parse(text, ctx.settings)
    except RuleError as exc:
        raise HTTPException(422, {"ok": False, "errors": [
            asdict(p) for p in rulework.problems_of(exc)]}) from None


@router.get("/rules")
def get_rules(ctx: Ctx, _: Viewer) -> JSONResponse:
    text = ctx.rules_text()
    version = digest_of(text)
    rules: list[dict[str, Any]] = []
    try:
        ruleset = rulework.parse(text, ctx.settings)
        rules = [{"name": r.name, "query": r.query, "any": r.any, "all": r.all,
                  "none": r.none, "notify": r.notify, "feeds": r.feeds, "line": r.line}
                 for r in ruleset.rules]
    except RuleError:
        pass  # the text is still shown, to be fixed
    return JSONResponse({"version": version, "rules_yaml": text, "rules": rules},
                        headers={"ETag": f'"{version}"'})


@router.post("/rules/validate")
def validate(body: RulesText, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    return rulework.validate(body.rules_yaml, ctx.settings)


@router.post("/rules/preview")
def preview(body: PreviewIn, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    ruleset = _parsed(body.rules_yaml, ctx)
    try:
        p = rulework.preview(ctx.store, ruleset, body.rule, body.since, ctx.now())
    except KeyError:
        raise HTTPException(404, f"rules: no rule named {body.rule!r}") from None
    except ValueError as exc:
        raise HTTPException(422, f"since: {exc}") from None
    except StoreError as exc:
        raise HTTPException(503, str(exc)) from None
    return {"count": p.count, "complete": p.complete, "since": p.since.isoformat(),
            "narrowed_by": p.narrowed_by, "per_day": p.per_day,
            "matches": [{"article_id": a.id, "title": a.title, "url": safe_url(a.url),
                         "feed": a.feed, "field": m.field, "snippet": m.snippet,
                         "matched": [h.matched for h in m.hits]} for a, m in p.matches]}


@router.post("/rules/explain")
def explain(body: ExplainIn, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    ruleset = _parsed(body.rules_yaml if body.rules_yaml is not None else ctx.rules_text(),
                      ctx)
    article = ctx.store.article(body.article_id)
    if article is None:
        raise HTTPException(404, f"archive: no article {body.article_id}")
    try:
        return rulework.explanation_json(rulework.explain_article(ruleset, body.rule, article))
    except KeyError:
        raise HTTPException(404, f"rules: no rule named {body.rule!r}") from None


@router.put("/rules")
def put_rules(body: RulesText, ctx: Ctx, _: Editor,
              if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    if not if_match:
        raise HTTPException(428, "rules: saving needs If-Match with the version read")
    _parsed(body.rules_yaml, ctx)
    try:
        version = save_rules(ctx, body.rules_yaml, if_match.strip().strip('"'))
    except VersionConflict as exc:
        return JSONResponse({"detail": str(exc), "version": digest_of(exc.current),
                             "diff": diff(exc.current, body.rules_yaml)}, status_code=412)
    return JSONResponse({"version": version}, headers={"ETag": f'"{version}"'})


def save_rules(ctx: Console, text: str, version: str) -> str:
    try:
        return replace_text(ctx.rules_path, text, version)
    except VersionConflict:
        raise
    except ConfigError as exc:
        raise HTTPException(500, str(exc)) from None


def diff(current: str, mine: str) -> str:
    return "".join(difflib.unified_diff(current.splitlines(keepends=True),
                                        mine.splitlines(keepends=True),
                                        "rules.yaml (on disk)", "rules.yaml (yours)"))


@router.post("/rules/{name}/mute")
def mute(name: str, body: MuteIn, ctx: Ctx, _: Editor) -> dict[str, Any]:
    """Deliveries of the rule are held while it is muted and go out as one digest
    when the mute ends (or, `drop`, are marked dropped); its matches are still recorded."""
    ruleset = _parsed(ctx.rules_text(), ctx)
    try:
        until = rulework.mute(ctx.store, ruleset, name, body.span, ctx.now(), body.drop)
    except KeyError:
        raise HTTPException(404, f"rules: no rule named {name!r}") from None
    except ValueError as exc:
        raise HTTPException(422, f"for: {exc}") from None
    return {"rule": name, "muted_until": until.isoformat() if until else None,
            "drop": bool(until and body.drop)}


@router.get("/alerts")
def alerts(ctx: Ctx, _: Viewer, rule: str | None = None, feed: str | None = None,
           since: datetime | None = None, until: datetime | None = None,
           q: Annotated[str | None, Query(max_length=200)] = None,
           before: int | None = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    found = ctx.store.alerts(rule=rule, feed=feed, since=since, until=until, text=q,
                             before_id=before, limit=limit)
    return {"alerts": [alert_json(a) for a in found],
            "next_before": found[-1].id if len(found) == limit else None}


@router.post("/alerts/{alert_id}/feedback")
def feedback(alert_id: int, body: FeedbackIn, ctx: Ctx, _: Viewer) -> dict[str, Any]:
    if not ctx.store.record_feedback(alert_id, body.verdict, ctx.now()):
        raise HTTPException(404, f"alerts: no alert {alert_id}")
    return {"ok": True, "rule_counts": ctx.store.feedback_counts(body.verdict)}
