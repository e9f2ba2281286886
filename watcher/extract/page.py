"""Article page -> main text (trafilatura) and metadata."""

from __future__ import annotations

import codecs
import copy
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any

from watcher.core.errors import ExtractError
from watcher.core.models import Extracted
from watcher.extract.choose import SHORT_RATIO
from watcher.extract.metadata import page_metadata

if TYPE_CHECKING:
    from watcher.extract.prune_xpath import Installed

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
_SINGLE_BYTE_LATIN = {"cp1250", "cp1252", "cp1257", "latin_1", "iso8859_15", "iso8859_2",
                      "iso8859_13", "iso8859_4", "cp1254", "iso8859_9"}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_page(body: bytes, content_type: str | None) -> str:
    """Bytes -> text: the HTTP charset, else the page's meta tag, else detection."""
    declared = _CHARSET.search(content_type or "")
    candidates = [declared.group(1) if declared else None]
    meta = _META_CHARSET.search(body[:4096])
    candidates.append(meta.group(1).decode("ascii", "ignore") if meta else None)
    for i, name in enumerate(candidates):
        codec = _codec(name)
        if i == 1 and codec and codec.startswith(("utf-16", "utf-32")):
            # A meta tag could only be read because the bytes are ASCII-compatible:
            # the HTML standard reads such a page as UTF-8.
            codec = "utf-8"
        if codec:
            try:
                return body.decode(codec)
            except UnicodeDecodeError:
                continue
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        if "utf-8" in map(_codec, candidates) and _mostly_utf8(body):
            # Declared UTF-8 with a stray byte or two (a pasted Latin-1 comment): read
            # as UTF-8 with replacements, as browsers do, rather than detect a
            # single-byte charset that garbles every character of the text.
            return body.decode("utf-8", errors="replace")
        from charset_normalizer import from_bytes  # installed with trafilatura/httpx

        best = from_bytes(body).best()
        if best is None:
            return body.decode("windows-1252", errors="replace")
        if best.encoding in _SINGLE_BYTE_LATIN:
            # Detection cannot tell these apart on short English text; the HTML
            # standard's default for undeclared Western pages is windows-1252.
            return body.decode("windows-1252", errors="replace")
        return str(best)


def _mostly_utf8(body: bytes) -> bool:
    """More characters read as valid multi-byte UTF-8 than bytes that are not."""
    text = body.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return non_ascii - invalid > invalid


# What trafilatura's load_html strips before lxml sees the text: characters XML
# cannot hold (lxml refuses them in the elements trafilatura builds). Deleted from
# UTF-8 bytes, where these bytes never occur inside a multi-byte character.
_XML_INVALID_BYTES = bytes(range(0x00, 0x09)) + b"\x0b\x0c" + bytes(range(0x0e, 0x20))
_XML_NONCHARS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")  # U+FFFE, U+FFFF
# The two repairs of trafilatura's repair_faulty_html, which cannot be called alone:
# it also runs a regex over the whole page, the cost `translate` avoids below.
_DOCTYPE_WITH_SLASH = re.compile(r"^< ?! ?DOCTYPE[^>]*/[^<>]*>", re.IGNORECASE)
_SELF_CLOSED_HTML = re.compile(r"(<html.*?)\s*/>", re.IGNORECASE)
# What trafilatura's cleaning does more than delete: turns a text-heavy form into
# a div, a figure holding a table into a div, salvages formulas from math, and
# reads the head's JSON-LD to tell a forum thread.
_CLEANED_WITH_CARE = frozenset({"form", "figure", "math", "head", "script"})


def parse_page(text: str) -> Any:
    """Decoded page -> lxml tree, repaired as trafilatura's load_html repairs it.

    lxml is handed UTF-8 bytes rather than the str: parsing bytes is much faster,
    and the characters XML cannot hold go with one C-level `translate`
    instead of a regex over the whole page.
    """
    import lxml.html

    beginning = text[:50].lower()
    if "doctype" in beginning:
        # libxml2 drops the page after a doctype carrying a "/" on the first line
        # (https://bugs.launchpad.net/lxml/+bug/1955915).
        first, newline, rest = text.partition("\n")
        text = _DOCTYPE_WITH_SLASH.sub("", first, count=1) + newline + rest
    for line in text[:4096].splitlines()[:4]:
        if "<html" in line and line.endswith("/>"):
            text = _SELF_CLOSED_HTML.sub(r"\1>", text, count=1)
            break
    data = text.encode("utf-8", "replace").translate(None, _XML_INVALID_BYTES)
    if b"\xef\xbf" in data:
        for nonchar in _XML_NONCHARS:
            data = data.replace(nonchar, b"")
    if not data.strip():
        return None
    tree = lxml.html.fromstring(data, parser=_html_parser())
    # trafilatura's sanity check: no "html" at the start and almost nothing parsed
    # means this was not an HTML page.
    if tree is None or ("html" not in beginning and len(tree) < 2):
        return None
    return tree


@cache
def _html_parser() -> Any:
    """trafilatura's HTML parser, with lxml.html's element classes chosen in C.

    lxml.html picks each element's class in a Python method, called whenever an
    element is first touched from Python, a measurable share of a page's CPU
    (benchmarks/RESULTS.md). The classes that lookup adds for form fields
    (`.value` and the like) are not used by the extraction; every element is still
    an HtmlElement.
    """
    import lxml.etree
    import lxml.html
    from trafilatura.utils import HTML_PARSER

    parser = HTML_PARSER.copy()  # its options, as trafilatura parses
    parser.set_element_class_lookup(lxml.etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement, comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction, entity=lxml.html.HtmlEntity))
    return parser


@cache
def _dropped_tags() -> tuple[str, ...]:
    from trafilatura.settings import MANUALLY_CLEANED

    return tuple(t for t in MANUALLY_CLEANED if t not in _CLEANED_WITH_CARE)


def drop_boilerplate_elements(tree: Any) -> None:
    """Delete up front the elements trafilatura's cleaning deletes anyway.

    trafilatura copies the whole tree twice before it cleans it; removing navigation,
    asides, footers and scripts first makes those copies and every later pass work on
    a smaller tree, with the same text.
    """
    import lxml.etree

    lxml.etree.strip_elements(tree, *_dropped_tags(), with_tail=False)
    for script in list(tree.iter("script")):
        if script.get("type") != "application/ld+json":
            script.drop_tree()  # keeps the text after it, as trafilatura's cleaning does


@cache
def _base_options(fast: bool) -> Any:
    """Built once: building them reads trafilatura's config file's values every
    time, which cost about as much as parsing the page.

    fast: trafilatura's own extraction alone, favouring precision. Otherwise its
    default settings, which also try readability and jusText and keep the best.
    """
    from trafilatura.settings import Extractor

    return Extractor(output_format="python", fast=fast, precision=fast, comments=False,
                     tables=True, with_metadata=False)


# When the fast extraction looks cut short, the full one runs. Once its menus, asides
# and footers are gone, most of what a page shows is its main text; a fast text under
# two-fifths of it has more often dropped a part of the article (a list, a section under
# a heading, a second text block) than the page is mostly boilerplate. Chosen on the
# whole development set for recall first, then CPU, and checked on random halves of it
# (benchmarks/RESULTS.md).
MIN_VISIBLE_SHARE = 0.4
SHORT_TEXT = 2000


def cut_short(text: str, visible_chars: int, feed_chars: int = 0) -> bool:
    """Whether the fast extraction's text is worth a second, full extraction: none at
    all, little of the page's visible text, short, or so much shorter than the feed's
    own text that the feed's would be kept (watcher.extract.choose.SHORT_RATIO)."""
    chars = len(text)
    return (chars < SHORT_TEXT or chars < MIN_VISIBLE_SHARE * visible_chars
            or chars < SHORT_RATIO * feed_chars)


def visible_chars(tree: Any) -> int:
    """The characters of the page's body, spaces collapsed (its scripts and styles
    already gone): the head's title and structured data are not shown as text."""
    body = tree.find("body")
    return sum(len(part) + 1 for part in (body if body is not None else tree)
               .text_content().split())


@cache
def _prune_in_python() -> Installed:
    """trafilatura's boilerplate-pruning XPath expressions, run in Python instead
    (see watcher.extract.prune_xpath): libxml2 calling back into Python for their regular
    expressions were a large share of a page's extraction."""
    from watcher.extract import prune_xpath

    return prune_xpath.install()


# Set while watcher's fast pass runs (per thread: a context variable).
_IN_FAST_PASS: ContextVar[bool] = ContextVar("watcher_fast_pass", default=False)


class _OutsideFastPass:
    """trafilatura's precision-only discard expressions, read through unchanged,
    except by watcher's fast pass, which reads none.

    They prune `<header>` elements, and blocks whose class names a bottom or a link or
    whose style draws a border. On the development set they removed far more main text
    (an article's own header and lead, framed paragraphs) than boilerplate the rest of
    the precision focus lets through (benchmarks/RESULTS.md)."""

    def __init__(self, expressions: list[Any]) -> None:
        self.expressions = expressions  # trafilatura's own list, as prune_xpath fills it

    def __iter__(self) -> Iterator[Any]:
        return iter(() if _IN_FAST_PASS.get() else self.expressions)


@contextmanager
def fast_pass() -> Iterator[None]:
    """trafilatura's precision focus, as watcher's fast pass runs it, within."""
    _skip_precision_discards_in_fast_pass()
    token = _IN_FAST_PASS.set(True)
    try:
        yield
    finally:
        _IN_FAST_PASS.reset(token)


@cache
def _skip_precision_discards_in_fast_pass() -> None:
    """Only the precision focus reads the list (in prune_unwanted_sections), and in
    watcher only the fast pass asks for that focus; other callers in the process,
    trafilatura's own extract() included, still get every expression."""
    from trafilatura import main_extractor

    expressions = getattr(main_extractor, "PRECISION_DISCARD_XPATH", None)
    if isinstance(expressions, list):
        # trafilatura only iterates over it (prune_unwanted_nodes), which the view supports
        main_extractor.PRECISION_DISCARD_XPATH = _OutsideFastPass(  # type: ignore[assignment]
            expressions)


def _extraction_options(url: str | None, fast: bool = True) -> Any:
    options = copy.copy(_base_options(fast))
    options.url = options.source = url
    return options


def fast_text(text: str, url: str | None) -> tuple[str, int, Any]:
    """trafilatura's fast extraction favouring precision (less its precision-only
    discards), on our parsed and pre-cleaned tree: the text, the page's visible
    characters, and its metadata (None when it is not an HTML page)."""
    import trafilatura
    from trafilatura.settings import Document

    tree = parse_page(text)
    if tree is None:
        return "", 0, None
    meta = page_metadata(tree)
    drop_boilerplate_elements(tree)
    _prune_in_python()
    with fast_pass():
        doc = trafilatura.bare_extraction(tree, options=_extraction_options(url))
    page = (doc.text if isinstance(doc, Document) else "") or ""
    return page.strip(), visible_chars(tree), meta


def full_text(text: str, url: str | None) -> str:
    """trafilatura's default extraction, with its readability and jusText fallbacks.

    On a freshly parsed tree: the elements dropped up front for the fast pass
    (navigation, noscript, ...) are where the fallbacks find the text of some pages.
    """
    import trafilatura
    from trafilatura.settings import Document

    tree = parse_page(text)
    if tree is None:
        return ""
    _prune_in_python()
    doc = trafilatura.bare_extraction(tree, options=_extraction_options(url, fast=False))
    return ((doc.text if isinstance(doc, Document) else "") or "").strip()


def merge_texts(full: str, fast: str) -> str:
    """The full extraction's text, then the fast one's paragraphs it lacks.

    The two passes each keep paragraphs the other drops (the fast one, on the pre-cleaned
    tree, headings and list items the fallbacks lose; the full one whole blocks), and for
    an alert a sentence missed costs more than a line of boilerplate let in. A fast
    paragraph counts as present when the full text holds it, spaces collapsed.
    """
    if not full or not fast:
        return full or fast
    present = " ".join(full.split())
    missing = [line for line in fast.splitlines()
               if line.strip() and " ".join(line.split()) not in present]
    return "\n".join([full, *missing]) if missing else full


def _extract_text(text: str, url: str | None, feed_chars: int) -> tuple[str, Any]:
    """Fast first; when its text looks cut short, the full extraction too, both kept."""
    fast, visible, meta = fast_text(text, url)
    if meta is None or not cut_short(fast, visible, feed_chars):
        return fast, meta
    return merge_texts(full_text(text, url), fast), meta


def extract_page(body: bytes, url: str | None = None, content_type: str | None = None,
                 *, feed_chars: int = 0) -> Extracted:
    """Main text without navigation, related links, comments or footer.

    feed_chars: the length of the feed's own text for this page, when known; a page
    text much shorter than it is given the full extraction before the feed's wins.
    """
    text = decode_page(body, content_type)
    try:
        page_text, meta = _extract_text(text, url, feed_chars)
    except Exception as exc:  # trafilatura can raise from deep inside lxml
        raise ExtractError(f"{url or 'page'}: trafilatura failed: {exc}") from None
    if meta is None:
        return Extracted(text="")
    language = meta["language"].replace("_", "-").split("-")[0].lower() \
        if meta["language"] else None
    return Extracted(
        # trafilatura's extract() hands its text back in NFC; bare_extraction does not.
        text=unicodedata.normalize("NFC", page_text),
        title=meta["title"], author=meta["author"], language=language,
        sitename=meta["sitename"], canonical=meta["canonical"],
        date=meta["date"][:10] if meta["date"] else None,
    )
