"""Jinja2 templates for email subjects and bodies and the generic webhook body.

Pure: template *sources* come in as strings (the channels package reads the
files); nothing here touches the disk or the clock. Templates see:

- `digest`: true for a digest, false for a single alert
- `id`: the delivery id (or digest id), `rule`, `count`
- `alerts`: a list of alerts, each with `id rule query title url feed published
  field snippet matched text_source`, plus `marked` (snippet with **matched**
  words) and `marked_html` (escaped, matched words in <mark>)
- `alert`: the first alert (the only one when not a digest)
- `sent_at` (generic webhook only): ISO-8601 UTC time of this attempt

HTML is autoescaped. Undefined names are errors, found by `check()` at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from watcher.core.display import one_line, printable
from watcher.core.models import Alert, Digest
from watcher.delivery.render import Message, alerts_of, mark, mark_html, message_id

NAMES = ("subject", "text", "html", "generic")
FILES = {"subject": "subject.txt.j2", "text": "text.txt.j2", "html": "html.html.j2",
         "generic": "generic.json.j2"}


class TemplateError(ValueError):
    """A template that does not compile or render; the message names the template."""


def _env(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=autoescape,
                              keep_trailing_newline=True, trim_blocks=True,
                              lstrip_blocks=True)


_TEXT_ENV = _env(False)
_HTML_ENV = _env(True)


def context(message: Message, sent_at: str = "") -> dict[str, Any]:
    alerts = []
    for a in alerts_of(message):
        d = a.as_dict()
        d["marked"] = mark(a.snippet, a.matched)
        d["marked_html"] = mark_html(a.snippet, a.matched)
        alerts.append(d)
    return {"digest": isinstance(message, Digest), "id": message_id(message),
            "rule": alerts[0]["rule"] if alerts else getattr(message, "rule", ""),
            "count": len(alerts), "alerts": alerts, "alert": alerts[0] if alerts else {},
            "sent_at": sent_at}


@dataclass(frozen=True)
class Templates:
    compiled: Mapping[str, jinja2.Template]
    origins: Mapping[str, str]  # template name -> file it came from, for messages

    def _render(self, name: str, message: Message, sent_at: str = "") -> str:
        try:
            return self.compiled[name].render(context(message, sent_at))
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.origins.get(name, name)}: "
                                f"{type(exc).__name__}: {exc}") from None

    def email(self, message: Message) -> tuple[str, str, str]:
        """(subject, plain text, html); the subject is one clean line, and no
        escape sequence or control character from a feed reaches either body."""
        return (one_line(self._render("subject", message), 250),
                printable(self._render("text", message), multiline=True),
                printable(self._render("html", message), multiline=True))

    def generic(self, message: Message, sent_at: str) -> dict[str, Any]:
        text = self._render("generic", message, sent_at)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"template {self.origins.get('generic', 'generic')}: "
                                f"output is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise TemplateError(f"template {self.origins.get('generic', 'generic')}: "
                                "output must be a JSON object")
        return payload

    def check(self) -> None:
        """Render every template against a sample alert and digest; raise TemplateError."""
        self.email(SAMPLE)
        self.email(SAMPLE_DIGEST)
        self.generic(SAMPLE, "2026-01-01T00:00:00Z")
        self.generic(SAMPLE_DIGEST, "2026-01-01T00:00:00Z")


def compile_templates(sources: Mapping[str, str],
                      origins: Mapping[str, str] | None = None) -> Templates:
    origins = dict(origins or {})
    compiled = {}
    for name in NAMES:
        env = _HTML_ENV if name == "html" else _TEXT_ENV
        try:
            compiled[name] = env.from_string(sources[name])
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {origins.get(name, name)}:{exc.lineno}: "
                                f"{exc.message}") from None
        except KeyError:
            raise TemplateError(f"template {name!r} is missing") from None
    return Templates(compiled, origins)


SAMPLE = Alert(
    delivery_id="wd_sample", rule="sample-rule", query='"tactical missile"',
    title="Sample <title> & \"quotes\"", url="https://example.org/a?x=1&y=2",
    feed="sample-feed", published="2026-01-01T00:00:00.000000Z", field="body",
    snippet="A new tactical missile system was shown.", matched=("tactical missile",),
    article_id=1)
SAMPLE_DIGEST = Digest(id="wg_sample", rule="sample-rule", alerts=(SAMPLE, SAMPLE))
