"""Delivery channels: one small module per kind. `build_channels` makes them from settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watcher.channels.base import Channel
from watcher.channels.console import ConsoleChannel
from watcher.channels.jsonl import JsonlChannel
from watcher.channels.webhook import WebhookChannel


def build_channel(name: str, config: Any) -> Channel:
    kind = config.type
    if kind == "console":
        return ConsoleChannel(name)
    if kind == "jsonl":
        return JsonlChannel(name, config.path)
    if kind == "webhook":
        return WebhookChannel(name, config.url, headers=dict(config.headers),
                              timeout_s=config.timeout)
    raise ValueError(f"channel {name!r}: unknown type {kind!r}")


def build_channels(configs: Mapping[str, Any]) -> dict[str, Channel]:
    return {name: build_channel(name, cfg) for name, cfg in configs.items()}


__all__ = ["Channel", "build_channel", "build_channels"]
