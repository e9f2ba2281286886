"""End-to-end benchmark: the real `watcher` CLI against a synthetic corpus on loopback.

    python -m benchmarks.e2e --feeds 100 --items 20            # cold, warm, latency, naive
    python -m benchmarks.e2e --feeds 10000 --items 5 --warm-only
    python -m benchmarks.e2e --feeds 100 --items 20 --profile cold.txt   # + py-spy profile

watcher runs as a subprocess; cycle timings come from `watcher run --once --stats`, so
they leave out interpreter start-up and config loading. Memory is the sum of the RSS of
the watcher process and any children, sampled every 20 ms (and never less than the
process's own ru_maxrss). Every figure is the median of --runs runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.corpus import CorpusSpec, build, expected_alerts, feed_names
from benchmarks.server import CorpusServer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WATCHER = str(BIN / "watcher")

# The same rules as benchmarks/naive.py (RULES); only alerts-file is notified.
RULES_YAML = """\
rules:
  - name: tactical-missile
    any: ["tactical missile"]
    none: ["video game"]
    notify: [alerts-file]
  - name: korean-peninsula-weapons
    any: ["North Korea", "Pyongyang", "Kim Jong Un"]
    all: ["missile"]
    notify: [alerts-file]
  - name: missile-defence
    any: ["missile defence", "missile defense", "air defence", "air defense"]
    notify: [alerts-file]
  - name: wildfire-evacuations
    all: ["wildfire", "evacuation"]
    notify: [alerts-file]
"""


# -- running things -----------------------------------------------------------

class RssSampler:
    """Peak of the summed RSS of a process and all its descendants, and the CPU
    its descendants used (extraction workers are not reaped by the process
    itself before it reports, so its own rusage leaves them out)."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.pid = pid
        self.every_s = every_s
        self.peak_bytes = 0
        self._child_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                        if p.pid != self.pid:
                            t = p.cpu_times()
                            self._child_cpu[p.pid] = t.user + t.system
                    except psutil.NoSuchProcess:
                        continue
            except psutil.NoSuchProcess:
                return
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.every_s)

    def stop(self) -> float:
        """Peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes / 1e6

    @property
    def child_cpu_s(self) -> float:
        """CPU seconds of every descendant, as last sampled (up to `every_s` short)."""
        return sum(self._child_cpu.values())


@dataclass
class RunResult:
    stats: dict[str, Any]
    peak_mb: float
    process_wall_s: float
    server: dict[str, int] = field(default_factory=dict)


def run_cycle(cmd: list[str], stats_path: Path, timeout_s: float, log: Path,
              server: CorpusServer | None = None) -> RunResult:
    """Run one measured command to completion; its own stats JSON gives the cycle figures."""
    if server:
        server.reset()
    stats_path.unlink(missing_ok=True)
    started = time.perf_counter()
    with log.open("ab") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=err, stderr=err)
        sampler = RssSampler(proc.pid)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            sampler.stop()
            raise TimeoutError(f"{cmd[0]} exceeded {timeout_s:.0f}s") from None
    peak = sampler.stop()
    wall = time.perf_counter() - started
    if not stats_path.exists():
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} without stats; see {log}")
    stats = json.loads(stats_path.read_text())
    peak = max(peak, stats.get("max_rss_kb", 0) / 1e3)
    # The cycle's own CPU figure counts the main process (and reaped children);
    # add the extraction workers, sampled from outside.
    stats["cpu_main_s"] = stats["cpu_s"]
    stats["cpu_workers_s"] = sampler.child_cpu_s
    stats["cpu_s"] = stats["cpu_main_s"] + stats["cpu_workers_s"]
    return RunResult(stats, peak, wall, server.stats()["counts"] if server else {})


def write_config(path: Path, server: CorpusServer, names: list[str], *,
                 concurrency: int, per_host: int, fetch_timeout_s: float | None,
                 stories: bool = True) -> None:
    """A watcher config for the corpus. Paths are relative to the config's folder.

    One config serves `run --once` (which ignores the schedule) and the daemon, which
    polls every feed every second: the next poll time stored by a cycle then suits it.

    Every feed is on 127.0.0.1, so `allow_private` is needed, and one host would make
    `per_host` (default 2) cap the whole run; a real deployment spreads 100 feeds over
    many hosts, so per_host is raised to match (see --per-host).
    """
    every = "interval: 1s, min_interval: 1s, adaptive: false"
    lines = ["database: watcher.db", "rules: ../rules.yaml", "feeds:"]
    lines += [f'  - {{name: {n}, url: "{server.feed_url(n)}", {every}, allow_private: true}}'
              for n in names]
    lines += ["channels:", "  alerts-file: {type: jsonl, path: alerts.jsonl}",
              f"poll: {{tick: 1s, concurrency: {concurrency}, per_host: {per_host}}}",
              "delivery: {tick: 1s}"]
    if fetch_timeout_s:
        lines.append(f"fetch: {{timeout: {fetch_timeout_s:g}s}}")
    if not stories:
        lines.append("stories: {enabled: false}")
    path.write_text("\n".join(lines) + "\n")


def watcher_once(run_dir: Path, timeout_s: float, server: CorpusServer,
                 prefix: list[str] | None = None) -> RunResult:
    cmd = [*(prefix or []), WATCHER, "run", "--once", "--config", str(run_dir / "watcher.yaml"),
           "--stats", str(run_dir / "stats.json")]
    return run_cycle(cmd, run_dir / "stats.json", timeout_s, run_dir / "watcher.log", server)


def count_lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


# -- latency --------------------------------------------------------------------

def measure_latency(run_dir: Path, server: CorpusServer, names: list[str], runs: int,
                    seed: int, timeout_s: float) -> tuple[list[float], list[float], float]:
    """(poll-to-alert, publish-to-alert, peak MB) for `runs` new items, daemon mode.

    The daemon starts on the warm database of a finished cycle, polls every feed
    every second, and each new item goes into one feed at a random phase of its
    tick. poll-to-alert counts from the server's answer that first carried the item.
    """
    alerts = run_dir / "alerts.jsonl"
    offset = alerts.stat().st_size if alerts.exists() else 0
    log = (run_dir / "daemon.log").open("ab")
    proc = subprocess.Popen([WATCHER, "run", "--config", str(run_dir / "watcher.yaml")],
                            cwd=ROOT, stdout=log, stderr=log)
    sampler = RssSampler(proc.pid)
    rng = random.Random(seed)
    poll_to_alert: list[float] = []
    publish_to_alert: list[float] = []
    try:
        # Steady state: every feed polled at least twice since the daemon started.
        server.reset()
        deadline = time.time() + timeout_s
        while server.stats()["counts"].get("feed_requests", 0) < 2 * len(names):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"daemon never reached steady polling; see {run_dir}")
            time.sleep(0.2)
        for _ in range(runs):
            time.sleep(rng.random() * 1.5)  # a random phase against the 1 s tick
            feed = rng.choice(names)
            rec = server.publish(feed)
            seen = _wait_for_line(alerts, rec["title"], offset, timeout_s)
            offset = alerts.stat().st_size
            served = server.stats()["published"][feed]["served_at"]
            poll_to_alert.append(seen - served)
            publish_to_alert.append(seen - rec["published_at"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return poll_to_alert, publish_to_alert, sampler.stop()


def _wait_for_line(path: Path, needle: str, offset: int, timeout_s: float) -> float:
    """time.time() when a line containing `needle` appears past `offset` (2 ms polling)."""
    deadline = time.time() + timeout_s
    key = json.dumps(needle)[1:-1]
    while time.time() < deadline:
        if path.exists() and path.stat().st_size > offset:
            with path.open("rb") as fh:
                fh.seek(offset)
                if key.encode() in fh.read():
                    return time.time()
        time.sleep(0.002)
    raise TimeoutError(f"no alert for {needle!r} within {timeout_s:.0f}s")


# -- profile ----------------------------------------------------------------------

STAGES = (  # first match wins, checked leaf-side first within a stack
    ("extract (trafilatura)", ("extract_page",)),
    ("parse feeds (feedparser/json)", ("parse_feed",)),
    ("store (sqlite)", ("watcher/store/",)),
    ("match rules", ("watcher/rules/",)),
    ("deliver", ("watcher/delivery/",)),
    ("http (ours, httpx, httpcore, h11, gzip)", ("watcher/fetch/",
                                                 "httpx/", "httpcore/", "anyio/", "h11/")),
    ("extraction hand-off (worker sockets)", ("watcher/service/workers.py",)),
    ("asyncio loop, scheduling, other", ("",)),
)


# Leaf frames of threads blocked waiting (a thread-pool worker with no work, the
# process pool's manager in select): py-spy cannot always tell these from work.
WAITS = ("_worker (concurrent/futures/thread.py:81)", "select (selectors.py",
         "_PollLikeSelector.select (selectors.py", "Condition.wait (threading.py")


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def _short(frame: str) -> str:
    # "func (/long/path/site-packages/pkg/mod.py:12)" -> "func (pkg/mod.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


def summarise_profile(raw: Path, top: int = 10) -> str:
    """Markdown: stage shares and top hotspots of the cycle, from py-spy raw output."""
    samples: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = _frames(stack)
        joined = stack
        # Keep the cycle only: the event loop (asyncio.run) and the worker threads that
        # asyncio.to_thread uses; start-up (imports, config, Daemon()) is left out.
        if any(w in frames[-1] for w in WAITS):
            continue
        if "runners.py" in joined or "futures/thread.py" in joined \
                or "futures/process.py" in joined:
            samples.append((frames, int(n)))
    total = sum(n for _, n in samples) or 1
    stages: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in samples:
        joined = ";".join(frames)
        for stage, marks in STAGES:
            if any(m in joined for m in marks):
                stages[stage] += n
                break
        leaf[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            if "watcher/cli/" in f:  # the main thread's entry: the whole event loop
                continue
            if "watcher/" in f or any(k in f for k in ("trafilatura/", "feedparser/",
                                                        "httpx/", "httpcore/", "lxml")):
                inclusive[f] += n
    out = [f"{total} samples of the cycle (py-spy, every thread of the main process, "
           "waits excluded).", "",
           "| stage | share |", "|---|---|"]
    out += [f"| {s} | {n / total:.0%} |" for s, n in stages.most_common()]
    out += ["", f"Top {top} by own time (the frame on top of the stack):", "",
            "| # | function | own |", "|---|---|---|"]
    out += [f"| {i} | `{f}` | {n / total:.1%} |"
            for i, (f, n) in enumerate(leaf.most_common(top), 1)]
    out += ["", f"Top {top} watcher and library functions by inclusive time:", "",
            "| # | function | inclusive |", "|---|---|---|"]
    out += [f"| {i} | `{f}` | {n / total:.0%} |"
            for i, (f, n) in enumerate(inclusive.most_common(top), 1)]
    return "\n".join(out)


# -- the report -------------------------------------------------------------------

def _per_page_ms(stats: dict[str, Any]) -> float:
    return 1e3 * stats.get("extract_cpu_s", 0.0) / max(stats.get("extract_pages", 0), 1)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def verdict(ok: bool | None) -> str:
    return "info" if ok is None else ("PASS" if ok else "FAIL")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="watcher end-to-end benchmark (loopback only)")
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is shown")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--target-share", type=float, default=0.1,
                    help="share of items carrying the target phrase")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="server delay per request")
    ap.add_argument("--concurrency", type=int, default=16, help="poll.concurrency")
    ap.add_argument("--per-host", type=int, default=16,
                    help="poll.per_host (every feed shares 127.0.0.1; see write_config)")
    ap.add_argument("--fetch-timeout", type=float, metavar="SECONDS",
                    help="fetch.timeout (default: watcher's, 30 s). watcher's deadline also "
                         "counts time queued for a connection slot, so big runs need more")
    ap.add_argument("--warm-only", action="store_true",
                    help="items without pages; one priming cycle, then warm cycles only")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    ap.add_argument("--no-latency", action="store_true", help="skip the daemon latency runs")
    ap.add_argument("--no-stories", action="store_true",
                    help="near-duplicate clustering off, to measure what it costs")
    ap.add_argument("--profile", type=Path, metavar="PATH",
                    help="also run one cold (--warm-only: warm) cycle under py-spy; raw "
                         "stacks to PATH, summary to PATH with .md")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per watcher run")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)

    spec = CorpusSpec(seed=args.seed, feeds=args.feeds, items=args.items,
                      target_share=args.target_share, pages=not args.warm_only)
    names = feed_names(spec)
    expected = expected_alerts(build(spec))
    work = Path(tempfile.mkdtemp(prefix="watcher-bench-"))
    (work / "rules.yaml").write_text(RULES_YAML)
    rows: list[tuple[str, str, str, str]] = []  # figure, value, target, verdict
    t0 = time.perf_counter()
    print(f"corpus: {args.feeds} feeds x {args.items} items, seed {args.seed}; "
          f"work folder {work}", flush=True)
    server = CorpusServer(spec, args.latency_ms / 1000)
    try:
        print(f"server: {server.base}, {server.info['resources']} resources, "
              f"{server.info['bytes'] / 1e6:.0f} MB rendered "
              f"({time.perf_counter() - t0:.1f}s)", flush=True)

        def new_run_dir(tag: str) -> Path:
            d = work / tag
            d.mkdir()
            write_config(d / "watcher.yaml", server, names, concurrency=args.concurrency,
                         per_host=args.per_host, fetch_timeout_s=args.fetch_timeout,
                         stories=not args.no_stories)
            return d

        # -- the naive baseline: same corpus, fresh database each run
        naive: list[dict[str, Any]] = []
        with_naive = not args.warm_only and not args.no_naive
        if with_naive:
            (work / "feeds.txt").write_text("\n".join(server.feed_url(n) for n in names))

        def naive_run(i: int) -> None:
            d = work / f"naive{i}"
            d.mkdir()
            cmd = [sys.executable, "-m", "benchmarks.naive", "--feeds", str(work / "feeds.txt"),
                   "--db", str(d / "naive.db"), "--out", str(d / "alerts.jsonl"),
                   "--stats", str(d / "stats.json")]
            r = run_cycle(cmd, d / "stats.json", args.timeout, d / "naive.log", server)
            naive.append(r.stats)
            print(f"naive {i + 1}: wall {r.stats['wall_s']:.2f}s cpu {r.stats['cpu_s']:.2f}s, "
                  f"{r.stats['articles']} articles, {r.stats['alerts']} alerts; "
                  f"{r.stats['wall_s'] / cold[i].stats['wall_s']:.2f}x cold {i + 1}'s wall",
                  flush=True)

        # -- cold (or priming) cycles, each followed by a naive run: the machine's
        # speed drifts over minutes, and a pair run back to back sees the same speed.
        cold: list[RunResult] = []
        n_cold = 1 if args.warm_only else args.runs
        for i in range(n_cold):
            d = new_run_dir(f"cold{i}")
            r = watcher_once(d, args.timeout, server)
            r.stats["alerts_in_file"] = count_lines(d / "alerts.jsonl")
            cold.append(r)
            s = r.stats
            print(f"{'prime' if args.warm_only else 'cold'} {i + 1}: wall {s['wall_s']:.2f}s "
                  f"cpu {s['cpu_s']:.2f}s (main {s['cpu_main_s']:.2f}s + workers "
                  f"{s['cpu_workers_s']:.2f}s, of which inside extraction "
                  f"{s.get('extract_cpu_s', 0):.2f}s for {s.get('extract_pages', 0)} pages), "
                  f"{s['new_articles']} articles, "
                  f"{s['matches']} matches, "
                  f"{s['alerts_sent']} alerts (expected tactical-missile: {expected}), "
                  f"{s['feeds_failed']} feeds failed, peak {r.peak_mb:.0f} MB, "
                  f"process {r.process_wall_s:.1f}s", flush=True)
            if with_naive:
                naive_run(i)
        warm_dir = work / f"cold{n_cold - 1}"

        # -- warm cycles: nothing changed since the last cold cycle
        warm: list[RunResult] = []
        for i in range(args.runs):
            r = watcher_once(warm_dir, args.timeout, server)
            warm.append(r)
            c = r.server
            print(f"warm {i + 1}: wall {r.stats['wall_s']:.3f}s cpu {r.stats['cpu_s']:.3f}s, "
                  f"{c.get('feed_304', 0)}/{c.get('feed_requests', 0)} feeds 304, "
                  f"{c.get('feed_conditional', 0)} conditional, peak {r.peak_mb:.0f} MB",
                  flush=True)

        # -- publish-to-alert latency, daemon mode
        p2a: list[float] = []
        t2a: list[float] = []
        daemon_mb = float("nan")
        if not args.warm_only and not args.no_latency:
            p2a, t2a, daemon_mb = measure_latency(warm_dir, server, names, args.runs,
                                                  args.seed, timeout_s=60)
            print("latency: poll-to-alert " + ", ".join(f"{x:.3f}" for x in p2a)
                  + "; publish-to-alert " + ", ".join(f"{x:.3f}" for x in t2a), flush=True)

        # -- profile of one more cold cycle (with --warm-only: one more warm cycle)
        if args.profile:
            d = warm_dir if args.warm_only else new_run_dir("profile")
            spy = [str(BIN / "py-spy"), "record", "-r", "100", "--format", "raw",
                   "-o", str(args.profile), "--"]
            watcher_once(d, args.timeout, server, prefix=spy)
            summary = summarise_profile(args.profile)
            args.profile.with_suffix(".md").write_text(summary + "\n")
            print(f"\nprofile of a {'warm' if args.warm_only else 'cold'} cycle "
                  f"(raw stacks: {args.profile}):\n\n{summary}\n")

        # -- the table
        scale_10k = args.feeds >= 10_000
        if not args.warm_only:
            cw = med([r.stats["wall_s"] for r in cold])
            rows.append((f"Cold {args.feeds}x{args.items}: wall", f"{cw:.2f} s",
                         "<= 5 s", verdict(cw <= 5 if (args.feeds, args.items) == (100, 20)
                                           else None)))
            rows.append(("Cold: CPU, all processes",
                         f"{med([r.stats['cpu_s'] for r in cold]):.2f} s", "", "info"))
            rows.append(("Cold: CPU, main process / extraction workers",
                         f"{med([r.stats['cpu_main_s'] for r in cold]):.2f} s / "
                         f"{med([r.stats['cpu_workers_s'] for r in cold]):.2f} s", "", "info"))
            rows.append(("Cold: CPU inside extraction, per page in a worker",
                         f"{med([_per_page_ms(r.stats) for r in cold]):.2f} ms", "", "info"))
            rows.append(("Cold: articles per second",
                         f"{med([r.stats['new_articles'] / r.stats['wall_s'] for r in cold]):.0f}",
                         "", "info"))
            if naive:
                nw = med([s["wall_s"] for s in naive])
                rows.append(("Naive baseline: wall", f"{nw:.2f} s", "", "info"))
                # Each naive run against the cold run just before it, then the median.
                ratio = med([n["wall_s"] / c.stats["wall_s"] for n, c in zip(naive, cold,
                                                                             strict=True)])
                rows.append(("Cold: watcher / naive wall (median of back-to-back pairs)",
                             f"{1 / ratio:.2f} ({ratio:.2f}x faster)",
                             "<= 0.33 (>= 3x faster)", verdict(ratio >= 3)))
        else:
            s = cold[0].stats
            rows.append((f"Priming cycle {args.feeds}x{args.items} (no pages): wall",
                         f"{s['wall_s']:.1f} s", "", "info"))
        ww = med([r.stats["wall_s"] for r in warm])
        warm_target = 20.0 if scale_10k else 0.3
        rows.append((f"Warm {args.feeds} feeds: wall", f"{ww:.3f} s", f"<= {warm_target:g} s",
                     verdict(ww <= warm_target if args.feeds in (100, 10_000) else None)))
        rows.append(("Warm: CPU", f"{med([r.stats['cpu_s'] for r in warm]):.3f} s", "", "info"))
        req = sum(r.server.get("feed_requests", 0) for r in warm) or 1
        share304 = sum(r.server.get("feed_304", 0) for r in warm) / req
        conditional = sum(r.server.get("feed_conditional", 0) for r in warm) / req
        rows.append(("Warm: share of 304s", f"{share304:.1%}", "", "info"))
        rows.append(("Warm: conditional requests", f"{conditional:.1%}", "100%",
                     verdict(conditional == 1.0)))
        if p2a:
            rows.append(("Poll-to-alert (daemon)", f"{med(p2a):.3f} s", "<= 1 s",
                         verdict(med(p2a) <= 1)))
            rows.append(("Publish-to-alert (tick 1s, interval 1s)", f"{med(t2a):.3f} s", "",
                         "info"))
        peak = max(r.peak_mb for r in [*cold, *warm])
        rows.append((f"Peak RSS, all watcher processes ({args.feeds} feeds, any cycle)",
                     f"{peak:.0f} MB", "<= 150 MB at 10,000 feeds",
                     verdict(peak <= 150 if scale_10k else None)))
        rows.append(("Peak RSS: " + ("priming" if args.warm_only else "cold") + " / warm cycles",
                     f"{max(r.peak_mb for r in cold):.0f} / {max(r.peak_mb for r in warm):.0f} MB",
                     "", "info"))
        if p2a:
            rows.append(("Peak RSS, daemon during latency runs", f"{daemon_mb:.0f} MB", "",
                         "info"))
        print(f"\n{' '.join(sys.argv)}  (runs: {args.runs}, total "
              f"{time.perf_counter() - t0:.0f}s)\n")
        print("| figure | median | target | |\n|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        server.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
