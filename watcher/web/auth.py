"""Who may use the web console: users with password hashes and API tokens from the
config, or, when none is configured, an admin token made on first start and kept
in the data folder (mode 0600); sessions, CSRF tokens and login throttling."""

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
from pathlib import Path

from watcher.core.errors import ConfigError
from watcher.settings.model import WebConfig

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
    expires: float


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
    """Checks credentials and keeps sessions (in memory: a restart logs people out)."""

    def __init__(self, config: WebConfig, data_dir: Path,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.throttle = Throttle(clock=clock)
        self.sessions: dict[str, Session] = {}
        self.tokens = {t.token: Principal(name, t.role) for name, t in config.tokens.items()}
        self.admin: str | None = None
        self.token_path = data_dir / TOKEN_FILE
        if not config.users and not config.tokens:
            self.admin = admin_token(data_dir)
            self.tokens[self.admin] = Principal("admin", "editor")

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

    def open_session(self, principal: Principal) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(24), self.clock() + SESSION_S)
        self.sessions[sid] = session
        return sid, session

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self.sessions.get(sid)
        if s is None or s.expires < self.clock():
            self.sessions.pop(sid, None)
            return None
        return s

    def close_session(self, sid: str | None) -> None:
        if sid:
            self.sessions.pop(sid, None)


_DUMMY = hash_password(secrets.token_hex(8))
