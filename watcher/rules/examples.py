"""Run the `examples:` written next to each rule: articles it must or must not match."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.rules.match import CompiledRules
from watcher.rules.ruleset import Example, RuleSet


@dataclass(frozen=True)
class ExampleFailure:
    example: Example
    detail: str

    def __str__(self) -> str:
        e = self.example
        want = "should match" if e.expect_match else "should not match"
        return f"{e.where}: rule {e.rule!r}: example {e.label} {want}, but {self.detail}"


def run_examples(ruleset: RuleSet, compiled: CompiledRules | None = None
                 ) -> tuple[int, list[ExampleFailure]]:
    """(examples run, the ones that failed)."""
    compiled = compiled or CompiledRules(ruleset)
    failures: list[ExampleFailure] = []
    for ex in ruleset.examples:
        found = next((m for m in compiled.match(ex.article) if m.rule == ex.rule), None)
        if ex.expect_match and found is None:
            failures.append(ExampleFailure(ex, "it did not match"))
        elif not ex.expect_match and found is not None:
            words = ", ".join(f"{h.matched!r} ({h.phrase}) in {h.field}" for h in found.hits)
            failures.append(ExampleFailure(ex, f"it matched: {words or 'feed/tag terms'}"))
    return len(ruleset.examples), failures
