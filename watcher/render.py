"""Alert -> what a person or a program receives. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from watcher.models import Alert

PAYLOAD_SCHEMA = "watcher.alert/v1"


def console_text(alert: Alert) -> str:
    """A readable block for a terminal or a log."""
    lines = [
        f"ALERT [{alert.rule}] {alert.title or '(untitled)'}",
        f"  why:       {alert.query} matched in {alert.field}"
        + (f" ({', '.join(repr(m) for m in alert.matched)})" if alert.matched else ""),
        f"  snippet:   {mark(alert.snippet, alert.matched)}",
        f"  feed:      {alert.feed}",
    ]
    if alert.published:
        lines.append(f"  published: {alert.published}")
    lines.append(f"  link:      {alert.url or '(no link)'}")
    lines.append(f"  id:        {alert.delivery_id}")
    return "\n".join(lines)


def mark(snippet: str, matched: tuple[str, ...], left: str = "**", right: str = "**") -> str:
    """Surround each matched form in the snippet with markers (white space folded)."""
    out = snippet
    for form in sorted({" ".join(m.split()) for m in matched}, key=len, reverse=True):
        if form and form in out and f"{left}{form}{right}" not in out:
            out = out.replace(form, f"{left}{form}{right}")
    return out


def jsonl_record(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.delivery_id,
        "rule": alert.rule,
        "query": alert.query,
        "title": alert.title,
        "url": alert.url,
        "feed": alert.feed,
        "published": alert.published,
        "field": alert.field,
        "snippet": alert.snippet,
        "matched": list(alert.matched),
        "text_source": alert.text_source,
    }


def webhook_payload(alert: Alert, sent_at: str) -> dict[str, Any]:
    """The generic webhook body, documented in README.md ("Webhook payload")."""
    return {
        "schema": PAYLOAD_SCHEMA,
        "id": alert.delivery_id,
        "sent_at": sent_at,
        "rule": alert.rule,
        "query": alert.query,
        "article": {
            "title": alert.title,
            "url": alert.url,
            "feed": alert.feed,
            "published": alert.published,
            "text_source": alert.text_source,
        },
        "match": {
            "field": alert.field,
            "snippet": alert.snippet,
            "matched": list(alert.matched),
        },
    }
