"""Warm whole processes, wall and CPU: `watcher run --once` beside rss2email's `r2e run`
(and another checkout's watcher, with --compare), on the same loopback corpus.

    python -m benchmarks.warm_pairs --runs 9
    python -m benchmarks.warm_pairs --runs 9 --compare /work/main/.venv/bin

Each side runs once cold (its database or data file filled), then every round runs each
command once, the order reversed every other round. CPU is user + sys of the process
and its children (rusage), steadier than wall time on a shared machine; the ratios are
medians of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import CorpusSpec, feed_names
from benchmarks.e2e import RULES_YAML, write_config
from benchmarks.installed import watcher_bin
from benchmarks.server import CorpusServer
from benchmarks.vs_rss2email import r2e_config

BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--editable", action="store_true",
                    help="time the checkouts as they are (byte-compiled), not installed "
                         "as wheels (benchmarks/installed.py)")
    ap.add_argument("--compare", type=Path, metavar="BIN",
                    help="also time the `watcher` script in BIN, on its own database")
    args = ap.parse_args(argv)

    spec = CorpusSpec(feeds=args.feeds, items=args.items)
    names = feed_names(spec)
    work = Path(tempfile.mkdtemp(prefix="watcher-warm-pairs-"))
    (work / "rules.yaml").write_text(RULES_YAML)
    server = CorpusServer(spec)
    try:
        commands: dict[str, list[str]] = {}
        for label, checkout in (("watcher", BIN), (f"watcher [{args.compare}]", args.compare)):
            if checkout is None:
                continue
            bin_dir = watcher_bin(checkout, work / f"venv{len(commands)}", args.editable)
            run_dir = work / f"run{len(commands)}"
            run_dir.mkdir()
            write_config(run_dir / "watcher.yaml", server, names, concurrency=16,
                         per_host=16, fetch_timeout_s=None)
            commands[label] = [str(bin_dir / "watcher"), "run", "--once", "--config",
                               str(run_dir / "watcher.yaml")]
        (work / "maildir").mkdir()
        r2e_config(work / "r2e.cfg", work / "maildir", server, names)
        commands["r2e"] = [str(BIN / "r2e"), "-c", str(work / "r2e.cfg"), "-d",
                           str(work / "r2e.json"), "run"]
        for cmd in commands.values():
            timed(cmd)  # cold: what the warm runs find
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for i in range(args.runs):
            for name in (list(commands) if i % 2 == 0 else list(reversed(commands))):
                results[name].append(timed(commands[name]))
        print(f"\n{' '.join(sys.argv)}  ({args.runs} rounds, whole processes, warm)\n")
        print("| command | wall, median (min) | CPU, median (min) | / r2e wall | / r2e CPU |")
        print("|---|---|---|---|---|")
        theirs = results["r2e"]
        for name, ours in results.items():
            walls, cpus = [w for w, _ in ours], [c for _, c in ours]
            ratio_w = statistics.median(a[0] / b[0] for a, b in zip(ours, theirs, strict=True))
            ratio_c = statistics.median(a[1] / b[1] for a, b in zip(ours, theirs, strict=True))
            print(f"| `{name}` | {statistics.median(walls) * 1000:.0f} ms "
                  f"({min(walls) * 1000:.0f}) | {statistics.median(cpus) * 1000:.0f} ms "
                  f"({min(cpus) * 1000:.0f}) | {ratio_w:.2f} | {ratio_c:.2f} |")
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
