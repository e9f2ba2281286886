"""The console's commands as a user runs them: `watcher web` serving on loopback,
`watcher web passwd`, `watcher rules explain`."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, run_watcher
from tests.servers import wait_for
from tests.web_helpers import add_article, write_config
from watcher.settings import load_settings
from watcher.store import open_store
from watcher.web.auth import verify_password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_passwd_prints_a_hash_the_console_accepts() -> None:
    r = subprocess.run([sys.executable, "-m", "watcher", "web", "passwd", "ann", "--role",
                        "editor"], input="a long password\n", capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    found = re.search(r"ann: \{password_hash: '([^']+)', role: editor\}", r.stdout)
    assert found and verify_password("a long password", found.group(1))
    short = subprocess.run([sys.executable, "-m", "watcher", "web", "passwd", "bob"],
                           input="short\n", capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
    assert short.returncode == 2 and "at least 8" in short.stderr


def test_rules_explain_prints_the_tree(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = open_store(load_settings(config).database)
    hit = add_article(store, "e1", "News", "A new tactical missile was shown.")
    miss = add_article(store, "e2", "Weather", "Sunny.")
    store.close()
    r = run_watcher("rules", "explain", "arms", str(hit), "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert "rule 'arms' matched" in r.stdout
    assert "'tactical missile' (seen as 'tactic missil')" in r.stdout
    r = run_watcher("rules", "explain", "arms", str(miss), "--config", str(config))
    assert r.returncode == 1 and "did not match" in r.stdout and "no  " in r.stdout
    r = run_watcher("rules", "explain", "nope", str(hit), "--config", str(config))
    assert r.returncode == 2 and "no rule named 'nope'" in r.stderr


def test_watcher_web_serves_the_console_behind_its_login_link(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "web", "--config", str(config),
                             "--listen", f"127.0.0.1:{port}"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if m := re.search(r"log in once with (\S+)", line):
                url = m.group(1)
                break
        assert url and url.startswith(f"http://127.0.0.1:{port}/login?token=")
        with httpx.Client(timeout=10) as client:
            for _ in range(100):  # the URL is logged before the socket listens
                try:
                    anonymous = client.get(f"http://127.0.0.1:{port}/alerts")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert anonymous.status_code == 303
            assert client.get(f"http://127.0.0.1:{port}/api/v1/alerts").status_code == 401
            page = client.get(url, follow_redirects=True)
            assert page.status_code == 200 and "<h1>Alerts</h1>" in page.text
            schema = client.get(f"http://127.0.0.1:{port}/api/v1/openapi.json").json()
            assert "/api/v1/rules/preview" in schema["paths"]
            assert "server" not in anonymous.headers
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_daemon_serves_the_console_when_web_listen_is_set(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f"web: {{listen: '127.0.0.1:{port}', "
                                    "public_url: 'https://watcher.test'}\n")
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(config)],
                            cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        url = next(m.group(1) for line in proc.stdout
                   if (m := re.search(r"log in once with (\S+)", line)))
        with httpx.Client(timeout=10) as client:
            for _ in range(100):
                try:
                    page = client.get(url, follow_redirects=True)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert page.status_code == 200 and "<h1>Alerts</h1>" in page.text
            # WebSub's callbacks on the same server, outside the console's login and
            # Host check (hubs carry neither): the daemon answers them.
            door = f"http://127.0.0.1:{port}/websub/unknown"
            ask = {"hub.mode": "subscribe", "hub.challenge": "c"}
            # the console serves while the daemon still starts: hubs are told to come back
            r = client.get(door, params=ask, headers={"Host": "watcher.test"})
            assert r.status_code in (404, 503), r.text
            assert wait_for(lambda: client.get(door, params=ask).status_code == 404)
            r = client.post(door, content=b"<rss/>", headers={"Host": "watcher.test"})
            assert r.status_code == 404 and r.text == "unknown subscription"
            # a stranger's body is not waited for, nor read, on a callback nobody has
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                raw.sendall(b"POST /websub/unknown HTTP/1.1\r\nHost: watcher.test\r\n"
                            b"Content-Length: 90000\r\n\r\n")
                assert raw.recv(100).startswith(b"HTTP/1.1 404 ")
            assert client.get(f"http://127.0.0.1:{port}/alerts", headers={
                "Host": "evil.test"}).status_code == 421  # the console still checks Host
            assert client.get(f"http://127.0.0.1:{port}/alerts", headers={
                "Host": "watcher.test"}).status_code == 200  # public_url's name is its own
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_the_console_alone_answers_websub_callbacks_with_try_again(tmp_path: Path) -> None:
    config = write_config(tmp_path, "web: {public_url: 'https://watcher.test', "
                                    "listen: '127.0.0.1:1'}\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "web", "--config", str(config),
                             "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=10) as client:
            for _ in range(100):
                try:
                    r = client.post(f"http://127.0.0.1:{port}/websub/x", content=b"<rss/>")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            # No daemon behind a console run alone: the hub is told to try again.
            assert r.status_code == 503 and "no daemon" in r.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_rules_explain_prints_no_terminal_escapes_from_feeds(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = open_store(load_settings(config).database)
    hit = add_article(store, "e1", "News \x1b[2J\u202e", "A new tactical missile was shown.")
    store.close()
    r = run_watcher("rules", "explain", "arms", str(hit), "--config", str(config))
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\u202e" not in r.stdout
