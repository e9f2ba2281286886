"""Content-Encoding decoding with a cap on what it produces.

Used by the fetcher for feeds, and by the extraction workers for article pages,
which the fetcher hands over still compressed: inflating is CPU work, and the
daemon's own process is the busier one.
"""

from __future__ import annotations

from collections.abc import Callable
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


# Takes decoded bytes as they come; False when it wants no more.
Sink = Callable[[bytes], bool]
_SINK_PIECE = 1 << 20


class GzipFile:
    """A sink in front of a sink: a body that is itself a gzip file (sitemap.xml.gz,
    served without a Content-Encoding) is inflated, under the same cap."""

    def __init__(self, sink: Sink, cap: int, what: str) -> None:
        self.sink, self.cap, self.what = sink, cap, what
        self._inner: BoundedDecoder | None = None
        self._first = True

    def __call__(self, data: bytes) -> bool:
        if self._first:
            self._first = False
            if data.startswith(b"\x1f\x8b"):
                self._inner = BoundedDecoder("gzip", self.cap, self.what, self.sink)
        if self._inner is None:
            return self.sink(data)
        self._inner.feed(data)
        return not self._inner.stopped

    def finish(self) -> None:
        if self._inner is not None:
            self._inner.finish()


class BoundedDecoder:
    """Decodes a body in chunks and never produces more than `cap` bytes.

    With a `sink`, the decoded bytes go to it instead of being kept, and decoding
    stops (`stopped`) once the sink has had enough.
    """

    def __init__(self, coding: str | None, cap: int, what: str,
                 sink: Sink | None = None) -> None:
        self.cap, self.what = cap, what
        self.size = 0
        self.parts: list[bytes] = []
        self.sink = sink
        self.stopped = False
        self.coding = coding
        # wbits 47 reads gzip or zlib headers; deflate may also come raw (no header).
        # ISA-L inflates much faster than zlib, with zlib's interface.
        self._z = isal_zlib.decompressobj(47) if coding else None
        self._raw_deflate_tried = False

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap:
            raise FetchError(f"{self.what}: body over the {self.cap} byte cap; stopped")
        if self.sink is None:
            self.parts.append(data)
        elif data and not self.sink(data):
            self.stopped = True

    def feed(self, chunk: bytes) -> None:
        if self._z is None:
            self._keep(chunk)
            return
        data = chunk
        while data and not self.stopped:
            limit = self.cap - self.size + 1
            if self.sink is not None:
                limit = min(limit, _SINK_PIECE)  # a bomb's output never held at once
            try:
                out = self._z.decompress(data, limit)
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
        if self._z is not None and not self._z.eof and not self.stopped:
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
