"""A validated rule set as plain data: what watcher.rules.load makes of rules.yaml, and
what the rules cache keeps for the next start.

Importing this module loads neither the YAML parser, nor pydantic and the rules'
models, nor the query parser (luqum): a rule set unpickled from the cache is compiled
and matched without them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from watcher.core.models import Article, Rule

if TYPE_CHECKING:
    from watcher.rules.query import Node


@dataclass(frozen=True)
class Example:
    """One of a rule's examples: an article it must (or must not) match."""

    rule: str
    expect_match: bool
    article: Article
    where: str  # file:line:col
    label: str  # the example as written, shortened


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str
    digest: str = ""  # sha256 of the file's text: what a reload compares
    examples: tuple[Example, ...] = ()
    trees: dict[str, Node] | None = field(default=None, compare=False, repr=False)

    def channels(self) -> set[str]:
        return {c for r in self.rules for c in r.notify}


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
