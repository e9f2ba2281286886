"""The console's pages, rendered on the server (Jinja2, autoescaped). Each works as a
plain form without JavaScript; htmx only swaps the live parts (a check, a preview)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from watcher.core.errors import ConfigError, RuleError, StoreError
from watcher.core.models import FIELDS
from watcher.core.records import AlertRecord, DeliveryRecord, SourceRecord
from watcher.delivery.render import mark_html
from watcher.rules.load import digest_of
from watcher.rules.query import TEXT_FIELDS
from watcher.settings.edit import VersionConflict, add_rule_example, rule_written
from watcher.web import rulework
from watcher.web.api import diff, save_rules
from watcher.web.auth import Principal
from watcher.web.charts import days_back, sparkline
from watcher.web.context import Console, console, editor, principal, safe_url
from watcher.web.security import check_form_csrf

TEMPLATES = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True)))
router = APIRouter()
Ctx = Annotated[Console, Depends(console)]
Viewer = Annotated[Principal, Depends(principal)]
Editor = Annotated[Principal, Depends(editor)]


def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    session = getattr(request.state, "session", None)
    values.setdefault("who", getattr(request.state, "principal", None))
    values.setdefault("csrf", session.csrf if session else "")
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status)


async def form_of(request: Request) -> dict[str, str]:
    """The posted form, refused unless it carries the session's CSRF token."""
    form = await request.form()
    if not check_form_csrf(request, form.get("csrf")):
        raise HTTPException(403, "web: missing or wrong CSRF token")
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/", include_in_schema=False)
def overview(request: Request, ctx: Ctx, _: Viewer) -> HTMLResponse:
    """Alerts per day per rule, the delivery backlog and the failing feeds."""
    now = ctx.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    report = ctx.store.status_report(now, day_start)
    days = days_back(now, 30)
    charts = [(rule, sum(counts.values()), sparkline(counts, days)) for rule, counts in
              sorted(ctx.store.alerts_per_day(now - timedelta(days=30)).items())]
    return render(request, "overview.html", report=report, charts=charts)


@dataclass(frozen=True)
class AlertView:
    record: AlertRecord
    url: str | None
    snippet: Markup
    sources: list[SourceRecord]
    deliveries: list[DeliveryRecord]


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC) if value else None
    except ValueError:
        return None


@router.get("/alerts", include_in_schema=False)
def alerts_page(request: Request, ctx: Ctx, _: Viewer, rule: str | None = None,
                feed: str | None = None, since: str | None = None, q: str | None = None,
                before: int | None = None) -> HTMLResponse:
    limit = 50
    found = ctx.store.alerts(rule=rule or None, feed=feed or None, since=_day(since),
                             text=(q or None) and q[:200], before_id=before, limit=limit)
    stories = [a.story_id or a.article_id for a in found]
    sources = ctx.store.story_sources(stories)
    sent = ctx.store.story_deliveries(stories)
    views = [AlertView(a, safe_url(a.url), mark_html(a.snippet, a.matched),
                       sources.get(story, []), [d for d in sent.get(story, []) if d.rule == a.rule])
             for a, story in zip(found, stories, strict=True)]
    names = sorted(ctx.store.alert_counts(ctx.now() - timedelta(days=365)))
    filters = {"rule": rule, "feed": feed, "since": since, "q": q}
    next_link = "/alerts?" + urlencode({**{k: v for k, v in filters.items() if v},
                                        "before": found[-1].id}) if found else ""
    return render(request, "alerts.html", alerts=views, rules=names, f=filters,
                  next_before=len(found) == limit, next_link=next_link)


@router.post("/alerts/{alert_id}/example", include_in_schema=False)
async def example_form(alert_id: int, request: Request, ctx: Ctx, _: Editor) -> Response:
    """The alert's article becomes a `no_match` example of its rule in rules.yaml."""
    await form_of(request)
    alert = ctx.store.alert(alert_id)
    if alert is None:
        raise HTTPException(404, f"alerts: no alert {alert_id}")
    example = {"title": alert.title}
    if alert.field != "title":
        example[alert.field] = alert.snippet
    try:
        add_rule_example(ctx.rules_path, alert.rule, example)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    return RedirectResponse("/rules?saved=1", status_code=303)


@router.post("/alerts/{alert_id}/feedback", include_in_schema=False)
async def feedback_form(alert_id: int, request: Request, ctx: Ctx, _: Viewer) -> Response:
    await form_of(request)
    if not ctx.store.record_feedback(alert_id, "not_relevant", ctx.now()):
        raise HTTPException(404, f"alerts: no alert {alert_id}")
    return RedirectResponse(f"/alerts#alert-{alert_id}", status_code=303)


def _rule_rows(ctx: Console, text: str) -> list[dict[str, Any]]:
    try:
        ruleset = rulework.parse(text, ctx.settings)
    except RuleError:
        return []
    counts = ctx.store.alert_counts(ctx.now() - timedelta(days=30))
    flagged = ctx.store.feedback_counts()
    mutes = ctx.store.mutes(ctx.now())
    drops = ctx.store.dropping_mutes(ctx.now()) if mutes else set()
    per_day = ctx.store.alerts_per_day(ctx.now() - timedelta(days=30))
    days = days_back(ctx.now(), 30)
    rows = []
    for r in ruleset.rules:
        n, bad = counts.get(r.name, 0), flagged.get(r.name, 0)
        relevance = f"{max(0.0, 1 - bad / n):.0%}" if n else "–"
        rows.append({"name": r.name, "query": r.query or " / ".join(r.any + r.all),
                     "alerts": n, "not_relevant": bad, "relevance": relevance,
                     "muted_until": mutes.get(r.name), "drops": r.name in drops,
                     "chart": sparkline(per_day.get(r.name, {}), days)})
    return rows


def _rules_page(request: Request, ctx: Ctx, text: str, version: str, status: int = 200,
                **values: Any) -> HTMLResponse:
    values.setdefault("rule_form", rule_form_values(ctx, ctx.rules_text(), None))
    return render(request, "rules.html", status, rules=_rule_rows(ctx, ctx.rules_text()),
                  text=text, version=version, channels=sorted(ctx.settings.channels),
                  text_fields=TEXT_FIELDS, **values)


def rule_form_values(ctx: Console, text: str, name: str | None) -> dict[str, Any]:
    """The form's fields: those of the rule being edited, else a new rule's."""
    blank: dict[str, Any] = {"name": "", "query": "", "default_operator": "OR", "any": "",
                             "all": "", "none": "", "fields": list(FIELDS), "feeds": "",
                             "tags": "", "languages": "", "notify": [], "cooldown": "",
                             "digest": ""}
    if not name:
        return blank
    try:
        rule = next((r for r in rulework.parse(text, ctx.settings).rules if r.name == name),
                    None)
    except RuleError:
        rule = None
    if rule is None:
        return blank
    return {"name": rule.name, "query": rule.query, "default_operator": rule.default_operator,
            "any": ", ".join(rule.any), "all": ", ".join(rule.all),
            "none": ", ".join(rule.none), "fields": list(rule.fields),
            "feeds": ", ".join(rule.feeds), "tags": ", ".join(rule.tags),
            "languages": ", ".join(rule.languages), "notify": list(rule.notify),
            "cooldown": f"{rule.cooldown_s:g}s" if rule.cooldown_s else "",
            "digest": rule.digest or ""}


def _listed(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


@router.post("/rules/form", include_in_schema=False)
async def rule_form_save(request: Request, ctx: Ctx, _: Editor) -> Response:
    """One rule from the form, in place of the rule of its name or added; the rest of
    rules.yaml (comments, layout, examples) kept."""
    await form_of(request)
    form = await request.form()
    fields = [str(f) for f in form.getlist("fields")]
    rule: dict[str, Any] = {
        "name": str(form.get("name", "")).strip(), "query": str(form.get("query", "")).strip(),
        "default_operator": None if form.get("default_operator") != "AND" else "AND",
        "any": _listed(str(form.get("any", ""))), "all": _listed(str(form.get("all", ""))),
        "none": _listed(str(form.get("none", ""))),
        "fields": None if sorted(fields) == sorted(FIELDS) else fields,
        "feeds": _listed(str(form.get("feeds", ""))), "tags": _listed(str(form.get("tags", ""))),
        "languages": _listed(str(form.get("languages", ""))),
        "notify": [str(c) for c in form.getlist("notify")],
        "cooldown": str(form.get("cooldown", "")).strip() or None,
        "digest": str(form.get("digest", "")).strip() or None}
    values = {k: ", ".join(v) if isinstance(v, list) and k not in ("fields", "notify") else v
              for k, v in rule.items()}
    values["fields"] = fields
    version = str(form.get("version", ""))
    if not rule["name"]:
        check = {"ok": False, "errors": [{"line": None, "column": None,
                                          "message": "the rule needs a name"}], "examples": []}
        return _rules_page(request, ctx, ctx.rules_text(), version, 422, check=check,
                           rule_form=values)
    try:
        text = rule_written(ctx.rules_path, rule)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    check = rulework.validate(text, ctx.settings)
    if not check["ok"]:
        return _rules_page(request, ctx, ctx.rules_text(), version, 422, check=check,
                           rule_form=values)
    try:
        save_rules(ctx, text, version)
    except VersionConflict as exc:
        return _rules_page(request, ctx, exc.current, digest_of(exc.current), 409,
                           conflict=str(exc), diff=diff(exc.current, text), rule_form=values)
    return RedirectResponse("/rules?saved=1", status_code=303)


@router.get("/rules", include_in_schema=False)
def rules_page(request: Request, ctx: Ctx, _: Viewer, saved: int = 0,
               edit: str | None = None) -> HTMLResponse:
    text = ctx.rules_text()
    return _rules_page(request, ctx, text, digest_of(text), saved=bool(saved),
                       rule_form=rule_form_values(ctx, text, edit))


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


@router.post("/rules/check", include_in_schema=False)
async def rules_check(request: Request, ctx: Ctx, _: Viewer) -> HTMLResponse:
    form = await form_of(request)
    check = rulework.validate(form.get("rules_yaml", ""), ctx.settings)
    if _is_htmx(request):
        return render(request, "_check.html", check=check)
    return _rules_page(request, ctx, form.get("rules_yaml", ""), form.get("version", ""),
                       check=check, preview_rule=form.get("rule"), since=form.get("since"))


@router.post("/rules/preview", include_in_schema=False)
async def rules_preview(request: Request, ctx: Ctx, _: Viewer) -> HTMLResponse:
    form = await form_of(request)
    text, rule = form.get("rules_yaml", ""), form.get("rule", "").strip()
    values: dict[str, Any] = {"preview_rule": rule, "since": form.get("since", "30d")}
    try:
        ruleset = rulework.parse(text, ctx.settings)
        if not rule and ruleset.rules:
            rule = values["preview_rule"] = ruleset.rules[-1].name
        p = rulework.preview(ctx.store, ruleset, rule, values["since"], ctx.now())
        values["preview"] = p
        values["preview_items"] = [
            {"article": a, "url": safe_url(a.url), "field": m.field,
             "snippet": mark_html(m.snippet, tuple(h.matched for h in m.hits))}
            for a, m in p.matches]
    except RuleError as exc:
        values["check"] = {"ok": False, "errors": [
            p.__dict__ for p in rulework.problems_of(exc)], "examples": []}
        values["preview_error"] = "Fix the rules first: the preview needs valid rules."
    except KeyError:
        values["preview_error"] = f"No rule named {rule!r} in the text."
    except (ValueError, StoreError) as exc:
        values["preview_error"] = str(exc)
    if _is_htmx(request):
        return render(request, "_preview.html", **values)
    return _rules_page(request, ctx, text, form.get("version", ""), **values)


@router.post("/rules", include_in_schema=False)
async def rules_save(request: Request, ctx: Ctx, _: Editor) -> Response:
    form = await form_of(request)
    text = form.get("rules_yaml", "")
    check = rulework.validate(text, ctx.settings)
    if not check["ok"]:
        return _rules_page(request, ctx, text, form.get("version", ""), 422, check=check)
    try:
        save_rules(ctx, text, form.get("version", ""))
    except VersionConflict as exc:
        return _rules_page(request, ctx, text, digest_of(exc.current), 409,
                           conflict=str(exc), diff=diff(exc.current, text))
    return RedirectResponse("/rules?saved=1", status_code=303)


@router.post("/rules/{name}/mute", include_in_schema=False)
async def mute_form(name: str, request: Request, ctx: Ctx, _: Editor) -> Response:
    form = await form_of(request)
    span = form.get("span") or None
    try:
        rulework.mute(ctx.store, rulework.parse(ctx.rules_text(), ctx.settings), name, span,
                      ctx.now(), drop=form.get("drop") == "1")
    except RuleError:
        raise HTTPException(409, "rules: the saved rules have problems; fix them first") \
            from None
    except KeyError:
        raise HTTPException(404, f"rules: no rule named {name!r}") from None
    except ValueError as exc:
        raise HTTPException(422, f"mute: {exc}") from None
    return RedirectResponse(f"/rules#rule-{name}", status_code=303)


@router.get("/articles/{article_id}", include_in_schema=False)
def article_page(article_id: int, request: Request, ctx: Ctx, _: Viewer,
                 rule: str | None = None) -> HTMLResponse:
    record = ctx.store.article_record(article_id)
    if record is None:
        raise HTTPException(404, f"archive: no article {article_id}")
    values: dict[str, Any] = {"rule": rule, "rule_names": []}
    try:
        ruleset = rulework.parse(ctx.rules_text(), ctx.settings)
        values["rule_names"] = [r.name for r in ruleset.rules]
        if rule:
            values["explanation"] = rulework.explain_article(ruleset, rule, record.article)
    except RuleError:
        values["explain_error"] = "The saved rules have problems; fix them on the rules page."
    except KeyError:
        values["explain_error"] = f"No rule named {rule!r}."
    sources = [_Source(s, safe_url(s.url)) for s in record.sources]
    return render(request, "article.html", record=_Record(record, sources),
                  url=safe_url(record.article.url), **values)


@dataclass(frozen=True)
class _Source:
    source: SourceRecord
    safe_url: str | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


class _Record:
    def __init__(self, record: Any, sources: list[_Source]) -> None:
        self.article, self.matches = record.article, record.matches
        self.deliveries, self.sources = record.deliveries, sources
