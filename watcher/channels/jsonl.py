from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from watcher.errors import DeliveryError
from watcher.models import Alert
from watcher.render import jsonl_record


class JsonlChannel:
    """Appends one JSON object per alert; synced to disk before it counts as sent."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = Path(path)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    async def send(self, alert: Alert) -> None:
        line = json.dumps(jsonl_record(alert), ensure_ascii=False) + "\n"
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise DeliveryError(f"channel {self.name!r}: cannot write {self.path}: "
                                f"{exc.strerror or exc}") from None

    async def aclose(self) -> None:
        return None
