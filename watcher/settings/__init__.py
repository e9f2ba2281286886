"""Settings: config/watcher.yaml validated (model), read with the environment (load),
edited in place (edit), and feeds in and out as OPML (opml)."""

from watcher.settings.load import config_path, load_settings
from watcher.settings.model import Settings, parse_duration, parse_size

__all__ = ["Settings", "config_path", "load_settings", "parse_duration", "parse_size"]
