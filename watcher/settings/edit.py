"""Add feeds to config/watcher.yaml without losing its comments and layout."""

from __future__ import annotations

from collections.abc import Iterable
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from watcher.core.errors import ConfigError


def add_feeds(path: Path, feeds: Iterable[dict[str, Any]]) -> list[str]:
    """Append feeds (skipping names or URLs already present); returns the names added.

    The file is written to a temporary name and renamed, so a crash cannot
    leave half a config behind.
    """
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except Exception as exc:  # ruamel raises many types for bad YAML
        raise ConfigError(f"{path}: cannot edit: {exc}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    seq = doc.get("feeds")
    if seq is None:
        seq = CommentedSeq()
        doc["feeds"] = seq
    names = {f.get("name") for f in seq if isinstance(f, dict)}
    urls = {f.get("url") for f in seq if isinstance(f, dict)}
    added: list[str] = []
    for feed in feeds:
        if feed["name"] in names or feed["url"] in urls:
            continue
        item = CommentedMap(feed)
        item.fa.set_flow_style()
        for key, value in item.items():
            if isinstance(value, list):
                inner = CommentedSeq(value)
                inner.fa.set_flow_style()
                item[key] = inner
        seq.append(item)
        names.add(feed["name"])
        urls.add(feed["url"])
        added.append(feed["name"])
    if added:
        out = StringIO()
        yaml.dump(doc, out)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(out.getvalue(), encoding="utf-8")
        tmp.replace(path)
    return added
