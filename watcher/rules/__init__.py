"""The rule language: load and validate rules.yaml, compile it, match articles."""

from watcher.rules.load import RuleSet, load_rules, parse_rules
from watcher.rules.match import CompiledRules, compile_rules

__all__ = ["CompiledRules", "RuleSet", "compile_rules", "load_rules", "parse_rules"]
