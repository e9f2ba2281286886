"""Extraction in worker processes: results, and a page that takes too long is cut off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from watcher.errors import ExtractError
from watcher.extract import extract_page
from watcher.models import Extracted
from watcher.workers import ExtractPool

SEED = Path(__file__).resolve().parents[1] / "seeds" / "feeds" / "articles"


def extract_or_hang(body: bytes, url: str | None, content_type: str | None) -> Extracted:
    """Stands in for a page that sends the extractor into a very long computation."""
    if body == b"pathological":
        time.sleep(600)
    return extract_page(body, url, content_type)


def test_pool_extracts_pages_and_cuts_off_a_slow_one() -> None:
    page = (SEED / "kim-jong-un-inspects-new-missile-system.html").read_bytes()
    slow = b"pathological"

    async def go() -> None:
        pool = ExtractPool(workers=2, timeout_s=0.2, spawn_at=0, func=extract_or_hang)
        try:
            pool.timeout_s = 30
            results = await asyncio.gather(*(pool.extract(page, None, "text/html")
                                             for _ in range(6)))
            assert all("tactical missile system" in r.text for r in results)
            assert results[0].language == "en" and results[0].author == "UPI"
            pool.timeout_s = 0.2
            with pytest.raises(ExtractError, match=r"took longer than 0\.2s; cut off"):
                await pool.extract(slow, "http://x.test/slow", "text/html")
            # The pool was replaced: the next page works again.
            pool.timeout_s = 30
            again = await pool.extract(page, None, "text/html")
            assert "tactical missile system" in again.text
        finally:
            pool.close()

    asyncio.run(go())
