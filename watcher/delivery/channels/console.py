from __future__ import annotations

import sys
from typing import TextIO

from watcher.core.display import printable
from watcher.core.models import Alert, Digest
from watcher.delivery.render import console_text, digest_console_text


class ConsoleChannel:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def send(self, alert: Alert) -> None:
        stream = self._stream or sys.stdout
        stream.write(printable(console_text(alert), multiline=True) + "\n\n")
        stream.flush()

    async def send_digest(self, digest: Digest) -> None:
        stream = self._stream or sys.stdout
        stream.write(printable(digest_console_text(digest), multiline=True) + "\n\n")
        stream.flush()

    async def aclose(self) -> None:
        return None
