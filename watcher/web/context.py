"""What every route of the console needs: the settings, the store, the rules file,
who is asking, and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from watcher.settings import Settings
from watcher.store.protocol import Store
from watcher.web.auth import Auth, Principal


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Console:
    settings: Settings
    store: Store
    auth: Auth
    now: Callable[[], datetime] = utc_now

    @property
    def rules_path(self) -> Path:
        return self.settings.rules

    def rules_text(self) -> str:
        try:
            return self.rules_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""


def console(request: Request) -> Console:
    return request.app.state.console


def principal(request: Request) -> Principal:
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:
        raise HTTPException(401, "authentication required")
    return found


def editor(request: Request) -> Principal:
    who = principal(request)
    if not who.can_edit:
        raise HTTPException(403, f"web: {who.name} is a viewer; editing needs the editor role")
    return who


def safe_url(url: str | None) -> str | None:
    """A link from a feed, only when it is http(s): never javascript:, data: and kin."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None
