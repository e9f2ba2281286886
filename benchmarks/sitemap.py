"""A 50,000-URL news sitemap: parse time and extra memory, each run its own process.

    python -m benchmarks.sitemap [--urls 50000] [--runs 7]

Writes a news sitemap (every URL with title, keywords, language and publication
date, about 18 MB) plain and gzipped, then runs fresh processes, alternating plain
and gzipped, each reading the file in 64 KB chunks (as the fetcher hands a body
over) into the streaming reader, the gzipped one inflated by the fetcher's own
capped decoder first, and choosing the entries of the last two days. Each child
reports the wall and CPU time of that work and its memory high-water mark (VmHWM) minus its
resident size (VmRSS) just before it started. Prints the median and the worst.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CHUNK = 65536


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])  # kB
    raise RuntimeError(key)


def child(path: Path, gz: bool) -> None:
    from watcher.core.sitemap import SitemapReader, sitemap_entries
    from watcher.fetch.decoding import GzipFile

    before = _status("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    reader = SitemapReader("https://news.test/news-sitemap.xml", 50_000)
    sink = GzipFile(reader.feed, 50 * 1000**2, "sitemap") if gz else reader.feed
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            if not sink(chunk):
                break
    if isinstance(sink, GzipFile):
        sink.finish()
    sitemap = reader.close()
    entries = sitemap_entries(sitemap.urls, NOW - timedelta(days=2))
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "cpu_seconds": time.process_time() - cpu_started,
                      "extra_mb": (_status("VmHWM") - before) / 1024,
                      "urls": len(sitemap.urls), "entries": len(entries)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--child", type=Path)
    ap.add_argument("--gz", action="store_true")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.gz)
        return
    from tests.sitemaps import gzipped, news_sitemap

    with tempfile.TemporaryDirectory() as tmp:
        plain, packed = Path(tmp) / "news.xml", Path(tmp) / "news.xml.gz"
        body = news_sitemap(args.urls, NOW)
        plain.write_bytes(body)
        packed.write_bytes(gzipped(body))
        print(f"{args.urls} URLs: {len(body) / 1e6:.1f} MB, gzipped "
              f"{packed.stat().st_size / 1e6:.1f} MB")
        results: dict[str, list[dict[str, float]]] = {"plain": [], "gzip": []}
        for _ in range(args.runs):
            for name, path in (("plain", plain), ("gzip", packed)):
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.sitemap", "--child", str(path),
                     *(["--gz"] if name == "gzip" else [])],
                    capture_output=True, text=True, check=True)
                results[name].append(json.loads(out.stdout))
    for name, runs in results.items():
        secs = [r["seconds"] for r in runs]
        cpu = [r["cpu_seconds"] for r in runs]
        mem = [r["extra_mb"] for r in runs]
        print(f"{name:5}: parse {statistics.median(secs):.3f} s median "
              f"(worst {max(secs):.3f}; CPU {statistics.median(cpu):.3f} s median), "
              f"extra memory {statistics.median(mem):.1f} MB median "
              f"(worst {max(mem):.1f}); {runs[0]['urls']:.0f} URLs, "
              f"{runs[0]['entries']:.0f} entries of the last 2 days")


if __name__ == "__main__":
    main()
