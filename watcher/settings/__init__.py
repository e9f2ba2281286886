"""Settings: config/watcher.yaml validated (model), read with the environment (load),
kept validated for the next command (cache), edited in place (edit), and feeds in and
out as OPML (opml)."""

from watcher.settings.cache import load_settings_cached
from watcher.settings.load import config_path, load_settings
from watcher.settings.model import Settings, parse_duration, parse_size

__all__ = ["Settings", "config_path", "load_settings", "load_settings_cached",
           "parse_duration", "parse_size"]
