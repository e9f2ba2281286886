"""A receiver that answers 503 for a while: nothing is lost, retries follow the schedule."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.delivery_helpers import T0, Clock, add_match, statuses, store_at
from tests.servers import LoopbackServer, Request, Response, wait_for
from tests.test_e2e import write_config
from watcher.delivery.channels import load_templates
from watcher.delivery.channels.webhook import WebhookChannel
from watcher.delivery.dispatch import Dispatcher


class FlakyReceiver(LoopbackServer):
    """Answers `down_for` POSTs with 503 (and an optional Retry-After), then 200."""

    def __init__(self, down_for: int, retry_after: str | None = None) -> None:
        self.down_for = down_for
        self.retry_after = retry_after
        self.answers: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        super().__init__()

    def respond(self, req: Request) -> Response:
        with self.lock:
            posts = len(self.answers)
            status = 503 if posts < self.down_for else 200
            self.answers.append((req.headers.get("webhook-id", ""), status))
        headers = {"Retry-After": self.retry_after} if status == 503 and self.retry_after \
            else {}
        return status, headers, b"busy" if status == 503 else b"ok"


@pytest.fixture
def flaky() -> Iterator[FlakyReceiver]:
    server = FlakyReceiver(down_for=4)
    yield server
    server.close()


_LOOP = asyncio.new_event_loop()  # one loop: the channels' HTTP clients live on it


def run_pass(d: Dispatcher) -> None:
    _LOOP.run_until_complete(d.dispatch_due())


def close(hook: WebhookChannel) -> None:
    _LOOP.run_until_complete(hook.aclose())


def test_retries_follow_the_configured_schedule_and_nothing_is_lost(
        tmp_path: Path, flaky: FlakyReceiver) -> None:
    store, clock = store_at(tmp_path), Clock()
    hook = WebhookChannel("hook", flaky.url("/hook"), templates=load_templates("hook", None))
    steps = (2.0, 4.0, 8.0)
    d = Dispatcher(store, {"hook": hook}, clock, backoff=steps, max_age_s=3600)
    add_match(store, 1, clock.now)
    add_match(store, 2, clock.now)

    for attempt, step in enumerate(steps[:2], start=1):
        run_pass(d)
        rows = store.deliveries()
        assert {r.status for r in rows} == {"retrying"}
        assert {r.attempts for r in rows} == {attempt}
        for r in rows:
            assert r.last_attempt_at is not None and r.last_error is not None
            wait = (r.next_attempt_at - r.last_attempt_at).total_seconds()
            assert 0.8 * step <= wait <= 1.2 * step, (attempt, wait)
            assert "webhook answered 503; retry at" in r.last_error
        # Not due yet: a pass now sends nothing.
        clock.advance(0.7 * step)
        before = len(flaky.answers)
        run_pass(d)
        assert len(flaky.answers) == before
        clock.now = max(r.next_attempt_at for r in rows)

    run_pass(d)
    close(hook)
    assert statuses(store) == {"sent": 2}
    assert {r.attempts for r in store.deliveries()} == {3}
    ids = {r.id for r in store.deliveries()}
    assert {i for i, status in flaky.answers if status == 200} == ids
    assert Counter(i for i, _ in flaky.answers) == {i: 3 for i in ids}  # same id each time


def test_retry_after_longer_than_the_step_is_honoured(tmp_path: Path) -> None:
    server = FlakyReceiver(down_for=1, retry_after="90")
    try:
        store, clock = store_at(tmp_path), Clock()
        hook = WebhookChannel("hook", server.url("/hook"),
                              templates=load_templates("hook", None))
        d = Dispatcher(store, {"hook": hook}, clock, backoff=(1.0,))
        add_match(store, 1, clock.now)
        run_pass(d)
        (row,) = store.deliveries()
        assert row.next_attempt_at >= T0 + timedelta(seconds=90)
        clock.advance(60)
        run_pass(d)
        assert len(server.answers) == 1
        clock.advance(31)
        run_pass(d)
        close(hook)
        assert statuses(store) == {"sent": 1}
    finally:
        server.close()


def test_outage_longer_than_max_age_ends_dead(tmp_path: Path) -> None:
    server = FlakyReceiver(down_for=100)
    try:
        store, clock = store_at(tmp_path), Clock()
        hook = WebhookChannel("hook", server.url("/hook"),
                              templates=load_templates("hook", None))
        d = Dispatcher(store, {"hook": hook}, clock, backoff=(2.0, 4.0), max_age_s=10)
        add_match(store, 1, clock.now)
        for _ in range(10):
            run_pass(d)
            clock.advance(5)
        close(hook)
        (row,) = store.deliveries()
        assert row.status == "dead" and row.attempts == 3  # at 0 s, ~2 s, ~6 s
    finally:
        server.close()


def test_daemon_rides_out_an_outage_with_configured_backoff(
        tmp_path: Path, seed_server: LoopbackServer) -> None:
    server = FlakyReceiver(down_for=5)
    try:
        cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"),
                           server.url("/hook"))
        data = yaml.safe_load(cfg.read_text())
        data["delivery"] = {"tick": "100ms", "backoff": ["200ms", "400ms", "800ms"]}
        cfg.write_text(yaml.safe_dump(data))
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        db = tmp_path / "state" / "watcher.db"

        def hook_sent() -> bool:
            try:
                with sqlite3.connect(db) as conn:
                    rows = conn.execute("SELECT status FROM deliveries WHERE channel = 'hook'"
                                        ).fetchall()
            except sqlite3.Error:
                return False
            return len(rows) == 2 and {s for (s,) in rows} == {"sent"}

        try:
            done = wait_for(hook_sent, timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert done, err[-3000:]
        assert "webhook answered 503; retry at" in err
        with sqlite3.connect(db) as conn:
            attempts = [a for (a,) in conn.execute(
                "SELECT attempts FROM deliveries WHERE channel = 'hook'")]
        assert sum(attempts) == len(server.answers) == 7  # 5 refused + 2 accepted
        assert len({i for i, s in server.answers if s == 200}) == 2
    finally:
        server.close()
