"""The validated config of the last start, kept for the next one (the CLI's commands).

Validating watcher.yaml imports YAML and pydantic, builds pydantic's validators and
looks for pydantic plugins in every installed package's metadata: most of a short
command's start-up (`watcher status`, a warm `watcher run --once`). What a valid file gives is
a function of what `load_settings` reads, so that is the key: the file's bytes, its
resolved path, the value of every environment variable the file names (and HOME,
for `~`), whether apprise is installed when the file names it, and the source of the
settings code and of the Python and pydantic that ran it (and cssselect's, when
the file gives a page source's `links`). A hit unpickles the Settings
validated then (plain dataclasses: neither YAML nor pydantic is imported); anything
else validates, as `load_settings` always does. Errors are
never kept, so a broken file says exactly what it said before.

Not kept: a config whose channels or database took values from the environment
(`Settings.secrets`): those values stay out of files. The cache is a file per config
in $WATCHER_CACHE_DIR, else $XDG_CACHE_HOME/watcher, else ~/.cache/watcher (a folder
only its owner may open); a file that another user owns or may write is ignored.
WATCHER_CACHE_DIR=off turns it off. What `watcher status` needs is kept beside it as
plain values (watcher.settings.essentials).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from watcher.settings.essentials import (
    cache_dir,
    cache_file,
    file_key,
    keep,
    kept,
    library_mark,
    links_hold,
    write_essentials,
)
from watcher.settings.model import Settings


def _key(resolved: Path, text: bytes, env: Mapping[str, str]) -> bytes:
    extra = library_mark("pydantic", "version.py")
    if b"links" in text:  # a page source's CSS selector, which cssselect judges
        extra += library_mark("cssselect", "__init__.py")
    return file_key(resolved, text, env, extra)


def _read(file: Path, key: bytes) -> Settings | None:
    settings = kept(file, key)
    if not isinstance(settings, Settings) or not links_hold(settings.path_links):
        return None
    return settings


def load_settings_cached(path: str | os.PathLike[str],
                         env: Mapping[str, str] | None = None) -> Settings:
    """`load_settings(path, env)`, from the cache when nothing it reads has changed."""
    env = os.environ if env is None else env
    folder = cache_dir(env)
    if folder is None:
        return _validate(path, env)
    resolved = Path(path).resolve()
    try:
        text = resolved.read_bytes()
    except OSError:
        return _validate(path, env)  # says why it cannot read the file
    key = _key(resolved, text, env)
    file = cache_file(folder, resolved, ".pickle")
    cached = _read(file, key)
    if cached is not None:
        return cached
    settings = _validate(path, env)
    if not settings.secrets:
        keep(folder, file, key, settings)
        write_essentials(folder, resolved, text, env, settings)
    return settings


def _validate(path: str | os.PathLike[str], env: Mapping[str, str]) -> Settings:
    from watcher.settings.load import load_settings  # YAML and pydantic: on a miss only

    return load_settings(path, env)
