from __future__ import annotations

import sys
from typing import TextIO

from watcher.core.models import Alert, Digest
from watcher.delivery.render import console_text, digest_console_text


class ConsoleChannel:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def send(self, alert: Alert) -> None:
        stream = self._stream or sys.stdout
        stream.write(console_text(alert) + "\n\n")
        stream.flush()

    async def send_digest(self, digest: Digest) -> None:
        stream = self._stream or sys.stdout
        stream.write(digest_console_text(digest) + "\n\n")
        stream.flush()

    async def aclose(self) -> None:
        return None
