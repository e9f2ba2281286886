"""The validated config of the last start, kept for the next one (the CLI's commands).

Validating watcher.yaml builds pydantic's validators for every model and looks for
pydantic plugins in every installed package's metadata: most of a short command's
start-up (`watcher status`, a warm `watcher run --once`). What a valid file gives is
a function of what `load_settings` reads, so that is the key: the file's bytes, its
resolved path, the value of every environment variable the file names (and HOME,
for `~`), whether apprise is installed when the file names it, and the source of the
settings code and of the Python and pydantic that ran it. A hit unpickles the Settings
validated then; anything else validates, as `load_settings` always does. Errors are
never kept, so a broken file says exactly what it said before.

Not kept: a config whose channels or database took values from the environment
(`Settings.secrets`): those values stay out of files. The cache is a file per config
in $WATCHER_CACHE_DIR, else $XDG_CACHE_HOME/watcher, else ~/.cache/watcher (a folder
only its owner may open); a file that another user owns or may write is ignored.
WATCHER_CACHE_DIR=off turns it off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from watcher.settings.load import load_settings
from watcher.settings.model import Settings

_VARIABLE = re.compile(rb"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_CODE = ("cache.py", "load.py", "model.py")
_DIGEST = 32  # bytes of sha256 at the head of a cache file


def cache_dir(env: Mapping[str, str]) -> Path | None:
    chosen = env.get("WATCHER_CACHE_DIR", "").strip()
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    if chosen:
        return Path(chosen)
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg) / "watcher"
    try:
        return Path.home() / ".cache" / "watcher"
    except RuntimeError:  # no home (a service's dynamic user): validate every time
        return None


def _key(resolved: Path, text: bytes, env: Mapping[str, str]) -> bytes:
    import pydantic  # already loaded by the model; its version shapes the pickle

    h = hashlib.sha256()
    for part in (str(resolved).encode(), text, sys.version.encode(),
                 pydantic.VERSION.encode(), os.path.expanduser("~").encode()):
        h.update(len(part).to_bytes(8, "big") + part)
    here = Path(__file__).parent
    for name in _CODE:
        h.update((here / name).read_bytes())
    for name in sorted(set(_VARIABLE.findall(text))):
        value = env.get(name.decode())
        h.update(name + (b"\x00unset" if value is None else b"=" + value.encode()) + b"\x00")
    if b"apprise" in text:
        import importlib.util

        h.update(b"apprise=%d" % (importlib.util.find_spec("apprise") is not None))
    return h.digest()


def _read(file: Path, key: bytes) -> Settings | None:
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        # only a file of our own that nobody else could have written is unpickled
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        data = f.read()
    if data[:_DIGEST] != key:
        return None
    try:
        settings = pickle.loads(data[_DIGEST:])
    except Exception:  # a torn or foreign file: validate instead
        return None
    return settings if isinstance(settings, Settings) else None


def _write(folder: Path, file: Path, key: bytes, settings: Settings) -> None:
    """Written whole then renamed, so a reader sees the old file or the new one."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".settings-")  # mode 0600
    except OSError:  # a read-only home: the next start validates again
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, file)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def load_settings_cached(path: str | os.PathLike[str],
                         env: Mapping[str, str] | None = None) -> Settings:
    """`load_settings(path, env)`, from the cache when nothing it reads has changed."""
    env = os.environ if env is None else env
    folder = cache_dir(env)
    if folder is None:
        return load_settings(path, env)
    resolved = Path(path).resolve()
    try:
        text = resolved.read_bytes()
    except OSError:
        return load_settings(path, env)  # says why it cannot read the file
    key = _key(resolved, text, env)
    file = folder / (hashlib.sha256(str(resolved).encode()).hexdigest()[:32] + ".pickle")
    cached = _read(file, key)
    if cached is not None:
        return cached
    settings = load_settings(path, env)
    if not settings.secrets:
        _write(folder, file, key, settings)
    return settings
