"""Sitemaps for tests and benchmarks: news and ordinary ones, indexes, and hostile ones
produced lazily (a ten-million-URL stream, a gigabyte gzip bomb)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta

URLSET = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
          b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
          b'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n')


def news_url(loc: str, when: datetime, title: str, keywords: str = "world",
             language: str = "en") -> str:
    return (f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Loopback News"
            f"</news:name><news:language>{language}</news:language></news:publication>"
            f"<news:publication_date>{when.isoformat()}</news:publication_date>"
            f"<news:title>{title}</news:title><news:keywords>{keywords}</news:keywords>"
            "</news:news></url>\n")


def plain_url(loc: str, when: datetime | None) -> str:
    lastmod = f"<lastmod>{when.date().isoformat()}</lastmod>" if when else ""
    return f"<url><loc>{loc}</loc>{lastmod}</url>\n"


def urlset(items: list[str]) -> bytes:
    return URLSET + "".join(items).encode() + b"</urlset>\n"


def index(children: list[tuple[str, datetime | None]]) -> bytes:
    body = "".join(f"<sitemap><loc>{loc}</loc>"
                   + (f"<lastmod>{when.isoformat()}</lastmod>" if when else "") + "</sitemap>"
                   for loc, when in children)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex '
            f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</sitemapindex>\n'
            ).encode()


def news_sitemap(n: int, newest: datetime, base: str = "https://news.test") -> bytes:
    """`n` news URLs, one every 3 s back from `newest`."""
    return urlset([news_url(f"{base}/2026/05/01/story-{i}", newest - timedelta(seconds=3 * i),
                            f"Story number {i} about the world", "world, politics")
                   for i in range(n)])


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, 6)


class Counted:
    """A lazy body that counts the chunks it produced: the client must hang up early."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.produced = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.produced += 1
            yield chunk


def endless_urlset(urls: int = 10_000_000, per_chunk: int = 1000,
                   base: str = "https://news.test") -> Iterator[bytes]:
    """A sitemap of ten million (undated) URLs, made as it is sent."""
    yield URLSET
    for start in range(0, urls, per_chunk):
        yield "".join(f"<url><loc>{base}/a/{i}</loc></url>"
                      for i in range(start, start + per_chunk)).encode()
    yield b"</urlset>"


def gzip_bomb_stream(megabytes: int = 1000) -> Iterator[bytes]:
    """A gzip file inflating to `megabytes` MB of XML whitespace, compressed as sent."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield z.compress(URLSET)
    block = b" " * 1_000_000
    for _ in range(megabytes):
        yield z.compress(block)
    yield z.flush()
