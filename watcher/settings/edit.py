"""Edit files in place: feeds added to config/watcher.yaml without losing its comments
and layout, and rules.yaml replaced whole, only over the version it was read at."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from watcher.core.errors import ConfigError
from watcher.rules.ruleset import digest_of
from watcher.settings.load import load_settings


class VersionConflict(ConfigError):
    """The file changed since its version was read; `current` is its text now."""

    def __init__(self, message: str, current: str) -> None:
        super().__init__(message)
        self.current = current


_THREADS = threading.Lock()


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[None]:
    """One edit of the file at a time: threads of this process (the console's request
    handlers) and other processes (several `watcher web`, the CLI), so that comparing
    the version and renaming over it are one step. An advisory lock on a file beside
    it, since the file itself is replaced by each edit."""
    with _THREADS:
        try:
            fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write beside it: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # and with it the lock


def _beside(path: Path, suffix: str, text: str) -> Path:
    """A new file of our own beside `path` (mode 0600 until chmod: the config may hold
    credentials), holding `text`."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


def replace_text(path: Path, text: str, expected_version: str) -> str:
    """Write `text` over the file when it is still at `expected_version` (the sha256
    of its text, as watcher.rules.load.digest_of gives it); the new version.

    Written to a temporary name beside it and renamed, keeping the file's mode, so a
    reader (the daemon's hot reload) sees the old file or the new one, never half.
    """
    with _editing(path):
        return _replace_locked(path, text, expected_version)


def _replace_locked(path: Path, text: str, expected_version: str) -> str:
    try:
        current = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        current, mode = "", 0o644
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if digest_of(current) != expected_version:
        raise VersionConflict(f"{path}: changed since it was read (version "
                              f"{digest_of(current)[:12]}, not {expected_version[:12]})",
                              current)
    tmp = None
    try:
        tmp = _beside(path, ".tmp", text)
        tmp.chmod(mode)
        tmp.replace(path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {exc}") from None
    return digest_of(text)


def add_feeds(path: Path, feeds: Iterable[dict[str, Any]]) -> list[str]:
    """Append feeds (skipping names or URLs already present); returns the names added.

    The file is written to a temporary name and renamed, so a crash cannot
    leave half a config behind.
    """
    with _editing(path):
        edit = feeds_edited(path, add=feeds)
        if edit.added:
            _replace_locked(path, edit.text, edit.version)
    return edit.added


def add_rule_example(path: Path, rule: str, example: dict[str, str],
                     kind: str = "no_match") -> str:
    """Append an example article to a rule's `examples` in rules.yaml, keeping the
    file's comments and layout; the new version. ConfigError when there is no such
    rule or the file cannot be edited."""
    yaml, text, doc = _load_rules_doc(path)
    rules = doc.get("rules") if isinstance(doc, dict) else None
    found = next((r for r in rules or () if isinstance(r, dict) and r.get("name") == rule),
                 None)
    if found is None:
        raise ConfigError(f"{path}: no rule named {rule!r}")
    examples = found.setdefault("examples", CommentedMap())
    seq = examples.get(kind)
    if not isinstance(seq, list):
        seq = examples[kind] = CommentedSeq([] if seq is None else [seq])
    seq.append(CommentedMap(example))
    out = StringIO()
    yaml.dump(doc, out)
    return replace_text(path, out.getvalue(), digest_of(text))


def _load_rules_doc(path: Path) -> tuple[YAML, str, Any]:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # "  - name:", as rules.yaml is written
    yaml.width = 4096
    try:
        text = path.read_text(encoding="utf-8")
        return yaml, text, yaml.load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except Exception as exc:  # ruamel raises many types for bad YAML
        raise ConfigError(f"{path}: cannot edit: {exc}") from None


def rule_written(path: Path, rule: dict[str, Any]) -> str:
    """rules.yaml's text with `rule` in place of the rule of its name (keys it does not
    name, such as examples, kept) or appended; comments and layout kept. Not written:
    the caller validates the text, then saves it with replace_text."""
    yaml, _, doc = _load_rules_doc(path)
    if doc is None:
        doc = CommentedMap()
    rules = doc.setdefault("rules", CommentedSeq())
    found = next((r for r in rules if isinstance(r, dict) and r.get("name") == rule["name"]),
                 None)
    if found is None:
        found = CommentedMap()
        rules.append(found)
    for key, value in rule.items():
        if value in (None, "", [], ()):
            found.pop(key, None)
            continue
        if isinstance(value, list | tuple):
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        found[key] = value
    out = StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


@dataclass(frozen=True)
class FeedsEdit:
    """config/watcher.yaml with feeds added and removed, not yet written."""

    version: str  # of the text it was made from
    text: str
    added: list[str]
    removed: list[str]
    skipped: list[tuple[str, str]]  # (the feed's URL or name, why it was not taken)


def feeds_edited(path: Path, add: Iterable[dict[str, Any]] = (),
                 remove: Iterable[str] = ()) -> FeedsEdit:
    """The config's text with feeds appended (one whose name or URL is taken is skipped,
    with the reason) and feeds removed by name, comments and layout kept."""
    yaml, text, doc = _load_rules_doc(path)
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    seq = doc.setdefault("feeds", CommentedSeq())
    if not isinstance(seq, list):
        raise ConfigError(f"{path}: feeds: expected a list")
    removed, skipped = [], []
    for name in remove:
        at = next((i for i, f in enumerate(seq) if isinstance(f, dict) and f.get("name") == name),
                  None)
        if at is None:
            raise ConfigError(f"{path}: feeds: no feed named {name!r}")
        del seq[at]
        removed.append(name)
    if removed and not seq:
        # ruamel writes an emptied block list as a stray "[]" line that breaks the keys
        # after it: a fresh empty list in flow style instead ("feeds: []").
        seq = CommentedSeq()
        seq.fa.set_flow_style()
        doc["feeds"] = seq
        if isinstance(doc, CommentedMap):  # a comment under the key has no list to stay in
            doc.ca.items.pop("feeds", None)
    names = {f.get("name"): f.get("url") for f in seq if isinstance(f, dict)}
    urls = {url: name for name, url in names.items()}
    added = []
    for feed in add:
        if feed["url"] in urls:
            skipped.append((feed["url"], f"already configured as {urls[feed['url']]!r}"))
            continue
        if feed["name"] in names:
            skipped.append((feed["url"], f"the name {feed['name']!r} is taken"))
            continue
        seq.append(_flow_item(feed))
        names[feed["name"]], urls[feed["url"]] = feed["url"], feed["name"]
        added.append(feed["name"])
    out = StringIO()
    yaml.dump(doc, out)
    return FeedsEdit(digest_of(text), out.getvalue(), added, removed, skipped)


def _flow_item(feed: dict[str, Any]) -> CommentedMap:
    """A feed as the bundled config writes them: one line, {name: ..., url: ...}."""
    item = CommentedMap(feed)
    item.fa.set_flow_style()
    for key, value in item.items():
        if isinstance(value, list):
            inner = CommentedSeq(value)
            inner.fa.set_flow_style()
            item[key] = inner
    return item


def save_config(path: Path, text: str, expected_version: str) -> str:
    """Write config/watcher.yaml's new text over `expected_version` once it validates
    as the daemon will load it (relative paths resolved from the same folder); the new
    version. ConfigError naming the key and reason when it does not validate."""
    with _editing(path):
        check = None
        try:
            check = _beside(path, ".check", text)
            load_settings(check)
        except ConfigError as exc:
            assert check is not None
            raise ConfigError(str(exc).replace(str(check.resolve()), str(path))
                              .replace(str(check), str(path))) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write beside it: {exc}") from None
        finally:
            if check is not None:
                check.unlink(missing_ok=True)
        return _replace_locked(path, text, expected_version)
