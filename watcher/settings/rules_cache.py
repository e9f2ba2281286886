"""The validated rules of the last start, kept for the next one (`watcher run`, the
daemon's reloads).

Validating rules.yaml is quick; importing what validates it is not: the YAML parser,
pydantic's models for a rule (their validators built when the classes are made) and
luqum's query parser. A rule set unpickled from here (watcher.rules.ruleset, its query
trees included) is compiled and matched without any of them.

What `parse_rules` gives is a function of the text, the name it is reported under,
the channels it may notify and those unusable (with why), and the code that reads it:
that is the key, with the file's resolved path, the Python that ran it and the
versions of PyYAML, pydantic, luqum and RE2. Errors are never kept, so a broken file says
exactly what it said before. The file sits beside the cached Settings (same folder,
same rules: only its owner may open the folder; a file another user owns or may
write is ignored; WATCHER_CACHE_DIR=off turns it off), one per rules file.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from watcher.rules.ruleset import RuleSet
from watcher.settings.essentials import (
    cache_dir,
    cache_file,
    keep,
    kept,
    library_mark,
)

_SUFFIX = ".rules.pickle"
_WATCHER = Path(__file__).resolve().parent.parent
# Whose source shapes a rule set: the rule language, the core it builds on (models,
# text, digests: validators and pickled classes), and this file.
_CODE_DIRS = ("rules", "core")
# The libraries that read the file, by the files of theirs that change with their
# version. RE2, which judges the regular expressions, by its compiled library: its
# Python wrapper is the same from one version to the next.
_LIBRARIES = (("yaml", "__init__.py"), ("pydantic", "version.py"), ("luqum", "__init__.py"),
              ("re2", "_re2*"))


def _code() -> bytes:
    h = hashlib.sha256()
    for folder in _CODE_DIRS:
        for file in sorted((_WATCHER / folder).glob("*.py")):
            h.update(file.name.encode() + b"\x00" + file.read_bytes())
    h.update(Path(__file__).read_bytes())
    for name, marker in _LIBRARIES:
        h.update(library_mark(name, marker))
    return h.digest()


def rules_key(resolved: Path, source: str, text: str, channels: Iterable[str] | None,
              unusable: Mapping[str, str] | None) -> bytes:
    """What a rules text validates to depends on: the text, the name its problems and
    examples are reported under, the channels it may notify (None: any), those unusable
    and why, and the code and Python reading it."""
    known = b"\x00any" if channels is None else "\x00".join(sorted(set(channels))).encode()
    refused = "\x00".join(f"{k}\x01{v}" for k, v in sorted((unusable or {}).items()))
    h = hashlib.sha256()
    for part in (str(resolved).encode(), source.encode(), text.encode("utf-8"), known,
                 refused.encode(), sys.version.encode(), _code()):
        h.update(len(part).to_bytes(8, "big") + part)
    return h.digest()


def _read(file: Path, key: bytes) -> RuleSet | None:
    ruleset = kept(file, key)
    return ruleset if isinstance(ruleset, RuleSet) else None


def parse_rules_cached(text: str, source: str, channels: Iterable[str] | None = None,
                       unusable_channels: dict[str, str] | None = None,
                       env: Mapping[str, str] | None = None) -> RuleSet:
    """`parse_rules(text, source, channels, unusable_channels)`, from the cache when the
    same text was validated last time under the same name, channels and code."""
    env = os.environ if env is None else env
    channels = None if channels is None else tuple(channels)
    folder = cache_dir(env)
    if folder is None:
        return _validate(text, source, channels, unusable_channels)
    resolved = Path(source).resolve()
    key = rules_key(resolved, source, text, channels, unusable_channels)
    file = cache_file(folder, resolved, _SUFFIX)
    cached = _read(file, key)
    if cached is not None:
        return cached
    ruleset = _validate(text, source, channels, unusable_channels)
    keep(folder, file, key, ruleset)
    return ruleset


def _validate(text: str, source: str, channels: Iterable[str] | None,
              unusable_channels: dict[str, str] | None) -> RuleSet:
    from watcher.rules.load import parse_rules  # yaml, pydantic, luqum: only on a miss

    return parse_rules(text, source, channels, unusable_channels)


def load_rules_cached(path: str | os.PathLike[str], channels: Iterable[str] | None = None,
                      unusable_channels: dict[str, str] | None = None,
                      env: Mapping[str, str] | None = None) -> RuleSet:
    """`load_rules(path, channels, unusable_channels)`, from the cache when nothing it
    reads has changed."""
    try:
        # as load_rules reads it (Path.read_text: UTF-8, universal newlines), but once:
        # the text validated is the text the key was made of
        raw = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        from watcher.rules.load import load_rules

        return load_rules(Path(path), channels, unusable_channels)  # says why not
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    return parse_rules_cached(text, str(Path(path)), channels, unusable_channels, env)
