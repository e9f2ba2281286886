"""Who may use the web console: users with password hashes and API tokens from the
config, or, when none is configured, an admin token made on first start and kept
in the data folder (mode 0600); sessions (kept in the store, as a digest of their
token), CSRF tokens and login throttling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from watcher.core.errors import ConfigError
from watcher.core.records import WebSession
from watcher.settings.model import WebConfig
from watcher.store.protocol import SessionStore

log = logging.getLogger("watcher.web")

TOKEN_FILE = "web-admin-token"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # OWASP's minimum for scrypt
SESSION_S = 12 * 3600.0


def hash_password(password: str) -> str:
    """scrypt$n,r,p$salt$hash (hashlib.scrypt; the parameters travel with the hash)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    params = ",".join(str(_SCRYPT[k]) for k in ("n", "r", "p"))
    return "$".join(("scrypt", params, base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()))


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, params, salt, digest = stored.split("$")
        n, r, p = (int(x) for x in params.split(","))
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                             n=n, r=r, p=p, dklen=len(expected), maxmem=2**26)
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # "viewer" | "editor"

    @property
    def can_edit(self) -> bool:
        return self.role == "editor"


def admin_token(data_dir: Path) -> str:
    """The admin token kept in the data folder, made (mode 0600) when missing."""
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"web: cannot read the admin token {path}: {exc}") from None
    token = secrets.token_urlsafe(32)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"web: cannot write the admin token {path}: {exc}") from None
    return token


@dataclass
class Session:
    principal: Principal
    csrf: str
    expires: datetime


def digest(secret: str) -> str:
    """A session token's (or a credential's) SHA-256: what the store keeps. The tokens
    are 256 random bits, so a fast hash is enough; no one can guess one back."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def csrf_of(sid: str) -> str:
    """The session's CSRF token, derived from its secret token: every process knows it
    without storing it, and no one without the cookie can compute it."""
    return hmac.new(sid.encode("utf-8"), b"watcher csrf", hashlib.sha256).hexdigest()


@dataclass
class Throttle:
    """At most `limit` failed logins per client in `window_s`; then refused until the
    oldest failure leaves the window."""

    limit: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, client: str) -> float:
        q = self.failures.get(client)
        now = self.clock()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q or len(q) < self.limit:
            return 0.0
        return q[0] + self.window_s - now

    def failed(self, client: str) -> None:
        self.failures.setdefault(client, deque()).append(self.clock())

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)


class Auth:
    """Checks credentials and keeps sessions in the store: they outlive a restart, and
    every `watcher web` process on the database shares them."""

    def __init__(self, config: WebConfig, data_dir: Path, store: SessionStore,
                 now: Callable[[], datetime], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.config, self.store, self.now = config, store, now
        self.throttle = Throttle(clock=clock)
        self.tokens = {t.token: Principal(name, t.role) for name, t in config.tokens.items()}
        self.admin: str | None = None
        self.token_path = data_dir / TOKEN_FILE
        if not config.users and not config.tokens:
            self.admin = admin_token(data_dir)
            self.tokens[self.admin] = Principal("admin", "editor")
        # A password changed in the config ends the sessions opened with the old one.
        for name, user in config.users.items():
            store.close_web_sessions(name, keep_credential=digest(user.password_hash))

    def by_token(self, token: str) -> Principal | None:
        for known, principal in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return principal
        return None

    def by_password(self, name: str, password: str) -> Principal | None:
        user = self.config.users.get(name)
        if user is None:
            verify_password(password, _DUMMY)  # the same time for unknown names
            return None
        return Principal(name, user.role) if verify_password(password,
                                                             user.password_hash) else None

    def _credential(self, principal: Principal, token: str | None) -> str:
        user = self.config.users.get(principal.name)
        if token is None and user is not None:
            return digest(user.password_hash)
        return digest(token or "")

    def _principal(self, name: str, credential: str) -> Principal | None:
        """Who a stored session is now: the same credential must still be configured
        (and the role is today's, not the one at login)."""
        user = self.config.users.get(name)
        if user is not None and hmac.compare_digest(credential, digest(user.password_hash)):
            return Principal(name, user.role)
        for token, principal in self.tokens.items():
            if principal.name == name and hmac.compare_digest(credential, digest(token)):
                return principal
        return None

    def open_session(self, principal: Principal, token: str | None = None
                     ) -> tuple[str, Session]:
        """A new session for who logged in (with `token`, or else a password)."""
        sid = secrets.token_urlsafe(32)
        now = self.now()
        expires = now + timedelta(seconds=SESSION_S)
        self.store.open_web_session(WebSession(digest(sid), principal.name,
                                               self._credential(principal, token), now,
                                               expires))
        return sid, Session(principal, csrf_of(sid), expires)

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        kept = self.store.web_session(digest(sid), self.now())
        if kept is None:
            return None
        who = self._principal(kept.name, kept.credential)
        if who is None:
            self.store.close_web_session(kept.token_hash)
            return None
        return Session(who, csrf_of(sid), kept.expires_at)

    def close_session(self, sid: str | None) -> None:
        if sid:
            self.store.close_web_session(digest(sid))


_DUMMY = hash_password(secrets.token_hex(8))
