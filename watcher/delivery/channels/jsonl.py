from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Digest
from watcher.delivery.render import jsonl_record


def _last_line_end(fd: int, size: int) -> int:
    """The offset just after the file's last newline (0 if it has none)."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def append_whole_lines(path: Path, data: bytes) -> None:
    """Append `data` (whole lines) and sync, or leave the file as it was: a full disk
    mid-write is cut back, so a retry never appends after half a record. A partial
    last line left by a crash is cut off first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            size = _last_line_end(fd, size)
            os.ftruncate(fd, size)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


class JsonlChannel:
    """Appends one JSON object per alert; synced to disk before it counts as sent."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = Path(path)

    def _append(self, line: str) -> None:
        append_whole_lines(self.path, line.encode("utf-8"))

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
