"""watcher: a news keyword-alert daemon."""

__version__ = "0.1.0"
