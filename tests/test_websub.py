"""WebSub: the subscriber's decisions as tables, then a small hub on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer, Request, Response, wait_for
from watcher.core.websub import (
    Subscription,
    hub_links,
    link_header,
    needs_renewal,
    pushing,
    signature_ok,
    verify_intent,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SUB = Subscription("f", "https://hub.test/", "https://f.test/feed.xml", "cb", "s3cret",
                   "subscribing", T0)
BODY = b"<rss/>"


def sign(method: str, secret: str = "s3cret", body: bytes = BODY) -> str:
    return f"{method}=" + hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()


@pytest.mark.parametrize(("header", "ok"), [
    (sign("sha256"), True),
    (sign("sha1"), True),
    (sign("sha512"), True),
    (sign("sha256").upper().replace("SHA256=", "sha256="), True),
    (sign("sha256", secret="other"), False),
    (sign("sha256", body=b"<rss>changed</rss>"), False),
    ("md5=" + hashlib.md5(BODY).hexdigest(), False),
    ("sha256", False),
    (None, False),
])
def test_signatures(header: str | None, ok: bool) -> None:
    assert signature_ok("s3cret", header, BODY) is ok


def params(mode: str, topic: str = SUB.topic, **kw: str) -> dict[str, str]:
    return {"hub.mode": mode, "hub.topic": topic, "hub.challenge": "c-123", **kw}


def test_verification_of_intent() -> None:
    ok = verify_intent(SUB, params("subscribe", **{"hub.lease_seconds": "3600"}), T0)
    assert (ok.status, ok.body) == (200, "c-123")
    assert ok.subscription is not None and ok.subscription.state == "active"
    assert ok.subscription.lease_until == T0 + timedelta(hours=1)
    assert verify_intent(SUB, params("subscribe", topic="https://evil.test/"), T0).status == 404
    assert verify_intent(SUB, params("unsubscribe"), T0).status == 404  # we did not ask
    assert verify_intent(None, params("subscribe"), T0).status == 404
    leaving = replace(SUB, state="unsubscribing")
    bye = verify_intent(leaving, params("unsubscribe"), T0)
    assert (bye.status, bye.body, bye.subscription) == (200, "c-123", None)
    denied = verify_intent(SUB, {"hub.mode": "denied", "hub.topic": SUB.topic}, T0)
    assert denied.subscription is None and denied.changed


def test_leases_renewals_and_hub_links() -> None:
    active = replace(SUB, state="active", lease_until=T0 + timedelta(days=10))
    assert pushing(active, T0) and not pushing(SUB, T0)
    assert not pushing(active, T0 + timedelta(days=11))
    assert not needs_renewal(active, T0 + timedelta(days=8))
    assert needs_renewal(active, T0 + timedelta(days=9, hours=1))
    assert not needs_renewal(SUB, T0 + timedelta(minutes=5))
    assert needs_renewal(SUB, T0 + timedelta(hours=2))  # never verified: ask again
    assert hub_links([("alternate", "/x"), ("hub", "https://hub.test/"), ("self", "/feed")],
                     "https://f.test/rss") == ("https://hub.test/", "https://f.test/feed")
    assert hub_links([], "https://f.test/") == (None, None)
    header = ('<https://hub.test/>; rel="hub", </feed.xml>; rel=self, '
              '<https://f.test/a>; rel="alternate"; type="text/html"')
    assert link_header(header) == [("hub", "https://hub.test/"), ("self", "/feed.xml"),
                                   ("alternate", "https://f.test/a")]
    assert hub_links(link_header(header), "https://f.test/x") == (
        "https://hub.test/", "https://f.test/feed.xml")
    assert link_header(None) == [] and link_header("garbage") == []


# -- a small hub on loopback, and the daemon ----------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss(items: list[tuple[str, str]], hub: str, me: str) -> bytes:
    story = me.rsplit("/", 1)[0]
    body = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>{story}/story/{g}</link>"
                   f"<description>{t}</description></item>" for g, t in items)
    return (f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f'<channel><title>Pushed</title><atom:link rel="hub" href="{hub}"/>'
            f'<atom:link rel="self" href="{me}"/>{body}</channel></rss>').encode()


class Hub:
    """Takes (un)subscriptions, verifies intent on the callback, and pushes."""

    def __init__(self, server: LoopbackServer, lease: int) -> None:
        self.server, self.lease = server, lease
        self.requests: list[dict[str, str]] = []
        self.verified: list[tuple[str, bool]] = []  # (mode, challenge echoed)
        server.routes["/hub"] = self.subscribe

    def subscribe(self, req: Request) -> Response:
        form = dict(parse_qsl(req.body.decode()))
        self.requests.append(form)
        threading.Thread(target=self.verify, args=(form,), daemon=True).start()
        return 202, {}, b""

    def verify(self, form: dict[str, str]) -> None:
        time.sleep(0.1)  # after the 202, as hubs do
        query = urlencode({"hub.mode": form["hub.mode"], "hub.topic": form["hub.topic"],
                           "hub.challenge": "ch-" + form["hub.mode"],
                           "hub.lease_seconds": str(self.lease)})
        with urllib.request.urlopen(f"{form['hub.callback']}?{query}", timeout=5) as r:
            self.verified.append((form["hub.mode"], r.read().decode() == "ch-" + form[
                "hub.mode"]))

    def push(self, body: bytes, secret: str | None = None, method: str = "sha256",
             callback: str | None = None) -> int:
        form = self.requests[-1]
        headers = {"Content-Type": "application/rss+xml"}
        if secret is not None:
            headers["X-Hub-Signature"] = f"{method}=" + hmac.new(
                secret.encode(), body, getattr(hashlib, method)).hexdigest()
        request = urllib.request.Request(callback or form["hub.callback"], data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def test_subscribe_verify_push_renew_and_unsubscribe(tmp_path: Path) -> None:
    server = LoopbackServer()
    hub = Hub(server, lease=4)
    me, hub_url = server.url("/feed.xml"), server.url("/hub")
    server.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"},
                                  rss([("1", "A quiet day")], hub_url, me))
    port = free_port()
    cfg = {"database": "w.db", "rules": "rules.yaml",
           "feeds": [{"name": "pushed", "url": me, "allow_private": True}],
           "channels": {"file": {"type": "jsonl", "path": "alerts.jsonl"}},
           "poll": {"tick": "1s"}, "fetch": {"max_feed_bytes": "100KB", "fetch_pages": False},
           "web": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
                   "websub_lease": "4s"}}
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "missile", "any": ["tactical missile"], "notify": ["file"]}]}))
    alerts = tmp_path / "alerts.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config",
                             str(tmp_path / "watcher.yaml")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: ("subscribe", True) in hub.verified, timeout=30)
        form = hub.requests[0]
        assert (form["hub.mode"], form["hub.topic"]) == ("subscribe", me)
        secret = form["hub.secret"]
        assert len(secret) >= 32

        pushed = rss([("2", "Army shows a tactical missile")], hub_url, me)
        assert hub.push(pushed, secret="wrong") == 403  # refused before parsing
        assert hub.push(pushed) == 403  # unsigned
        assert hub.push(pushed, secret, callback=form["hub.callback"] + "x") == 404
        assert hub.push(b"<rss>" + b" " * 200_000 + b"</rss>", secret) == 413
        assert not alerts.exists()
        assert hub.push(pushed, secret, method="sha1") == 202
        assert wait_for(lambda: alerts.exists() and "tactical missile" in alerts.read_text())
        assert [json.loads(x)["title"] for x in alerts.read_text().splitlines()] == [
            "Army shows a tactical missile"]

        listed = run_watcher("feeds", "--config", str(tmp_path / "watcher.yaml"))
        assert f"websub: active at {hub_url}, lease until 20" in listed.stdout, listed.stdout

        # The hub granted 4 s: the lease is renewed before it ends.
        assert wait_for(lambda: len([f for f in hub.requests if f["hub.mode"] == "subscribe"])
                        >= 2, timeout=20)
        assert hub.requests[1]["hub.callback"] == form["hub.callback"]

        cfg["feeds"] = []
        (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: ("unsubscribe", True) in hub.verified, timeout=20)
        assert hub.push(pushed, secret) == 404  # gone with its feed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        server.close()
    assert err.count("X-Hub-Signature") == 1, err  # logged once


def test_polling_is_a_safety_net_while_pushes_come_and_takes_over_when_they_stop() -> None:
    from watcher.service.websub import WebSub

    websub = WebSub("127.0.0.1:0", "https://w.test", 86400.0, 6 * 3600.0, dict,
                    lambda: None, 1000)  # type: ignore[arg-type, return-value]
    planned = T0 + timedelta(minutes=10)
    assert websub.poll_after("f", T0, planned) == planned  # not subscribed
    websub.subs["f"] = replace(SUB, state="active", lease_until=T0 + timedelta(days=1))
    assert websub.poll_after("f", T0, planned) == T0 + timedelta(hours=6)
    websub.polled("f", 0, T0)
    assert websub.poll_after("f", T0, planned) == T0 + timedelta(hours=6)
    websub.polled("f", 2, T0)  # the safety poll found what no push brought
    assert websub.poll_after("f", T0, planned) == planned
    assert websub.poll_after("f", T0 + timedelta(days=2), planned) == planned  # lease over


def test_a_hub_named_in_the_link_header_is_subscribed_to(tmp_path: Path) -> None:
    server = LoopbackServer()
    hub = Hub(server, lease=3600)
    me = server.url("/feed.xml")
    plain = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
             b"<guid>1</guid><title>Quiet</title></item></channel></rss>")
    server.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml", "Link": (
        f'<{server.url("/hub")}>; rel="hub", <{me}>; rel="self"')}, plain)
    port = free_port()
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump({
        "database": "w.db", "rules": "rules.yaml",
        "feeds": [{"name": "linked", "url": me, "allow_private": True}],
        "fetch": {"fetch_pages": False},
        "channels": {"file": {"type": "jsonl", "path": "alerts.jsonl"}},
        "web": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}}))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "missile", "any": ["tactical missile"], "notify": ["file"]}]}))
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config",
                             str(tmp_path / "watcher.yaml")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: ("subscribe", True) in hub.verified, timeout=30)
        assert hub.requests[0]["hub.topic"] == me
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        server.close()


def test_a_callback_made_by_another_daemon_is_found_in_the_shared_store(
        tmp_path: Path) -> None:
    from watcher.service.websub import WebSub
    from watcher.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "w.db")

    class Ctx:
        def __init__(self) -> None:
            self.store = store

        @staticmethod
        def clock() -> datetime:
            return T0

    ctx = Ctx()
    websub = WebSub("127.0.0.1:0", "https://w.test", 86400.0, 3600.0, dict,
                    lambda: ctx, 1000)  # type: ignore[arg-type, return-value]
    store.save_websub(SUB)  # written by the other daemon after this one started
    assert websub._lookup("cb") == SUB
    assert websub._lookup("nope") is None
    answer = websub._verify(websub._lookup("cb"), params("subscribe"))
    assert answer == (200, "c-123")
    assert store.websub_subscriptions()[0].state == "active"
    store.close()
