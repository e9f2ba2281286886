"""The checks of single values in config/watcher.yaml (durations, sizes, URLs, addresses),
plain functions that pydantic calls through the annotations of watcher.settings.model."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import re
from typing import Any
from urllib.parse import urlsplit

_WHSEC = "whsec_"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1}


def parse_duration(value: object) -> float:
    """'90s', '5m', '1.5h', '2d' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h, 2d)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def parse_size(value: object) -> int:
    """'10MB', '512KiB' or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 5MB")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a size (use e.g. 512KB, 10MB)")
        unit = m.group(2).lower() if m.group(2) else None
        size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError("a size must be greater than zero")
    return size


def secret_form(v: str | None) -> str | None:
    if v is not None and v.startswith(_WHSEC):
        try:
            base64.b64decode(v[len(_WHSEC):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    if v is not None and not v:
        raise ValueError("the secret is empty")
    return v


def http_only(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL itself stays out of the message: webhook URLs carry tokens.
        scheme = parts.scheme or "no scheme"
        raise ValueError(f"not an http(s) URL ({scheme}); check the value")
    return v


def address(v: str) -> str:
    if "@" not in v or any(c in v for c in "\r\n\x00<>,") or len(v) > 254:
        raise ValueError(f"{v!r} is not an email address")
    return v.strip()


def one_or_many(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def addresses(v: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(address(a) for a in v)


def apprise_url(v: str) -> str:
    if importlib.util.find_spec("apprise") is None:
        raise ValueError("type apprise needs the apprise package: "
                         "pip install 'watcher[apprise]'")
    if "://" not in v:
        raise ValueError("expected an Apprise URL such as tgram://TOKEN/CHAT_ID")
    return v


def known_zone(v: str) -> str:
    import zoneinfo  # validation only: a cached config is read without it

    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use e.g. UTC, Europe/Oslo)") from None
    return v


def empty_is_off(v: object) -> object:
    return None if v == "" else v


def networks(v: tuple[str, ...]) -> tuple[str, ...]:
    import ipaddress  # here: every start loads the config, few configs name a proxy

    for entry in v:
        try:
            ipaddress.ip_network(entry.strip())
        except ValueError:
            raise ValueError(f"{entry!r} is no IP address or network "
                             "(e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return tuple(e.strip() for e in v)


def http_url(v: str | None) -> str | None:
    if v is not None and (urlsplit(v).scheme not in ("http", "https")
                          or not urlsplit(v).hostname):
        raise ValueError(f"{v!r} is not an http(s) URL")
    return v
