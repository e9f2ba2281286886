from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx

from watcher import __version__
from watcher.errors import DeliveryError
from watcher.models import Alert
from watcher.render import webhook_payload

_RETRYABLE = {408, 425, 429}


class WebhookChannel:
    """POSTs the generic JSON payload. 2xx is success; redirects are not followed.

    Error messages name the channel, never its URL: webhook URLs often carry tokens.
    """

    def __init__(self, name: str, url: str, headers: dict[str, str] | None = None,
                 timeout_s: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._timeout = timeout_s
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": f"watcher/{__version__}", **(headers or {})})

    async def send(self, alert: Alert) -> None:
        sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps(webhook_payload(alert, sent_at), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "webhook-id": alert.delivery_id}
        try:
            async with asyncio.timeout(self._timeout):
                resp = await self._client.post(self._url, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            kind = type(exc).__name__
            raise DeliveryError(f"channel {self.name!r}: webhook unreachable ({kind})") from None
        status = resp.status_code
        if 200 <= status < 300:
            return
        retry_after = resp.headers.get("retry-after")
        permanent = 400 <= status < 500 and status not in _RETRYABLE
        if 300 <= status < 400:
            permanent = True
        raise DeliveryError(
            f"channel {self.name!r}: webhook answered {status}"
            + (" (redirects are not followed)" if 300 <= status < 400 else ""),
            permanent=permanent,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)

    async def aclose(self) -> None:
        await self._client.aclose()
