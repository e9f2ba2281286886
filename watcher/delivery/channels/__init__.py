"""Delivery channels: one small module per kind. `build_channels` makes them from settings.

A kind's module (and what it needs: an HTTP client, jinja2, the email package) is
imported when a channel of that kind is built, so a command or a cycle that sends
nothing by email or webhook does not pay for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.core.errors import ConfigError
from watcher.delivery.channels.base import Channel

if TYPE_CHECKING:
    from watcher.delivery.templating import Templates

# The shipped defaults, package data (`watcher templates export DIR` copies them).
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_TEMPLATED = ("email", "webhook", "apprise")


def load_templates(name: str, paths: Any | None) -> Templates:
    """The channel's templates (its own where set, else the defaults), compiled and
    rendered once against a sample so a mistake is found at start-up."""
    from watcher.delivery.templating import FILES, NAMES, TemplateError, compile_templates

    sources: dict[str, str] = {}
    origins: dict[str, str] = {}
    for key in NAMES:
        path = getattr(paths, key, None) if paths is not None else None
        path = Path(path) if path else DEFAULT_TEMPLATES / FILES[key]
        try:
            sources[key] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"channel {name!r}: template {path}: cannot read: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        origins[key] = str(path)
    try:
        templates = compile_templates(sources, origins)
        templates.check()
    except TemplateError as exc:
        raise ConfigError(f"channel {name!r}: {exc}") from None
    return templates


def check_channels(configs: Mapping[str, Any]) -> None:
    """Raise ConfigError for the first channel whose templates are broken."""
    for name, cfg in configs.items():
        if cfg.type in _TEMPLATED:
            load_templates(name, getattr(cfg, "templates", None))


def build_channel(name: str, config: Any) -> Channel:
    kind = config.type
    if kind == "console":
        from watcher.delivery.channels.console import ConsoleChannel

        return ConsoleChannel(name)
    if kind == "jsonl":
        from watcher.delivery.channels.jsonl import JsonlChannel

        return JsonlChannel(name, config.path)
    templates = load_templates(name, getattr(config, "templates", None))
    try:
        if kind == "webhook":
            from watcher.delivery.channels.webhook import WebhookChannel

            return WebhookChannel(name, config.url, headers=dict(config.headers),
                                  timeout_s=config.timeout, format=config.format,
                                  secret=config.secret, templates=templates)
        if kind == "email":
            from watcher.delivery.channels.email import EmailChannel, Smtp

            s = config.smtp
            smtp = Smtp(host=s.host, port=s.effective_port, security=s.security,
                        username=s.username, password=s.password, ca_file=s.ca_file,
                        timeout_s=s.timeout)
            return EmailChannel(name, smtp, config.from_, config.to, templates)
        if kind == "apprise":
            from watcher.delivery.channels.apprise import AppriseChannel

            return AppriseChannel(name, config.url, templates, timeout_s=config.timeout)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    raise ConfigError(f"channel {name!r}: unknown type {kind!r}")


def build_channels(configs: Mapping[str, Any]) -> dict[str, Channel]:
    return {name: build_channel(name, cfg) for name, cfg in configs.items()}


__all__ = ["Channel", "build_channel", "build_channels", "check_channels", "load_templates"]
