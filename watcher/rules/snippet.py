"""The sentence around a hit, for people to see why an alert fired."""

from __future__ import annotations

import re

# A sentence ends after . ! ? or … and any closing quotes or brackets, when
# the next one starts with a capital or a digit; the boundary is the white
# space in between, so a closing quote stays with its sentence. A blank line
# always ends one.
_BOUNDARY = re.compile(r"[.!?…][\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[A-Z0-9])|(\n\s*\n)")


def _boundaries(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _BOUNDARY.finditer(text):
        group = 1 if m.group(1) is not None else 2
        out.append((m.start(group), m.end(group)))
    return out


def snippet(text: str, start: int, end: int, width: int = 280) -> tuple[str, int, int]:
    """Return (snippet, hit_start, hit_end) with offsets into the snippet.

    The snippet is the sentence that holds [start, end), trimmed to about
    `width` characters around the hit with an ellipsis where it was cut, and
    with runs of white space folded to one space.
    """
    # Only the neighbourhood of the hit can end up in the snippet: look there alone.
    lo, hi = max(0, start - 2 * width), min(len(text), end + 2 * width)
    sent_start, sent_end = lo, hi
    for b_start, b_end in _boundaries(text[lo:hi]):
        if lo + b_end <= start:
            sent_start = lo + b_end
        elif lo + b_start >= end:
            sent_end = lo + b_start
            break
    lead, trail = "", ""
    if end - sent_start > width // 2 + (end - start) and start - sent_start > width // 2:
        sent_start = text.rfind(" ", sent_start, start - width // 2) + 1 or start - width // 2
        lead = "…"
    if sent_end - sent_start > width:
        cut = text.rfind(" ", end, sent_start + width)
        sent_end = cut if cut > end else min(sent_end, sent_start + width)
        trail = "…"
    before = _fold(text[sent_start:start]).lstrip()
    hit = _fold(text[start:end])
    after = _fold(text[end:sent_end]).rstrip()
    out = lead + before + hit + after + trail
    hs = len(lead) + len(before)
    return out, hs, hs + len(hit)


def _fold(s: str) -> str:
    return re.sub(r"\s+", " ", s)
