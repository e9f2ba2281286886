"""Untrusted text made safe to show: on a terminal, in a log, in a plain-text mail.

Feed content may carry terminal escape sequences (ANSI CSI; OSC, which sets a
window title or makes a hyperlink), control characters (BEL, NUL, a CR that
writes over the start of a line) and bidirectional overrides that make text
read other than it is. `printable` takes them out where text is printed; what
is stored keeps them. `redact` takes credentials and token-like query values
out of URLs and of the errors that quote them. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Escape sequences (ECMA-48), in their 7-bit (ESC ...) and 8-bit (C1) forms. A
# string command (OSC, DCS, SOS, PM, APC) runs to BEL or ST; one left open ends
# at the line's end, so that it cannot swallow a whole text.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI: colours, cursor, clear
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?")  # the other escapes: ESC c (reset), ESC 7 ...
# C0 and C1 controls (but LF and tab), DEL
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible formatting: bidirectional embeddings, overrides, isolates and marks;
# zero-width space and BOM. Zero-width (non-)joiners stay: scripts and emoji need them.
_FORMAT = re.compile("[\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_NEWLINES = re.compile("\r\n|[\r\u2028\u2029\x85]")


def printable(text: str | None, *, multiline: bool = False, limit: int | None = None) -> str:
    """`text` without escape sequences and control characters, for a person to read.

    One line (white space folded) unless `multiline`, which keeps line breaks
    (every CR, CR LF and Unicode separator becomes LF) and tabs. With `limit`,
    a line longer than that ends in "…" at `limit` characters.
    """
    out = _FORMAT.sub("", _SEQUENCE.sub("", text or ""))
    if multiline:
        out = _CONTROL.sub("", _NEWLINES.sub("\n", out))
        lines = out.split("\n")
    else:
        lines = [" ".join(_CONTROL.sub(" ", out).split())]
    if limit is not None:
        lines = [ln if len(ln) <= limit else ln[:limit - 1].rstrip() + "…" for ln in lines]
    return "\n".join(lines)


def one_line(text: str | None, limit: int = 200) -> str:
    """A title, a name, an error: printable, on one line, at most `limit` characters."""
    return printable(text, limit=limit)


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, the cut marked with "…"; nothing else changed."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- secrets in URLs -----------------------------------------------------------

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@?#]+(?::[^/\s@?#]*)?@")
_PARAM = re.compile(r"([?&;#])([^=&;#\s'\"<>]+)=([^&;#\s'\"<>]*)")
_NAME_PARTS = re.compile(r"[-_.\s]+|(?<=[a-z])(?=[A-Z])")
# A query parameter is secret when its name, or a word of it, is one of these
# (auth_token, access-token, private_token, X-Amz-Signature, apiKey, sig ...).
_SECRET_WORDS = frozenset({
    "token", "key", "apikey", "secret", "signature", "sig", "password", "passwd", "pwd",
    "pass", "auth", "authorization", "credential", "credentials", "code", "session",
    "sessionid", "sid", "jwt", "bearer", "accesstoken", "authtoken", "hmac", "otp"})


def _is_secret(name: str) -> bool:
    words = [w.lower() for w in _NAME_PARTS.split(name) if w]
    return name.lower() in _SECRET_WORDS or any(w in _SECRET_WORDS for w in words)


def _hide_param(m: re.Match[str]) -> str:
    sep, name, value = m.groups()
    if not value or not _is_secret(name):
        return m.group(0)
    # punctuation after a URL quoted in a sentence ("...&sig=abc: answered 403") stays
    kept = value.rstrip(".,:;)]")
    return f"{sep}{name}=***{value[len(kept):]}"


def redact(text: str | None, secrets: Iterable[str] = ()) -> str:
    """`text` (a URL, or a message quoting some) without credentials or tokens.

    Gone: each of `secrets` (the configured passwords and keys), the user and
    password of a URL, and the value of any query (or fragment) parameter named
    like a secret. The one function for this: logs, CLI output and alerts about
    feeds all use it.
    """
    out = text or ""
    for secret in secrets:
        if len(secret) >= 4:  # a shorter one would blank common words
            out = out.replace(secret, "***")
    out = _URL_CREDENTIALS.sub(r"\1***@", out)
    return _PARAM.sub(_hide_param, out)
