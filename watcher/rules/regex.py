"""Regular expressions on RE2: linear time, so no pattern can hang the daemon."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _re2() -> tuple[Any, Any]:
    """RE2 and its options, loaded by the first rule with a regular expression."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.case_sensitive = False  # words are matched case-folded, like Lucene's terms
    return re2, options


class RegexError(ValueError):
    """A pattern RE2 cannot run (backreferences, lookaround ...), with RE2's reason."""


def word_regex(pattern: str) -> Any:
    """A pattern that must match one whole word (RE2, case-insensitive).

    Words are searched in a text of one word per line, so the pattern is
    anchored to line starts and ends.
    """
    re2, options = _re2()
    try:
        re2.compile(pattern, options)
        return re2.compile(f"(?m)^(?:{pattern})$", options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(f"RE2 cannot run /{pattern}/: {reason}") from None


def regex_set(patterns: list[str]) -> Any:
    """One RE2 set of many word patterns: which of them match anywhere, in one pass."""
    re2, options = _re2()
    s = re2.Set.SearchSet(options)
    for p in patterns:
        s.Add(f"(?m)^(?:{p})$")
    s.Compile()
    return s
