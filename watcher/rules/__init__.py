"""The rule language: load and validate rules.yaml, compile it, match articles."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watcher.rules.load import load_rules, parse_rules
    from watcher.rules.match import CompiledRules, compile_rules
    from watcher.rules.ruleset import RuleSet

__all__ = ["CompiledRules", "RuleSet", "compile_rules", "load_rules", "parse_rules"]

_MODULE_OF = {"RuleSet": "ruleset", "load_rules": "load", "parse_rules": "load",
              "CompiledRules": "match", "compile_rules": "match"}


def __getattr__(name: str) -> Any:
    """The exports load on first use: a command that needs only part of the rule
    language (or none of it) does not pay for importing its validation and
    compiler at start-up."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"watcher.rules.{module}"), name)
    globals()[name] = value
    return value
