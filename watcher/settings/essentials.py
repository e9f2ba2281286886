"""What `watcher status` needs of the config, kept beside the cached Settings
(watcher.settings.cache) as plain JSON, so that a status check needs neither
pydantic nor the config's models: the database, the poll tick, and whether the
database is shared.

Written only when the whole config was validated, under the same key as the cached
Settings less pydantic's version (plain values do not depend on it): the file's
bytes, its resolved path, every variable it names, HOME, and the settings code. A
config with secrets from the environment is not kept (the cache keeps none), so
the essentials never hold one; any miss, `watcher status` validates as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watcher.settings.model import Settings

DEFAULT_CONFIG = Path("config/watcher.yaml")
_VARIABLE = re.compile(rb"\$\{([A-Za-z_][A-Za-z0-9_]*)")
# the code whose change may change what a file validates to
_CODE = ("cache.py", "checks.py", "essentials.py", "load.py", "model.py", "../core/models.py")


@dataclass(frozen=True)
class Essentials:
    """What `watcher status` needs of the config, as plain values."""

    database: str  # an SQLite path, or a PostgreSQL URL
    shared: bool  # PostgreSQL: several daemons
    database_shown: str  # without a password
    poll_tick: float  # seconds
    secrets: tuple[str, ...] = ()  # always empty when read from the cache
    path_links: tuple[tuple[str, str], ...] = ()  # as Settings.path_links

    @property
    def database_target(self) -> str | Path:
        """What `open_store` takes: a URL as text, a file as a Path."""
        return self.database if self.shared else Path(self.database)


def essentials_of(settings: Settings) -> Essentials:
    return Essentials(str(settings.database), settings.shared_database,
                      settings.database_shown, float(settings.poll.tick),
                      tuple(settings.secrets), tuple(settings.path_links))


def links_hold(links: tuple[tuple[str, str], ...] | list[list[str]]) -> bool:
    """Each relative path of the config that went through a symbolic link when it was
    validated still leads where it led: a link repointed since makes the cache stale."""
    return all(str(Path(joined).resolve()) == led for joined, led in links)


def config_path(cli_value: str | os.PathLike[str] | None,
                env: Mapping[str, str] | None = None) -> Path:
    """--config, else $WATCHER_CONFIG, else config/watcher.yaml."""
    env = os.environ if env is None else env
    if cli_value:
        return Path(cli_value)
    if env.get("WATCHER_CONFIG"):
        return Path(env["WATCHER_CONFIG"])
    return DEFAULT_CONFIG


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


def file_key(resolved: Path, text: bytes, env: Mapping[str, str], extra: bytes = b"") -> bytes:
    """What a valid file validates to depends on: its place and bytes, the Python and
    settings code reading it, HOME (for `~`), and each variable it names."""
    h = hashlib.sha256()
    for part in (str(resolved).encode(), text, sys.version.encode(),
                 os.path.expanduser("~").encode(), extra):
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


def library_mark(package: str, pattern: str) -> bytes:
    """What changes with an installed library's version (a new one may judge a file
    otherwise), found without importing it: its files matching `pattern`, a source file
    by its text, a compiled library by its name, size and time (reading its megabytes
    would cost a start more than validating)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    where = spec.submodule_search_locations if spec is not None else None
    if not where:
        return f"{package}\x00missing".encode()
    out = [package.encode()]
    for file in sorted(Path(next(iter(where))).glob(pattern)):
        try:
            if file.suffix == ".py":
                out.append(file.read_bytes())
            else:
                st = file.stat()
                out.append(f"{file.name}\x00{st.st_size}\x00{st.st_mtime_ns}".encode())
        except OSError:
            out.append(b"\x00unreadable")
    return b"\x00".join(out) if len(out) > 1 else out[0] + b"\x00unreadable"


def cache_file(folder: Path, resolved: Path, suffix: str) -> Path:
    return folder / (hashlib.sha256(str(resolved).encode()).hexdigest()[:32] + suffix)


def read_own(file: Path) -> bytes | None:
    """A cache file's bytes, when it is ours and nobody else could have written it."""
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return None
        return f.read()


def kept(file: Path, key: bytes) -> object | None:
    """What `keep` wrote under `key`, unpickled; None when the file is missing, not ours,
    under another key, or torn (the caller validates instead)."""
    import pickle

    data = read_own(file)
    if data is None or data[:len(key)] != key:
        return None
    try:
        return pickle.loads(data[len(key):])
    except Exception:  # a torn or foreign file
        return None


def keep(folder: Path, file: Path, key: bytes, value: object) -> None:
    import pickle

    write_own(folder, file, key + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def write_own(folder: Path, file: Path, data: bytes) -> None:
    """Written whole then renamed, so a reader sees the old file or the new one."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".settings-")  # mode 0600
    except OSError:  # a read-only home: the next start validates again
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, file)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def write_essentials(folder: Path, resolved: Path, text: bytes, env: Mapping[str, str],
                     settings: Settings) -> None:
    if settings.secrets:
        return
    data = {"key": file_key(resolved, text, env).hex(), **asdict(essentials_of(settings))}
    write_own(folder, cache_file(folder, resolved, ".status.json"), json.dumps(data).encode())


def cached_essentials(path: str | os.PathLike[str],
                      env: Mapping[str, str] | None = None) -> Essentials | None:
    """The essentials kept when this very file was last validated, else None."""
    env = os.environ if env is None else env
    folder = cache_dir(env)
    if folder is None:
        return None
    resolved = Path(path).resolve()
    try:
        text = resolved.read_bytes()
    except OSError:
        return None
    raw = read_own(cache_file(folder, resolved, ".status.json"))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if data.pop("key") != file_key(resolved, text, env).hex():
            return None
        links = tuple((str(a), str(b)) for a, b in data["path_links"])
        if not links_hold(links):
            return None
        return Essentials(database=str(data["database"]), shared=bool(data["shared"]),
                          database_shown=str(data["database_shown"]),
                          poll_tick=float(data["poll_tick"]), path_links=links)
    except (ValueError, KeyError, TypeError, AttributeError):  # torn or foreign: validate
        return None
