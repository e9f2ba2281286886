"""Settings: config/watcher.yaml validated (model), read with the environment (load),
kept validated for the next command (cache, and essentials for `watcher status`),
edited in place (edit), and feeds in and out as OPML (opml).

The names below are imported on first use: `watcher status` reads the essentials
without loading pydantic and the config's models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from watcher.settings.essentials import config_path

if TYPE_CHECKING:
    from watcher.settings.cache import load_settings_cached
    from watcher.settings.checks import parse_duration, parse_size
    from watcher.settings.load import load_settings
    from watcher.settings.model import Settings

__all__ = ["Settings", "config_path", "load_settings", "load_settings_cached",
           "parse_duration", "parse_size"]
_WHERE = {"Settings": "model", "parse_duration": "checks", "parse_size": "checks",
          "load_settings": "load", "load_settings_cached": "cache"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
