"""Whole processes side by side: `watcher run --once` against rss2email's `r2e run`.

    python -m benchmarks.vs_rss2email --feeds 100 --items 20 --runs 5

Both read the same loopback corpus (benchmarks.server) in the same run. rss2email
(>= 3.14, the `bench` extra) delivers every entry to a maildir and fetches no pages;
watcher fetches every entry's page, extracts it, stores, matches and delivers alerts.

- cold: watcher on a fresh database; rss2email with a fresh config and data file.
- warm: the same command again, nothing changed on the server (both send conditional
  requests and get 304s).

Each figure is a whole process, start-up included, timed from outside. Pairs are
alternated (watcher first in even pairs, rss2email first in odd ones) so drift of the
shared machine's speed falls on both; medians and each pair's ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.corpus import CorpusSpec, feed_names
from benchmarks.e2e import RULES_YAML, write_config
from benchmarks.installed import watcher_bin
from benchmarks.server import CorpusServer

BIN = Path(sys.executable).parent


def r2e_config(path: Path, maildir: Path, server: CorpusServer, names: list[str]) -> None:
    lines = ["[DEFAULT]", "to = bench@example.invalid", "from = r2e@example.invalid",
             "email-protocol = maildir", f"maildir-path = {maildir}",
             "maildir-mailbox = INBOX", ""]
    for name in names:
        lines += [f"[feed.{name}]", f"url = {server.feed_url(name)}", ""]
    path.write_text("\n".join(lines))


def timed(cmd: list[str], log: Path, timeout_s: float) -> float:
    started = time.perf_counter()
    with log.open("ab") as out:
        subprocess.run(cmd, stdout=out, stderr=out, timeout=timeout_s, check=False)
    return time.perf_counter() - started


class Side:
    """One tool: a fresh state for a cold run, the same state again for a warm one."""

    def __init__(self, name: str, work: Path, prepare: Callable[[Path], list[str]]) -> None:
        self.name, self.work, self.prepare = name, work, prepare
        self.cold: list[float] = []
        self.warm: list[float] = []
        self.state: Path | None = None
        self.cmd: list[str] = []

    def run_cold(self, i: int, timeout_s: float) -> None:
        self.state = self.work / f"{self.name}-{i}"
        self.state.mkdir()
        self.cmd = self.prepare(self.state)
        self.cold.append(timed(self.cmd, self.state / "log", timeout_s))

    def run_warm(self, timeout_s: float) -> None:
        assert self.state is not None
        self.warm.append(timed(self.cmd, self.state / "log", timeout_s))


def count_maildir(state: Path) -> int:
    return sum(1 for p in (state / "maildir").rglob("*") if p.is_file()
               and p.parent.name in ("new", "cur"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5, help="pairs per figure")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--editable", action="store_true",
                    help="time the checkout as it is (byte-compiled), not installed as a "
                         "wheel (benchmarks/installed.py)")
    args = ap.parse_args(argv)

    spec = CorpusSpec(seed=args.seed, feeds=args.feeds, items=args.items)
    names = feed_names(spec)
    work = Path(tempfile.mkdtemp(prefix="watcher-vs-r2e-"))
    installed_bin = watcher_bin(BIN, work / "venv", args.editable)
    (work / "rules.yaml").write_text(RULES_YAML)
    server = CorpusServer(spec)
    try:
        def watcher_state(state: Path) -> list[str]:
            write_config(state / "watcher.yaml", server, names, concurrency=16, per_host=16,
                         fetch_timeout_s=None)
            return [str(installed_bin / "watcher"), "run", "--once", "--config",
                    str(state / "watcher.yaml"), "--stats", str(state / "stats.json")]

        def r2e_state(state: Path) -> list[str]:
            (state / "maildir").mkdir()  # rss2email creates the mailbox, not its parent
            r2e_config(state / "r2e.cfg", state / "maildir", server, names)
            return [str(BIN / "r2e"), "-c", str(state / "r2e.cfg"), "-d",
                    str(state / "r2e.json"), "run"]

        watcher = Side("watcher", work, watcher_state)
        r2e = Side("r2e", work, r2e_state)
        for i in range(args.runs):
            pair = (watcher, r2e) if i % 2 == 0 else (r2e, watcher)
            for side in pair:
                side.run_cold(i, args.timeout)
            for side in pair:
                side.run_warm(args.timeout)
            assert watcher.state is not None and r2e.state is not None
            stats = json.loads((watcher.state / "stats.json").read_text())
            print(f"pair {i + 1} ({pair[0].name} first): cold watcher {watcher.cold[-1]:.2f}s "
                  f"r2e {r2e.cold[-1]:.2f}s; warm watcher {watcher.warm[-1]:.3f}s "
                  f"r2e {r2e.warm[-1]:.3f}s; watcher articles {stats['new_articles']} "
                  f"(warm cycle), r2e messages {count_maildir(r2e.state)}", flush=True)

        print(f"\n{' '.join(sys.argv)}  ({args.runs} alternated pairs, whole processes)\n")
        print("| figure | watcher | rss2email | watcher / rss2email (median of pairs) |")
        print("|---|---|---|---|")
        for label, ours, theirs in (("cold", watcher.cold, r2e.cold),
                                    ("warm", watcher.warm, r2e.warm)):
            ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
            print(f"| {label} | {statistics.median(ours):.3f} s "
                  f"(min {min(ours):.3f}, max {max(ours):.3f}) | "
                  f"{statistics.median(theirs):.3f} s (min {min(theirs):.3f}, "
                  f"max {max(theirs):.3f}) | {ratio:.2f} |")
    finally:
        server.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
