"""Soak: many distinct pages through one extraction pool, its memory sampled as it goes.

    python -m benchmarks.soak --pages 50000 --workers 2 --recycle-after 2000
    python -m benchmarks.soak --pages 50000 --workers 2 --recycle-after 0   # never recycled
    python -m benchmarks.soak --pages 50000 --vary ...   # names of each page's own

Every page is a different corpus page (benchmarks.corpus, rendered on demand) under
its own URL, handed to the pool with its feed entry as the daemon hands it (so the
text is chosen and signed in the worker too), with at most `--inflight` pages
waiting at once. Every `--every` pages it prints the resident memory (RSS) of this
process and of each live worker, and how many workers were replaced so far; the
last lines compare the samples of the second half with those of the first. Needs
the bench extra (psutil).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator

import psutil

from benchmarks.corpus import CorpusSpec, build, render_page
from watcher.core.models import Entry
from watcher.service.workers import ExtractPool

MB = 1024 * 1024


def pages(count: int, vary: bool = False) -> Iterator[tuple[bytes, str, Entry]]:
    """`count` distinct pages: a corpus of 500 feeds, as many items each as needed.
    `vary`: each page also carries element and attribute names of its own, as pages
    with custom elements and data- attributes do (libxml2 keeps every name it meets)."""
    spec = CorpusSpec(seed=11, feeds=500, items=max(count // 500 + 1, 1))
    base = "http://127.0.0.1:1"
    n = 0
    for doc in build(spec):
        for item in doc.items:
            if n == count:
                return
            url = f"{base}/{doc.name}/{item.guid}"
            entry = Entry(entry_id=item.guid, link=url, title=item.title,
                          summary=item.summary, content="", published=item.published)
            page = render_page(item, base)
            if vary:
                page = page.replace(b"<body>", f'<body><x-card-{n} data-v{n}="{n}" class="c{n}">'
                                    f"<span data-w{n}>.</span></x-card-{n}>".encode(), 1)
            yield page, url, entry
            n += 1


def rss_mb(pid: int | None) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / MB
    except (psutil.Error, ValueError):
        return 0.0  # it was replaced between the listing and the reading


async def soak(count: int, workers: int, recycle_after: int, inflight: int,
               every: int, vary: bool) -> list[tuple[int, float, float]]:
    pool = ExtractPool(workers=workers, spawn_at=0, recycle_after=recycle_after)
    slots = asyncio.Semaphore(inflight)
    done = failed = 0
    samples: list[tuple[int, float, float]] = []  # (pages, this process, workers' max)
    started = time.perf_counter()
    print(f"{'pages':>7} {'s':>7} {'pages/s':>8} {'main MB':>8} {'workers MB':>18} "
          f"{'replaced':>8}")

    def sample() -> None:
        worker_mb = [rss_mb(w.process.pid) for w in list(pool._pool) if w.ready]
        main = rss_mb(None)
        elapsed = time.perf_counter() - started
        samples.append((done, main, max(worker_mb, default=0.0)))
        print(f"{done:>7} {elapsed:>7.1f} {done / elapsed:>8.1f} {main:>8.1f} "
              f"{' '.join(f'{m:.1f}' for m in worker_mb):>18} {pool.recycled:>8}", flush=True)

    async def one(body: bytes, url: str, entry: Entry) -> None:
        nonlocal done, failed
        try:
            result = await pool.extract(body, url, "text/html", entry=entry, key=entry.link)
            if not result.text:
                failed += 1
        except Exception:
            failed += 1
        finally:
            slots.release()
            done += 1
            if done % every == 0:
                sample()

    tasks = set()
    try:
        for body, url, entry in pages(count, vary):
            await slots.acquire()
            task = asyncio.create_task(one(body, url, entry))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        pool.close()
    print(f"{done} pages, {failed} without text or failed, {pool.recycled} workers replaced, "
          f"{time.perf_counter() - started:.0f} s")
    return samples


def report(samples: list[tuple[int, float, float]]) -> None:
    half = len(samples) // 2
    if half == 0:
        return
    for label, column in (("this process", 1), ("largest worker", 2)):
        first = [s[column] for s in samples[:half]]
        second = [s[column] for s in samples[half:]]
        print(f"{label}: median RSS {statistics.median(first):.1f} MB in the first half, "
              f"{statistics.median(second):.1f} MB in the second; max {max(first + second):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recycle-after", type=int, default=2000)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--every", type=int, default=2500)
    parser.add_argument("--vary", action="store_true",
                        help="element and attribute names of each page's own")
    args = parser.parse_args()
    print(f"soak: {args.pages} pages{' (names varied)' if args.vary else ''}, "
          f"{args.workers} workers, recycled after {args.recycle_after or 'never'}")
    report(asyncio.run(soak(args.pages, args.workers, args.recycle_after, args.inflight,
                            args.every, args.vary)))


if __name__ == "__main__":
    main()
