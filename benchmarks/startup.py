"""Start-up: whole-process times of `watcher --help`, `watcher status` and a warm
`watcher run --once`, beside a bare Python start.

    python -m benchmarks.startup --runs 11
    python -m benchmarks.startup --runs 11 --feeds 100 --items 20

A loopback corpus (benchmarks.server) is served and one cold `run --once` primes the
database; then each round runs every command once, in turn (so drift of the shared
machine's speed falls on all of them), and the median of the rounds is printed.
`--importtime` also prints the slowest imports of each command (python -X importtime).
"""

from __future__ import annotations

import argparse
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

BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def slowest_imports(cmd: list[str], top: int = 8) -> list[str]:
    """The top-level imports with the largest cumulative time, as -X importtime says."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-m", "watcher", *cmd[1:]],
                         capture_output=True, text=True, check=False).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("   "):  # imported by the command, not by a module
                rows.append((int(parts[1]), name.strip()))
    return [f"{name} {us / 1000:.0f} ms" for us, name in sorted(rows, reverse=True)[:top]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--editable", action="store_true",
                    help="time the checkouts as they are (byte-compiled), not installed "
                         "as wheels (benchmarks/installed.py)")
    ap.add_argument("--compare", type=Path, metavar="BIN",
                    help="also time the `watcher` script in BIN (another checkout's venv, "
                         "e.g. the version before), in the same rounds")
    args = ap.parse_args(argv)

    spec = CorpusSpec(feeds=args.feeds, items=args.items)
    work = Path(tempfile.mkdtemp(prefix="watcher-startup-"))
    ours = watcher_bin(BIN, work / "ours", args.editable)
    theirs = watcher_bin(args.compare, work / "theirs", args.editable) if args.compare else None
    (work / "rules.yaml").write_text(RULES_YAML)
    (work / "run").mkdir()
    config = work / "run" / "watcher.yaml"
    server = CorpusServer(spec)
    try:
        write_config(config, server, feed_names(spec), concurrency=16, per_host=16,
                     fetch_timeout_s=None)
        watcher = str(ours / "watcher")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "watcher --help": [watcher, "--help"],
            "watcher status": [watcher, "status", "--config", str(config)],
            "watcher run --once (warm)": [watcher, "run", "--once", "--config", str(config)],
        }
        if theirs is not None:
            # its own config and database: each checkout keeps its validated config
            # under the config's path (one would evict the other's), and its own schema
            (work / "run-compared").mkdir()
            other_config = work / "run-compared" / "watcher.yaml"
            write_config(other_config, server, feed_names(spec), concurrency=16,
                         per_host=16, fetch_timeout_s=None)
            commands.update({f"{name} [{args.compare}]": [
                str(theirs / "watcher"), *[str(other_config) if a == str(config) else a
                                            for a in cmd[1:]]]
                for name, cmd in list(commands.items()) if name.startswith("watcher")})
        for name in [n for n in commands if n.startswith("watcher run")]:
            primed = timed(commands[name])
            print(f"primed: cold {name} {primed:.2f}s ({args.feeds} feeds x {args.items})",
                  flush=True)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
        print(f"\n{' '.join(sys.argv)}  ({args.runs} rounds, whole processes)\n")
        print("| command | median | min | max |\n|---|---|---|---|")
        for name, values in times.items():
            print(f"| `{name}` | {statistics.median(values) * 1000:.0f} ms | "
                  f"{min(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")
        if args.importtime:
            for name, cmd in commands.items():
                if name.startswith("watcher") and "[" not in name:
                    print(f"\n{name}: " + ", ".join(slowest_imports(cmd)))
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
