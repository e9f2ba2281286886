"""config/watcher.yaml + environment -> validated, frozen Settings.

Relative paths in the file are relative to the file's own folder, so the same
config works whatever directory the daemon is started from.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from watcher.core.errors import ConfigError
from watcher.settings.model import NAME_PATTERN, Settings, validator

if TYPE_CHECKING:
    from pydantic import ValidationError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(node: Any, env: Mapping[str, str], loc: tuple[Any, ...],
                missing: list[tuple[tuple[Any, ...], str]], secrets: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*loc, str(k)), missing, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*loc, i), missing, secrets) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        given = True
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append((loc, name))
                return ""
            value, given = default, False
        # a server URL's substituted parts (its password, say); not a file's folder
        server = loc[:1] == ("database",) and node.lstrip().startswith("postgres")
        if (loc[:1] == ("channels",) or server or (given and _credential(loc))) and value:
            secrets.append(value)
        elif loc[:1] == ("database",) and value.startswith(("postgresql://", "postgres://")):
            password = urlsplit(value).password  # the whole URL from one variable
            if password:
                secrets.append(password)
        return value

    return _ENV_REF.sub(repl, node)


def _credential(loc: tuple[Any, ...]) -> bool:
    """Where a value from the environment is a credential: the console's users and
    tokens, and a feed's URL (an API key in its query, say). Like channels' values,
    these are hidden in logs and keep the config out of the settings cache."""
    return ((loc[:1] in (("web",), ("console",)) and loc[1:2] in (("users",), ("tokens",)))
            or (loc[:1] == ("feeds",) and loc[2:3] == ("url",)))


# the relative paths whose resolving went through a symbolic link, as (the path as
# joined, where it led): what a cached validation must find unchanged
_LINKS: ContextVar[list[tuple[str, str]] | None] = ContextVar("_LINKS", default=None)


def _resolve_path(base: Path, value: str | Path) -> Path:
    p = Path(os.path.expanduser(str(value)))
    if p.is_absolute():
        return p
    resolved = (base / p).resolve()
    links = _LINKS.get()
    if links is not None and str(resolved) != os.path.normpath(base / p):
        links.append((str(base / p), str(resolved)))
    return resolved


def _resolve_feed_url(base: Path, url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https", "file"):
        return url
    if scheme and len(scheme) > 1:  # one letter would be a Windows drive
        raise ValueError(f"scheme {scheme!r} is not supported (use http, https or a file path)")
    return _resolve_path(base, url).as_uri()


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    """The file's mapping, and the sha256 of its text."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    import yaml  # not needed when the validated config comes from the cache

    try:
        # libyaml when the wheel has it: the pure-Python loader's node objects take
        # far more memory for a config of thousands of feeds.
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if raw is None:
        return {}, digest
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw, digest


def _unusable_channels(path: Path, missing: list[tuple[tuple[Any, ...], str]]
                       ) -> dict[str, str]:
    """Channels naming an unset variable are unusable (an error only if a rule uses
    one); an unset variable anywhere else is an error now."""
    unusable: dict[str, str] = {}
    errors: list[str] = []
    for loc, var in missing:
        if len(loc) >= 2 and loc[0] == "channels":
            unusable.setdefault(
                loc[1], f"environment variable {var} is not set (used at {_loc(loc)})")
        else:
            errors.append(f"{path}: {_loc(loc)}: environment variable {var} is not set")
    if errors:
        raise ConfigError("; ".join(errors))
    return unusable


def _resolve_paths(path: Path, data: dict[str, Any]) -> None:
    """Paths and local feed URLs, relative to the config file's folder."""
    base = path.resolve().parent
    data.setdefault("database", "../data/watcher.db")
    data.setdefault("rules", "../rules.yaml")
    for key in ("database", "rules"):
        value = data.get(key)
        if isinstance(value, str) and not value.startswith(("postgresql://", "postgres://")):
            data[key] = _resolve_path(base, value)
    for i, feed in enumerate(data.get("feeds") or []):
        if isinstance(feed, dict) and isinstance(feed.get("url"), str):
            try:
                feed["url"] = _resolve_feed_url(base, feed["url"])
            except ValueError as exc:
                raise ConfigError(f"{path}: feeds[{i}].url: {exc}") from None
    for ch in (data.get("channels") or {}).values():
        if isinstance(ch, dict) and ch.get("type") == "jsonl" \
                and isinstance(ch.get("path"), str):
            ch["path"] = _resolve_path(base, ch["path"])
        _resolve_channel_files(base, ch)


# pydantic's words for a dataclass's unknown or missing key, as the file's reader says them
_MESSAGES = {"unexpected_keyword_argument": "unknown key", "extra_forbidden": "unknown key",
             "missing_argument": "Field required"}


def _validation_message(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        parts = tuple(err["loc"])
        if len(parts) > 2 and parts[0] == "channels":
            parts = parts[:2] + parts[3:]  # drop pydantic's union tag ("webhook")
        msg = _MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "dataclass_type":  # as it was said of the pydantic models
            msg = f"Input should be a valid dictionary or instance of {err['ctx']['class_name']}"
        lines.append(f"{path}: {_loc(parts)}: {msg}")
    return "; ".join(lines)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read, substitute, validate. Raises ConfigError naming the file, key and reason."""
    env = os.environ if env is None else env
    path = Path(path)
    missing: list[tuple[tuple[Any, ...], str]] = []
    secrets: list[str] = []
    raw, digest = _read_yaml(path)
    data = _substitute(raw, env, (), missing, secrets)
    unusable = _unusable_channels(path, missing)
    if isinstance(data.get("channels"), dict):
        # An unusable channel is set aside whole: validating a half-substituted
        # URL would only produce a second, more confusing error.
        data["channels"] = {k: v for k, v in data["channels"].items() if k not in unusable}
    links: list[tuple[str, str]] = []
    token = _LINKS.set(links)
    try:
        _resolve_paths(path, data)
    finally:
        _LINKS.reset(token)
    notices = _console_is_web(path, data)
    from pydantic import ValidationError  # a cached config is read without pydantic

    try:
        settings = validator().validate_python(
            {**data, "source": path.resolve(), "source_digest": digest,
             "unusable_channels": unusable, "notices": notices, "path_links": tuple(links),
             "secrets": tuple(sorted(set(secrets), key=len, reverse=True))})
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc)) from None
    names = [f.name for f in settings.feeds]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: feeds: duplicate feed name(s) {', '.join(dupes)}")
    for name in list(settings.channels) + list(unusable):
        if not re.match(NAME_PATTERN, name):
            raise ConfigError(f"{path}: channels.{name}: invalid channel name")
    _check_alert_channels(path, settings)
    return settings


def _console_is_web(path: Path, data: dict[str, Any]) -> tuple[str, ...]:
    """A `console:` section (the console's settings before they joined `web:`) is read as
    part of `web:`; a key set in both is refused rather than one silently winning."""
    console = data.pop("console", None)
    if console is None:
        return ()
    web = data.get("web") or {}
    if not isinstance(console, dict) or not isinstance(web, dict):
        raise ConfigError(f"{path}: {'console' if not isinstance(console, dict) else 'web'}: "
                          "expected a mapping")
    both = sorted(set(console) & set(web))
    if both:
        raise ConfigError(f"{path}: console: {', '.join(both)} also set under web: "
                          "the console's settings are under web: now; keep one")
    data["web"] = {**web, **console}
    return (f"{path}: console: is now part of web: (read as web: "
            f"{', '.join(sorted(console))}); rename it",)


def _check_alert_channels(path: Path, settings: Settings) -> None:
    """The channels under `alerts:` exist and can be used, as a rule's `notify` must."""
    known = ", ".join(sorted(settings.channels)) or "none"
    problems = []
    for key in ("delivery_failures", "feed_health"):
        for i, name in enumerate(getattr(settings.alerts, key)):
            if name in settings.unusable_channels:
                problems.append(f"{path}: alerts.{key}[{i}]: channel {name!r} cannot be "
                                f"used: {settings.unusable_channels[name]}")
            elif name not in settings.channels:
                problems.append(f"{path}: alerts.{key}[{i}]: unknown channel {name!r} "
                                f"(known: {known})")
    if problems:
        raise ConfigError("; ".join(problems))


def _resolve_channel_files(base: Path, ch: Any) -> None:
    """Template paths and an SMTP ca_file are relative to the config file."""
    if not isinstance(ch, dict):
        return
    if isinstance(ch.get("templates"), dict):
        ch["templates"] = {k: _resolve_path(base, v) if isinstance(v, str) else v
                           for k, v in ch["templates"].items()}
    smtp = ch.get("smtp")
    if isinstance(smtp, dict) and isinstance(smtp.get("ca_file"), str):
        smtp["ca_file"] = _resolve_path(base, smtp["ca_file"])
