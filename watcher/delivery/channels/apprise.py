"""Apprise (optional extra `apprise`): Telegram, Matrix, Pushover and many more by URL.

The package is imported only when such a channel is built; config validation
reports a missing package before that. Apprise's own log can name URLs (which
carry tokens), so it is kept quiet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Digest
from watcher.delivery.render import Message
from watcher.delivery.templating import Templates


class AppriseChannel:
    def __init__(self, name: str, url: str, templates: Templates, timeout_s: float = 30.0
                 ) -> None:
        try:
            import apprise
        except ImportError:
            raise ValueError(f"channel {name!r}: type apprise needs the apprise package: "
                             "pip install 'watcher[apprise]'") from None
        logging.getLogger("apprise").setLevel(logging.CRITICAL)
        self.name = name
        self._templates = templates
        self._timeout = timeout_s
        self._apprise: Any = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(f"channel {name!r}: apprise does not understand the URL "
                             "(the scheme or its parts are wrong)")

    async def send(self, alert: Alert) -> None:
        await self._send(alert)

    async def send_digest(self, digest: Digest) -> None:
        await self._send(digest)

    async def _send(self, message: Message) -> None:
        subject, text, _ = self._templates.email(message)
        try:
            async with asyncio.timeout(self._timeout):
                ok = await asyncio.to_thread(self._apprise.notify, body=text, title=subject)
        except TimeoutError:
            raise DeliveryError(f"channel {self.name!r}: apprise timed out") from None
        if not ok:
            raise DeliveryError(f"channel {self.name!r}: apprise could not deliver "
                                "(the service refused or was unreachable)")

    async def aclose(self) -> None:
        return None
