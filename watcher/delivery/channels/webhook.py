"""HTTP POST of a JSON payload: generic (our schema), slack, discord, teams, ntfy.

2xx is success; redirects are not followed; 408, 425, 429 and 5xx are retried
(honouring Retry-After); 410 disables the channel; other 4xx are permanent.
Error messages name the channel, never its URL: webhook URLs often carry tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from watcher import __version__
from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Digest
from watcher.core.schedule import parse_retry_after
from watcher.delivery import signing
from watcher.delivery.render import (
    Message,
    discord_payload,
    message_id,
    ntfy_payload,
    slack_payload,
    teams_payload,
)
from watcher.delivery.templating import Templates

_RETRYABLE = {408, 425, 429}
FORMATS = ("generic", "slack", "discord", "teams", "ntfy")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def ntfy_target(url: str) -> tuple[str, str]:
    """https://ntfy.sh/mytopic -> (https://ntfy.sh/, 'mytopic'): JSON goes to the root."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    root, _, topic = path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, root + "/", parts.query, "")), topic


class WebhookChannel:
    def __init__(self, name: str, url: str, headers: dict[str, str] | None = None,
                 timeout_s: float = 10.0, *, format: str = "generic",
                 secret: str | None = None, templates: Templates | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        if format not in FORMATS:
            raise ValueError(f"channel {name!r}: unknown webhook format {format!r}")
        if format == "generic" and templates is None:
            raise ValueError(f"channel {name!r}: the generic format needs templates")
        self.name = name
        self.format = format
        self._url = url
        self._secret = secret
        self._templates = templates
        self._timeout = timeout_s
        self._clock = clock
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": f"watcher/{__version__}", **(headers or {})})

    def payload(self, message: Message, sent_at: str) -> tuple[str, dict[str, Any]]:
        """(url to POST to, JSON body) for this channel's format."""
        if self.format == "slack":
            return self._url, slack_payload(message)
        if self.format == "discord":
            return self._url, discord_payload(message)
        if self.format == "teams":
            return self._url, teams_payload(message)
        if self.format == "ntfy":
            root, topic = ntfy_target(self._url)
            return root, ntfy_payload(message, topic)
        assert self._templates is not None
        return self._url, self._templates.generic(message, sent_at)

    async def send(self, alert: Alert) -> None:
        await self._post(alert)

    async def send_digest(self, digest: Digest) -> None:
        await self._post(digest)

    async def _post(self, message: Message) -> None:
        now = self._clock()
        url, payload = self.payload(message, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   **signing.headers(self._secret, message_id(message), int(now.timestamp()),
                                     body)}
        try:
            async with asyncio.timeout(self._timeout):
                resp = await self._client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            kind = type(exc).__name__
            raise DeliveryError(f"channel {self.name!r}: webhook unreachable ({kind})") from None
        status = resp.status_code
        if 200 <= status < 300:
            return
        if status == 410:
            raise DeliveryError(
                f"channel {self.name!r}: webhook answered 410 Gone; the channel is disabled "
                "until watcher restarts (fix or remove it in the config)",
                disable_channel=True)
        retry = status in _RETRYABLE or status >= 500
        raise DeliveryError(
            f"channel {self.name!r}: webhook answered {status}"
            + (" (redirects are not followed)" if 300 <= status < 400 else ""),
            permanent=not retry,
            retry_after=parse_retry_after(resp.headers.get("retry-after"), now)
            if retry else None)

    async def aclose(self) -> None:
        await self._client.aclose()
