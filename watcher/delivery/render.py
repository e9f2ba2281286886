"""Alert -> what a person or a program receives. Pure: no I/O."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from watcher.core.display import one_line, printable
from watcher.core.models import Alert, Digest

_CONSOLE_LINE = 1000  # a console alert's longest line


def console_text(alert: Alert) -> str:
    """A readable block for a terminal or a log; each field on its one line."""
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
    if alert.sources:
        lines.append("  also in:   " + ", ".join(f for f, _, _ in alert.sources))
    lines.append(f"  id:        {alert.delivery_id}")
    return "\n".join(printable(line, limit=_CONSOLE_LINE) for line in lines)


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
        "sources": [{"feed": f, "title": t, "url": u} for f, t, u in alert.sources],
    }




# -- messages: one alert or a digest of several ------------------------------

DIGEST_SCHEMA = "watcher.digest/v1"
Message = Alert | Digest


def alerts_of(message: Message) -> tuple[Alert, ...]:
    return message.alerts if isinstance(message, Digest) else (message,)


def message_id(message: Message) -> str:
    return message.id if isinstance(message, Digest) else message.delivery_id


def mark_html(snippet: str, matched: tuple[str, ...]) -> Markup:
    """The snippet escaped for HTML, matched forms inside <mark>."""
    left, right = "\x00L\x00", "\x00R\x00"
    marked = mark(snippet, matched, left, right)
    return Markup(str(escape(marked)).replace(left, "<mark>").replace(right, "</mark>"))


def digest_console_text(digest: Digest) -> str:
    head = f"DIGEST [{digest.rule}] {len(digest.alerts)} alert(s)  id: {digest.id}"
    return "\n\n".join([head, *(console_text(a) for a in digest.alerts)])


def _when(alert: Alert) -> str:
    return f" · {alert.published[:16].replace('T', ' ')} UTC" if alert.published else ""


# Markdown's syntax characters (Discord's, Teams' and ntfy's): text from a feed is
# shown as written, never as a link, a mention, a heading or emphasis.
_MARKDOWN = re.compile(r"([\\`*_~|\[\]<>#])")
_URL_BREAKERS = str.maketrans({"(": "%28", ")": "%29", " ": "%20", "<": "%3C", ">": "%3E"})


def md_escape(text: str) -> str:
    """`text` for a markdown message: each syntax character escaped, one line."""
    return _MARKDOWN.sub(r"\\\1", one_line(text, 2000))


def _md_link(text: str, url: str | None) -> str:
    """[text](url), the text escaped and the URL unable to end the link early."""
    text = md_escape(text)
    return f"[{text}]({one_line(url, 2000).translate(_URL_BREAKERS)})" if url else text


def _md_snippet(alert: Alert, bold: tuple[str, str] = ("**", "**")) -> str:
    return mark(md_escape(alert.snippet), tuple(md_escape(m) for m in alert.matched), *bold)


def _md_line(alert: Alert, bold: tuple[str, str] = ("**", "**")) -> str:
    head = _md_link(alert.title or "(untitled)", alert.url)
    return (f"{head}\n{_md_snippet(alert, bold)}\n"
            f"_{md_escape(alert.query)} in {alert.field} · {md_escape(alert.feed)}"
            f"{_when(alert)}_")


def _headline(message: Message, markdown: bool = False) -> str:
    alerts = alerts_of(message)
    if isinstance(message, Digest):
        return f"watcher digest [{message.rule}]: {len(alerts)} article(s)"
    title = alerts[0].title or "(untitled)"
    return f"watcher [{alerts[0].rule}]: {md_escape(title) if markdown else title}"


def slack_escape(text: str) -> str:
    """Slack's control characters in mrkdwn and notification text, as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(text: str, **style: bool) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "text", "text": text}
    if style:
        element["style"] = style
    return element


def _slack_article(a: Alert) -> dict[str, Any]:
    """One article as a rich_text block. Its text elements are shown as written: mrkdwn
    has no escape for * _ ~ `, and a title's <...|...> or <!channel> would be a link or
    a mention there; here formatting and links are only what watcher sets."""
    title = one_line(a.title or "(untitled)", 500)
    url = one_line(a.url or "", 2000)
    head = ({"type": "link", "url": url, "text": title, "style": {"bold": True}}
            if urlsplit(url).scheme in ("http", "https") else _slack_text(title, bold=True))
    left, right = "\x00L\x00", "\x00R\x00"
    snippet: list[dict[str, Any]] = []
    for i, part in enumerate(re.split(f"{left}|{right}",
                                      mark(a.snippet[:2500], a.matched, left, right))):
        if part:
            snippet.append(_slack_text(part, bold=True) if i % 2 else _slack_text(part))
    why = f"{one_line(a.query, 500)} in {a.field} · {one_line(a.feed, 200)}{_when(a)}"
    return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
        head, _slack_text("\n"), *snippet, _slack_text("\n"), _slack_text(why, italic=True)]}]}


def slack_payload(message: Message) -> dict[str, Any]:
    """Slack incoming webhook: a header, then one rich_text block per article."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": one_line(
            _headline(message), 150)}}]
    blocks += [_slack_article(a) for a in alerts_of(message)[:45]]
    # the notification's text is read as mrkdwn: escaped, and formatting off
    return {"text": slack_escape(one_line(_headline(message), 300)), "mrkdwn": False,
            "blocks": blocks}


def discord_payload(message: Message) -> dict[str, Any]:
    """Discord webhook: one embed per article (at most 10), no mentions ever."""
    embeds = []
    for a in alerts_of(message)[:10]:
        embed: dict[str, Any] = {
            "title": one_line(md_escape(a.title or "(untitled)"), 256),
            "description": _md_snippet(a)[:4000],
            "fields": [{"name": "rule", "value": a.rule[:1024], "inline": True},
                       {"name": "feed", "value": md_escape(a.feed)[:1024], "inline": True},
                       {"name": "why", "value": f"{md_escape(a.query)} in {a.field}"[:1024]}],
        }
        if a.url:
            embed["url"] = a.url
        if a.published:
            embed["timestamp"] = a.published
        embeds.append(embed)
    more = len(alerts_of(message)) - len(embeds)
    content = one_line(_headline(message, markdown=True), 1900) + (
        f" (+{more} more)" if more > 0 else "")
    return {"content": content, "embeds": embeds, "allowed_mentions": {"parse": []}}


def teams_payload(message: Message) -> dict[str, Any]:
    """Microsoft Teams (Workflows webhook): an Adaptive Card."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": one_line(_headline(message, markdown=True)),
         "weight": "Bolder",
         "size": "Medium", "wrap": True}]
    for a in alerts_of(message):
        body.append({"type": "TextBlock", "text": _md_line(a), "wrap": True,
                     "separator": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


def ntfy_payload(message: Message, topic: str) -> dict[str, Any]:
    """ntfy JSON publish (POSTed to the server root, topic in the body)."""
    alerts = alerts_of(message)
    out: dict[str, Any] = {
        "topic": topic, "title": one_line(_headline(message)),
        "message": "\n\n".join(_md_line(a) for a in alerts)[:4000],
        "markdown": True, "tags": ["newspaper"]}
    if len(alerts) == 1 and alerts[0].url:
        out["click"] = alerts[0].url
    return out
