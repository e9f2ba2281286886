from __future__ import annotations

from typing import Protocol

from watcher.core.models import Alert, Digest


class Channel(Protocol):
    """Takes one alert, or one digest of several. Returns only once the receiver
    accepted it.

    Raises DeliveryError otherwise; `permanent=True` when retrying cannot help.
    """

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def send_digest(self, digest: Digest) -> None: ...

    async def aclose(self) -> None: ...
