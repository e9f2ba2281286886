"""SQLite against PostgreSQL, and one daemon against two sharing PostgreSQL.

    python -m benchmarks.shared_db --feeds 100 --items 20 --runs 3
    python -m benchmarks.shared_db --feeds 400 --items 5 --latency-ms 100 --runs 3

Needs PostgreSQL's server binaries (a throwaway cluster is started on 127.0.0.1, as
the tests do; or WATCHER_TEST_PG_URL names a server) and the `bench` extra.

- cold and warm `watcher run --once` cycles on the same loopback corpus, SQLite and
  PostgreSQL alternated, each cold cycle on a fresh database; medians of --runs.
- daemons: `watcher run` on a fresh PostgreSQL database, one daemon, then two on
  another fresh one; the time from the daemons' start until every expected alert is
  in the alert files (each daemon writes its own), and how many were sent twice.
  With server latency (--latency-ms) the feeds' waiting is what a second daemon shares.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import CorpusSpec, build, feed_names
from benchmarks.e2e import RULES_YAML, WATCHER, write_config
from benchmarks.e2e import watcher_once as once
from benchmarks.server import CorpusServer
from tests.pg import cluster, new_database

ROOT = Path(__file__).resolve().parent.parent


def run_dir(work: Path, tag: str, server: CorpusServer, names: list[str], database: str,
            concurrency: int) -> Path:
    d = work / tag
    d.mkdir()
    write_config(d / "watcher.yaml", server, names, concurrency=concurrency,
                 per_host=concurrency, fetch_timeout_s=None)
    text = (d / "watcher.yaml").read_text().replace("database: watcher.db",
                                                    f'database: "{database}"')
    (d / "watcher.yaml").write_text(text)
    return d


def alert_titles(dirs: list[Path]) -> list[tuple[str, str]]:
    out = []
    for d in dirs:
        path = d / "alerts.jsonl"
        if path.exists():
            for line in path.read_text().split("\n")[:-1]:  # not a line being written
                if line.strip():
                    a = json.loads(line)
                    out.append((a["rule"], a["url"] or a["title"]))
    return out


def daemons(work: Path, tag: str, server: CorpusServer, names: list[str], url: str,
            count: int, expected: int, concurrency: int, timeout_s: float) -> tuple[float, int]:
    """(seconds until every expected alert is written, alerts written twice)."""
    dirs = [run_dir(work, f"{tag}-{i}", server, names, url, concurrency) for i in range(count)]
    server.reset()
    started = time.perf_counter()
    procs = [subprocess.Popen([WATCHER, "run", "--config", str(d / "watcher.yaml")], cwd=ROOT,
                              stdout=(d / "daemon.log").open("ab"), stderr=subprocess.STDOUT)
             for d in dirs]
    try:
        while len(alert_titles(dirs)) < expected:
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"{tag}: {len(alert_titles(dirs))} of {expected} alerts")
            time.sleep(0.02)
        took = time.perf_counter() - started
        time.sleep(2)  # a copy sent late would show now
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
    titles = alert_titles(dirs)
    return took, len(titles) - len(set(titles))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="server delay per request")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--daemons-only", action="store_true",
                    help="only the one-daemon against two-daemons figure")
    args = ap.parse_args(argv)

    spec = CorpusSpec(seed=args.seed, feeds=args.feeds, items=args.items)
    build(spec)
    names = feed_names(spec)
    work = Path(tempfile.mkdtemp(prefix="watcher-shared-"))
    (work / "rules.yaml").write_text(RULES_YAML)
    server = CorpusServer(spec, args.latency_ms / 1000)
    figures: dict[str, list[float]] = {}
    print(f"corpus: {args.feeds} feeds x {args.items} items, latency {args.latency_ms:g} ms; "
          f"work folder {work}", flush=True)
    try:
        with cluster() as pg:
            dbs: dict[str, Path] = {}
            alerts = 0
            for i in range(args.runs if not args.daemons_only else 0):
                # alternated: the machine's speed drifts
                for kind in ("sqlite", "postgres"):
                    target = "watcher.db" if kind == "sqlite" else new_database(pg)
                    d = run_dir(work, f"{kind}-cold{i}", server, names, target,
                                args.concurrency)
                    r = once(d, args.timeout, server)
                    figures.setdefault(f"{kind} cold", []).append(r.process_wall_s)
                    dbs[kind] = d
                    print(f"{kind} cold {i + 1}: process {r.process_wall_s:.2f}s, cycle "
                          f"{r.stats['wall_s']:.2f}s, {r.stats['alerts_sent']} alerts",
                          flush=True)
            if args.daemons_only:  # the alerts to wait for, from one cycle
                dbs["sqlite"] = run_dir(work, "sqlite-ref", server, names, "watcher.db",
                                        args.concurrency)
                once(dbs["sqlite"], args.timeout, server)
            else:
                alerts = int(once(dbs["sqlite"], args.timeout, server).stats["alerts_sent"])
            for i in range(args.runs if not args.daemons_only else 0):
                for kind in ("sqlite", "postgres"):
                    r = once(dbs[kind], args.timeout, server)
                    figures.setdefault(f"{kind} warm", []).append(r.process_wall_s)
                    print(f"{kind} warm {i + 1}: process {r.process_wall_s:.3f}s", flush=True)
            expected = len(alert_titles([dbs["sqlite"]]))
            for i in range(args.runs):
                for count in (1, 2):
                    took, twice = daemons(work, f"d{count}-{i}", server, names,
                                          new_database(pg), count, expected,
                                          args.concurrency, args.timeout)
                    figures.setdefault(f"{count} daemon(s) to every alert", []).append(took)
                    print(f"{count} daemon(s) run {i + 1}: every one of {expected} alerts in "
                          f"{took:.2f}s, {twice} sent twice", flush=True)
                    if twice:
                        raise SystemExit(f"{twice} alerts sent twice by {count} daemons")
    finally:
        server.close()
    print(f"\n{'figure':<30} median of {args.runs} (s)   [warm re-run sent {alerts} alerts]")
    for name, values in figures.items():
        print(f"{name:<30} {statistics.median(values):8.3f}")


if __name__ == "__main__":
    main()
