"""Extraction in worker processes: results, and a page that takes too long is cut off."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from watcher.core.errors import ExtractError
from watcher.core.models import Entry, Extracted, Undecoded
from watcher.extract.page import extract_page
from watcher.extract.prune_xpath import PRUNE_LISTS
from watcher.service.extract_worker import decode_and_run
from watcher.service.workers import ExtractFunc, ExtractPool

SEED = Path(__file__).resolve().parents[1] / "seeds" / "feeds" / "articles"


ENTRY = Entry(entry_id="e", link="http://x.test/a", title="t", summary="a short summary",
              content="", published=None)


def extract_or_hang(body: bytes, url: str | None, content_type: str | None, *,
                    feed_chars: int = 0) -> Extracted:
    """Stands in for a page that sends the extractor into a very long computation,
    one that kills its process, and one that hits a bug."""
    if body == b"pathological":
        time.sleep(600)
    if body == b"fatal":
        os._exit(3)
    if body == b"buggy":
        raise KeyError("no such node")
    return extract_page(body, url, content_type, feed_chars=feed_chars)


def with_pool(test: Callable[[ExtractPool], Awaitable[None]], *, workers: int = 1,
              timeout_s: float = 30, spawn_at: int = 0, func: ExtractFunc = extract_or_hang,
              recycle_after: int = 2000) -> None:
    """Run `test` against a pool, on an event loop of its own; the pool is closed after."""
    async def go() -> None:
        pool = ExtractPool(workers=workers, timeout_s=timeout_s, spawn_at=spawn_at, func=func,
                           recycle_after=recycle_after)
        try:
            await test(pool)
        finally:
            pool.close()

    asyncio.run(go())


def _pids(pool: ExtractPool) -> set[int | None]:
    return {w.process.pid for w in pool._pool}


def test_pool_extracts_pages_and_cuts_off_a_slow_one() -> None:
    page = (SEED / "kim-jong-un-inspects-new-missile-system.html").read_bytes()
    slow = b"pathological"

    async def go(pool: ExtractPool) -> None:
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

    with_pool(go, workers=2, timeout_s=0.2)


PAGE = (SEED / "kim-jong-un-inspects-new-missile-system.html").read_bytes()


def test_pages_queued_behind_a_cut_off_page_are_not_lost() -> None:
    async def go(pool: ExtractPool) -> None:
        await pool.extract(PAGE, None, "text/html")  # the worker is up
        first = _pids(pool)
        results = await asyncio.gather(
            pool.extract(b"pathological", "http://x.test/slow", "text/html"),
            *(pool.extract(PAGE, f"http://x.test/{i}", "text/html") for i in range(5)),
            return_exceptions=True)
        assert isinstance(results[0], ExtractError)
        assert "cut off" in str(results[0]) and "http://x.test/slow" in str(results[0])
        assert all(isinstance(r, Extracted) and "tactical missile" in r.text
                   for r in results[1:])
        assert _pids(pool) and _pids(pool) != first  # a new worker took over

    # One worker: the good pages are sent to it behind the slow one.
    with_pool(go, timeout_s=1.0)


def test_a_worker_that_dies_costs_its_page_only() -> None:
    async def go(pool: ExtractPool) -> None:
        results = await asyncio.gather(
            pool.extract(b"fatal", "http://x.test/fatal", "text/html"),
            *(pool.extract(PAGE, None, "text/html") for _ in range(3)),
            return_exceptions=True)
        assert isinstance(results[0], ExtractError)
        assert str(results[0]) == "extract: http://x.test/fatal: the extraction worker died"
        assert all(isinstance(r, Extracted) for r in results[1:])

    with_pool(go)


def test_a_bug_on_one_page_is_an_extract_error_and_the_worker_stays() -> None:
    async def go(pool: ExtractPool) -> None:
        await pool.extract(PAGE, None, "text/html")
        before = _pids(pool)
        with pytest.raises(ExtractError, match=r"^extract: http://x\.test/b: extraction "
                                               r"failed: KeyError: 'no such node'$"):
            await pool.extract(b"buggy", "http://x.test/b", "text/html")
        assert "tactical missile" in (await pool.extract(PAGE, None, "text/html")).text
        assert _pids(pool) == before
        assert pool.worker_pages == 3 and pool.worker_cpu_s > 0

    with_pool(go)


def test_close_fails_waiting_pages_and_stops_the_workers() -> None:
    async def go() -> None:
        pool = ExtractPool(workers=1, timeout_s=30, spawn_at=0, func=extract_or_hang)
        await pool.extract(PAGE, None, "text/html")
        (worker,) = pool._pool
        process = worker.process
        waiting = asyncio.ensure_future(pool.extract(b"pathological", "http://x.test/s",
                                                     "text/html"))
        await asyncio.sleep(0.2)
        pool.close()
        with pytest.raises(ExtractError, match="closed"):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(ValueError):  # closed: the process was reaped
            process.is_alive()
        with pytest.raises(ExtractError, match="closed"):
            await pool.extract(PAGE, None, "text/html")

    asyncio.run(go())


def test_a_few_pages_are_extracted_in_process_before_the_pool_starts() -> None:
    async def go(pool: ExtractPool) -> None:
        x = await pool.extract(PAGE, None, "text/html", entry=ENTRY)
        assert "tactical missile" in x.text
        assert x.kept is not None and x.kept.source == "page" and x.kept.signature is not None
        assert pool._pool == [] and pool.worker_pages == 0
        many = await asyncio.gather(*(pool.extract(PAGE, None, "text/html")
                                      for _ in range(8)))
        assert len(many) == 8 and pool.worker_pages > 0

    with_pool(go, spawn_at=4, func=extract_page)


def test_an_expected_backlog_starts_the_workers_before_the_first_page() -> None:
    async def go(pool: ExtractPool) -> None:
        pool.expect(3)  # a trickle: pages stay in-process
        await asyncio.sleep(0.05)
        assert pool._pool == [] and pool._spawning == 0
        pool.expect(4)
        await asyncio.sleep(0.05)
        assert pool._spawning + len(pool._pool) == 1  # starting, before any page
        x = await pool.extract(PAGE, None, "text/html")
        assert "tactical missile" in x.text and pool.worker_pages == 1

    with_pool(go, spawn_at=4, func=extract_page)


def test_workers_outlive_a_sigterm_to_the_process_group() -> None:
    """A service manager signals every process; the daemon drains, then stops them."""
    import signal

    async def go(pool: ExtractPool) -> None:
        await pool.extract(PAGE, None, "text/html")
        (pid,) = _pids(pool)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert "tactical missile" in (await pool.extract(PAGE, None, "text/html")).text
        assert _pids(pool) == {pid}

    with_pool(go)


def test_pump_feeds_the_workers_while_the_event_loop_is_held() -> None:
    """A feed's articles are stored in one transaction, with no await: meanwhile
    only pump() takes in answers and sends the pages still queued."""
    async def go(pool: ExtractPool) -> None:
        await pool.extract(PAGE, None, "text/html")  # the worker is up
        waiting = [asyncio.ensure_future(pool.extract(PAGE, f"http://x.test/{i}", "text/html"))
                   for i in range(12)]
        await asyncio.sleep(0)  # each queues its page; the worker is sent as many as it holds
        assert pool._queue and pool.worker_pages == 1
        deadline = time.monotonic() + 60
        while pool.worker_pages < 13 and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop does not run here
            pool.pump()
        assert pool.worker_pages == 13 and not pool._queue
        results = await asyncio.gather(*waiting)
        assert all("tactical missile" in r.text for r in results)

    with_pool(go)


def test_pump_without_workers_does_nothing() -> None:
    ExtractPool(in_process=True).pump()
    ExtractPool(workers=1).pump()  # not started


def test_a_worker_stopped_from_two_threads_at_once_is_stopped_once() -> None:
    """close() runs on a thread of its own while the loop, seeing the killed
    worker's socket end, stops the same process."""
    import multiprocessing
    import threading

    from watcher.service.workers import _kill

    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    process.start()
    popen = process._popen  # type: ignore[attr-defined]
    release = popen.close

    def slow_release() -> None:
        time.sleep(0.2)  # the other thread gets in: both are inside Process.close()
        release()

    popen.close = slow_release
    errors: list[BaseException] = []

    def stop() -> None:
        try:
            _kill(process)
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=stop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with pytest.raises(ValueError):  # closed: the process was reaped
        process.is_alive()


def test_workers_run_at_a_lower_priority_than_the_daemon() -> None:
    """The daemon's process feeds the workers: it must not wait behind them for a core."""
    async def go(pool: ExtractPool) -> None:
        await pool.extract(PAGE, None, "text/html")
        (pid,) = _pids(pool)
        assert pid is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(ours + 5, 19)

    with_pool(go)


@pytest.mark.parametrize("in_process", [False, True])
def test_a_compressed_page_is_inflated_where_it_is_extracted(in_process: bool) -> None:
    """The fetcher hands pages over still compressed; the worker (or the thread,
    in-process) inflates them under the fetcher's cap, and a bomb costs that page only."""
    what = "feed 'f': page http://x.test/a"
    packed = gzip.compress(PAGE)
    bomb = gzip.compress(b"<p>" + b"a" * 5_000_000 + b"</p>")

    async def go(pool: ExtractPool) -> None:
        pool.in_process = in_process
        ok = await pool.extract(packed, "http://x.test/a", "text/html",
                                Undecoded("gzip", 1_000_000, what))
        assert "tactical missile system" in ok.text
        raw = await pool.extract(
            zlib.compress(PAGE), None, "text/html", Undecoded("deflate", 1_000_000, what))
        assert raw.text == ok.text
        with pytest.raises(ExtractError, match=r"page http://x\.test/a: body over the "
                                               r"1000000 byte cap; stopped"):
            await pool.extract(bomb, "http://x.test/a", "text/html",
                               Undecoded("gzip", 1_000_000, what))
        with pytest.raises(ExtractError, match=r"cannot decode gzip body"):
            await pool.extract(PAGE, "http://x.test/a", "text/html",
                               Undecoded("gzip", 1_000_000, what))
        again = await pool.extract(packed, None, "text/html", Undecoded("gzip", 10**6, what))
        assert again.text == ok.text
        if not in_process:
            assert pool.worker_pages == 5  # every one went through the worker

    with_pool(go)


def extract_naming_the_worker(body: bytes, url: str | None, content_type: str | None, *,
                              feed_chars: int = 0) -> Extracted:
    """Says which process extracted the page, and which page it was."""
    return Extracted(text=f"{os.getpid()} {body.decode()}")


def test_a_worker_is_replaced_after_its_share_of_pages_and_no_page_is_lost() -> None:
    async def go(pool: ExtractPool) -> None:
        # All at once: the pages in flight when a worker is due are finished by it.
        pages = [f"page-{i}".encode() for i in range(10)]
        results = await asyncio.gather(*(pool.extract(p, None, "text/html") for p in pages))
        assert [r.text.split()[1] for r in results] == [p.decode() for p in pages]
        by_worker = Counter(r.text.split()[0] for r in results)
        assert sorted(by_worker.values()) == [1, 3, 3, 3]  # three pages each, then replaced
        assert pool.recycled == 3 and len(pool._pool) == 1
        # One at a time: the same.
        for i in range(4):
            x = await pool.extract(f"next-{i}".encode(), None, "text/html")
            assert x.text.endswith(f"next-{i}")
        assert pool.recycled == 4 and len(_pids(pool)) == 1
        assert pool.worker_pages == 14

    with_pool(go, recycle_after=3, func=extract_naming_the_worker)


def test_without_recycling_one_worker_does_every_page() -> None:
    async def go(pool: ExtractPool) -> None:
        results = await asyncio.gather(*(pool.extract(b"p", None, "text/html")
                                         for _ in range(10)))
        assert len({r.text.split()[0] for r in results}) == 1 and pool.recycled == 0

    with_pool(go, recycle_after=0, func=extract_naming_the_worker)


def test_each_worker_start_says_how_much_pruning_runs_in_python(
        caplog: pytest.LogCaptureFixture) -> None:
    import trafilatura

    async def go(pool: ExtractPool) -> None:
        for _ in range(3):
            assert "tactical missile" in (await pool.extract(PAGE, None, "text/html")).text

    caplog.set_level(logging.INFO, logger="watcher.service.workers")
    with_pool(go, recycle_after=2, func=extract_page)
    lines = [r for r in caplog.records if "pruning expressions" in r.getMessage()]
    assert len(lines) == 2  # the first worker, and the one after it
    assert all(r.levelno == logging.INFO for r in lines)
    total = sum(len(getattr(trafilatura.xpaths, n)) for n in PRUNE_LISTS)
    assert f"runs all {total} of trafilatura {trafilatura.__version__}'s pruning expressions " \
           f"in Python" in lines[0].getMessage()


def test_pruning_left_to_libxml2_is_a_warning(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import pickle
    from types import SimpleNamespace

    import trafilatura.xpaths as xpaths
    from lxml.etree import XPath

    from watcher.extract import prune_xpath
    from watcher.service.workers import _log_pruning

    monkeypatch.setattr(xpaths, "TEASER_DISCARD_XPATH", [XPath(".//div[1]")])
    total = sum(len(getattr(xpaths, n)) for n in PRUNE_LISTS)
    frame = bytearray(pickle.dumps((prune_xpath.install(), "9.9")))
    caplog.set_level(logging.INFO, logger="watcher.service.workers")
    _log_pruning(SimpleNamespace(process=SimpleNamespace(pid=42)), frame)  # type: ignore[arg-type]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        f"extract: worker 42 runs {total - 1} of trafilatura 9.9's {total} pruning expressions "
        "in Python; "
        "left to libxml2 (slower pages): .//div[1]")


def test_the_worker_tells_the_extraction_how_long_the_feeds_text_is() -> None:
    """So a page text that would lose to the feed's gets the full extraction first."""
    seen: list[int] = []

    def recording(body: bytes, url: str | None, content_type: str | None, *,
                  feed_chars: int = 0) -> Extracted:
        seen.append(feed_chars)
        return Extracted(text="page text " * 50)

    long_content = replace(ENTRY, content="  the feed's whole story  ")
    kept = decode_and_run(recording, b"<html></html>", None, None, None, long_content).kept
    assert seen == [len("the feed's whole story")] and kept is not None
    assert kept.source == "page"
    decode_and_run(recording, b"<html></html>", None, None, None, ENTRY)
    assert seen[-1] == len("a short summary")
    decode_and_run(recording, b"<html></html>", None, None, None, None)
    assert seen[-1] == 0
