"""Content-Encoding decoding with a cap on what it produces.

Used by the fetcher for feeds, and by the extraction workers for article pages,
which the fetcher hands over still compressed: inflating is CPU work, and the
daemon's own process is the busier one.
"""

from __future__ import annotations

from typing import cast

from isal import isal_zlib

from watcher.core.errors import FetchError
from watcher.core.models import Undecoded

# isal's stubs declare `error` an instance of Exception; it is the class IsalError.
_InflateError = cast("type[Exception]", isal_zlib.error)


def content_coding(header: str, what: str) -> str | None:
    """The one coding a Content-Encoding header names ('gzip', 'x-gzip', 'deflate'),
    None for none; FetchError for anything else."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
        raise FetchError(f"{what}: unsupported Content-Encoding {header!r}")
    return codings[0] if codings else None


class BoundedDecoder:
    """Decodes a body in chunks and never produces more than `cap` bytes."""

    def __init__(self, coding: str | None, cap: int, what: str) -> None:
        self.cap, self.what = cap, what
        self.size = 0
        self.parts: list[bytes] = []
        self.coding = coding
        # wbits 47 reads gzip or zlib headers; deflate may also come raw (no header).
        # ISA-L inflates much faster than zlib, with zlib's interface.
        self._z = isal_zlib.decompressobj(47) if coding else None
        self._raw_deflate_tried = False

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap:
            raise FetchError(f"{self.what}: body over the {self.cap} byte cap; stopped")
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self._z is None:
            self._keep(chunk)
            return
        data = chunk
        while data:
            try:
                out = self._z.decompress(data, self.cap - self.size + 1)
            except _InflateError as exc:
                if self.coding == "deflate" and not self._raw_deflate_tried and not self.size:
                    self._raw_deflate_tried = True
                    self._z = isal_zlib.decompressobj(-15)
                    continue
                raise FetchError(f"{self.what}: cannot decode {self.coding} body: {exc}") from None
            self._keep(out)
            data = self._z.unconsumed_tail
            if self._z.eof:
                break

    def finish(self) -> bytes:
        if self._z is not None and not self._z.eof:
            try:
                self._keep(self._z.flush())
            except _InflateError as exc:
                raise FetchError(f"{self.what}: truncated {self.coding} body: {exc}") from None
        return b"".join(self.parts)


def decode_body(body: bytes, undecoded: Undecoded | None) -> bytes:
    """A body the fetcher kept encoded, decoded under the fetcher's own cap."""
    if undecoded is None:
        return body
    decoder = BoundedDecoder(undecoded.coding, undecoded.cap, undecoded.what)
    decoder.feed(body)
    return decoder.finish()
