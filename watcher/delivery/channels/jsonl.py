from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Digest
from watcher.delivery.render import jsonl_record


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
        await self._write(json.dumps(jsonl_record(alert), ensure_ascii=False) + "\n")

    async def send_digest(self, digest: Digest) -> None:
        """One line per alert, each with the digest's id under `digest`."""
        await self._write("".join(
            json.dumps({**jsonl_record(a), "digest": digest.id}, ensure_ascii=False) + "\n"
            for a in digest.alerts))

    async def _write(self, line: str) -> None:
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise DeliveryError(f"channel {self.name!r}: cannot write {self.path}: "
                                f"{exc.strerror or exc}") from None

    async def aclose(self) -> None:
        return None
