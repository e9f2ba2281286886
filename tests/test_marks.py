"""The combining-mark tables kept in watcher.core.marks against unicodedata itself."""

from __future__ import annotations

import unicodedata

import pytest

from watcher.core import marks
from watcher.core.text import fold, words_of


def test_kept_tables_are_what_unicodedata_says() -> None:
    if unicodedata.unidata_version != marks.UNIDATA_VERSION:
        pytest.fail(f"Python's Unicode is {unicodedata.unidata_version}, the tables are for "
                    f"{marks.UNIDATA_VERSION}: run `python -m watcher.core.marks`")
    assert marks.marks() == marks.scan()


def test_scan_covers_every_mark_and_only_marks() -> None:
    found, combining = marks.scan()
    inside = {cp for a, b in found for cp in range(a, b + 1)}
    expected = {cp for cp in range(0x300, 0x10000) if unicodedata.category(chr(cp))[0] == "M"}
    assert inside == expected
    stripped = {cp for a, b in combining for cp in range(a, b + 1)}
    assert stripped <= inside
    assert 0x0301 in stripped  # COMBINING ACUTE ACCENT
    assert 0x0903 in inside - stripped  # DEVANAGARI SIGN VISARGA: a mark of class 0


def test_text_uses_the_tables() -> None:
    assert fold("Café Déjà") == "cafe deja"
    assert fold("Café", accents=False) == "café"
    # A Devanagari word keeps its vowel signs inside the word.
    assert len(words_of("नमस्ते दुनिया")) == 2
