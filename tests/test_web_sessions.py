"""The console's sessions live in the store: they outlive a restart, every `watcher web`
process on the database shares them, logout and a password change end them; and the
cookie is Secure behind a TLS-terminating proxy that the config trusts, never because
of a header from anyone else."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.web_helpers import NOW, make_web
from watcher.settings import load_settings
from watcher.store import open_store
from watcher.web.app import create_app
from watcher.web.auth import hash_password
from watcher.web.security import COOKIE

USERS = "web:\n  users:\n    ann: {{password_hash: '{}', role: editor}}\n"


class Process:
    """One more console on the same database and config, as another `watcher web`
    (or the same one after a restart) would be."""

    def __init__(self, folder: Path, at: timedelta = timedelta(0),
                 client: tuple[str, int] = ("testclient", 50000)) -> None:
        self.settings = load_settings(folder / "watcher.yaml")
        self.store = open_store(self.settings.database)
        app = create_app(self.settings, self.store, now=lambda: NOW + at)
        self.client = TestClient(app, base_url="http://127.0.0.1:8080", client=client)

    def logged_in(self, cookie: str) -> bool:
        self.client.cookies.set(COOKIE, cookie)
        r = self.client.get("/alerts", follow_redirects=False)
        assert r.status_code in (200, 303), r.text
        return r.status_code == 200


@pytest.fixture
def closing() -> Iterator[list[Process]]:
    made: list[Process] = []
    yield made
    for p in made:
        p.store.close()


def _login_cookie(client: TestClient, **form: str) -> str:
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.cookies[COOKIE]


def test_a_session_outlives_a_restart_and_is_shared_until_logout(
        tmp_path: Path, closing: list[Process]) -> None:
    web = make_web(tmp_path)
    try:
        cookie = _login_cookie(web.client, token=web.admin_token)
    finally:
        web.store.close()  # the first process ends
    later, beside = Process(tmp_path), Process(tmp_path)
    closing += [later, beside]
    assert later.logged_in(cookie) and beside.logged_in(cookie)
    assert not later.logged_in(cookie[:-2] + "xx")
    assert later.logged_in(cookie)
    # Logging out in one process ends the session in the other.
    page = later.client.get("/rules").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert beside.client.get("/rules").text.count(csrf) >= 1  # one CSRF token for both
    r = later.client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert not beside.logged_in(cookie)


def test_the_store_keeps_a_digest_and_sessions_expire(tmp_path: Path,
                                                      closing: list[Process]) -> None:
    web = make_web(tmp_path)
    try:
        cookie = _login_cookie(web.client, token=web.admin_token)
    finally:
        web.store.close()
    with sqlite3.connect(tmp_path / "data" / "w.db") as db:
        kept = db.execute("SELECT * FROM web_sessions").fetchall()
    assert len(kept) == 1 and not any(cookie in str(v) for v in kept[0])
    assert web.admin_token not in str(kept[0])
    soon, late = Process(tmp_path, timedelta(hours=11)), Process(tmp_path, timedelta(hours=13))
    closing += [soon, late]
    assert soon.logged_in(cookie)
    assert not late.logged_in(cookie)


def test_a_password_change_ends_the_sessions_made_with_the_old_one(
        tmp_path: Path, closing: list[Process]) -> None:
    web = make_web(tmp_path, USERS.format(hash_password("old-password")))
    try:
        cookie = _login_cookie(web.client, name="ann", password="old-password")
        assert web.client.get("/alerts").status_code == 200
        config = tmp_path / "watcher.yaml"
        text = config.read_text()
        config.write_text(text[:text.index("web:\n  users")] +
                          USERS.format(hash_password("new-password")))
        restarted = Process(tmp_path)
        closing.append(restarted)
        assert not restarted.logged_in(cookie)
        # ... and in a process still running with the old config too.
        assert web.client.get("/alerts", follow_redirects=False).status_code == 303
        fresh = _login_cookie(restarted.client, name="ann", password="new-password")
        assert restarted.logged_in(fresh)
    finally:
        web.store.close()


PROXY = "web:\n  trusted_proxies: ['10.0.0.0/8', '192.0.2.7']\n"


@pytest.mark.parametrize(("client", "proto", "secure"), [
    (("10.1.2.3", 40000), "https", True),     # a trusted proxy that terminated TLS
    (("192.0.2.7", 40000), "https", True),
    (("10.1.2.3", 40000), None, False),       # the proxy spoke plain HTTP
    (("192.0.2.8", 40000), "https", False),   # not a trusted proxy: its header is ignored
    (("203.0.113.9", 40000), "https", False),
])
def test_the_cookie_is_secure_behind_a_trusted_tls_proxy_only(
        tmp_path: Path, closing: list[Process], client: tuple[str, int], proto: str | None,
        secure: bool) -> None:
    make_web(tmp_path, PROXY).store.close()
    p = Process(tmp_path, client=client)
    closing.append(p)
    token = (tmp_path / "data" / "web-admin-token").read_text().strip()
    head = {"X-Forwarded-Proto": proto} if proto else {}
    r = p.client.get(f"/login?token={token}", headers=head, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert ("; secure" in cookie.lower()) is secure
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    # A redirect the server spells out whole (a trailing slash) keeps the browser's scheme.
    r = p.client.get("/api/v1/alerts/", follow_redirects=False,
                     headers={**head, "Authorization": f"Bearer {token}"})
    assert r.status_code == 307
    assert r.headers["location"] == ("https" if secure else "http") + \
        "://127.0.0.1:8080/api/v1/alerts"


def test_without_trusted_proxies_the_header_is_ignored(tmp_path: Path,
                                                       closing: list[Process]) -> None:
    web = make_web(tmp_path)
    try:
        r = web.client.get(f"/login?token={web.admin_token}",
                           headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
        assert r.status_code == 303 and "secure" not in r.headers["set-cookie"].lower()
    finally:
        web.store.close()


def test_a_trusted_proxy_must_be_an_address_or_network(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no IP address or network"):
        make_web(tmp_path, "web:\n  trusted_proxies: ['proxy.example']\n")
