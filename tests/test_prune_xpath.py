"""watcher.extract.prune_xpath selects what libxml2 selects: for trafilatura's own pruning
expressions and for the XPath subset it claims, on random and real trees."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
import trafilatura.xpaths as xpaths
from lxml import etree, html
from lxml.etree import XPath

from benchmarks.corpus import CorpusSpec, build, render_page
from watcher.extract import prune_xpath
from watcher.extract.page import extract_page
from watcher.extract.prune_xpath import PrunePath, Unsupported

REGEXP = {"re": "http://exslt.org/regular-expressions"}
SEEDS = Path(__file__).resolve().parent.parent / "seeds" / "feeds" / "articles"
TAGS = ["div", "section", "aside", "p", "span", "list", "item", "ol", "ul", "li", "details",
        "header", "h1", "a", "article", "main"]
ATTRIBUTES = ["id", "class", "style", "role", "aria-hidden", "data-component",
              "data-lp-replacement-content", "href", "title"]
WORDS = ["main", "content", "story", "body", "x", "hidden", "display:none", "display: none",
         "true", "false", "reply-", "hide-", "nav", "Nav", "NAV", "comment", "Comment",
         "commentary", "teaser", "Teaser", "caption", "bottom", "link", "border", "ad", " ad ",
         "MostPopularStories", "elementor-share-buttons", "comments-title", "cookie",
         "mvp-post-add-box", "infinite-scroll", "disqus_thread", ""]
SUBSET = [  # each construct of the subset, beyond the combinations trafilatura uses
    ".//*[@id|@class = 'nav']",
    ".//*[starts-with(@class|@id, 'reply-')]",
    ".//*[re:test(@id|@class, '^$')]",  # a pattern that matches the empty string
    ".//*[re:test(@class, 'NAV', 'i')]",
    ".//*[contains(translate(@class, 'ABN', 'abn'), 'nav')]",
    ".//*[translate(@id, 'abcx', 'A') = 'A']",  # characters beyond the target go
    ".//div[not(@class)]",
    ".//*[self::div and not(.//h1)]",
    ".//*[(self::p or self::span) and @role]",
    ".//*[@aria-hidden='true' or contains(@style, '')]",
    ".//*[self::div][@id][re:test(@class, 'a|b')]",
    ".//*[self::section or self::div][not(self::div) or re:test(@id, 'nav')]",
    ".//section",
    ".//*",
    ".//*[contains(@title, 'nav') and starts-with(@href, 'x')]",
    ".//*[re:test(translate(@class, 'N', 'n'), 'nav')]",
]


def original_expressions() -> list[Any]:
    """trafilatura's pruning expressions as libxml2 runs them (extraction in this
    process may already have put Python versions in their place)."""
    return [e.xpath if isinstance(e, PrunePath) else e
            for name in prune_xpath.PRUNE_LISTS for e in getattr(xpaths, name, [])]


def vocabulary() -> list[str]:
    """Pieces of the expressions' own literals, so that random values match often."""
    pieces = set(WORDS)
    for expression in original_expressions():
        for literal in re.findall(r"'([^']*)'", expression.path):
            pieces.update(p for p in re.split(r"[|()?:^$\\\[\]*+!]+", literal) if p)
    return sorted(pieces)


def random_tree(rng: random.Random, words: list[str]) -> Any:
    def value() -> str:
        parts = [rng.choice(words) for _ in range(rng.randint(0, 3))]
        return rng.choice(["", " ", "-", "_"]).join(parts)

    def element(depth: int) -> Any:
        el = etree.Element(rng.choice(TAGS))
        for name in rng.sample(ATTRIBUTES, rng.randint(0, 4)):  # in a random order
            el.set(name, value())
        el.text = rng.choice(["", "text", None])
        for _ in range(rng.randint(0, 4) if depth < 4 else 0):
            el.append(element(depth + 1))
        return el

    root = html.Element("body")
    for _ in range(rng.randint(1, 5)):
        root.append(element(1))
    # Through the HTML parser, as pages come: its elements, its attribute order.
    return html.document_fromstring(etree.tostring(root))


def paths(nodes: list[Any]) -> list[str]:
    return [n.getroottree().getpath(n) for n in nodes]


def assert_same(expression: Any, trees: list[Any]) -> None:
    fast = PrunePath(expression)
    for tree in trees:
        for node in (tree, *list(tree.iter(etree.Element))[1::7]):  # the root and inner ones
            assert paths(fast(node)) == paths(expression(node)), (
                f"{expression.path!r} on {etree.tostring(node)[:300]!r}")


@pytest.fixture(scope="module")
def trees() -> list[Any]:
    rng, words = random.Random(20261124), vocabulary()
    return [random_tree(rng, words) for _ in range(300)]


@pytest.mark.parametrize("index", range(len(original_expressions())))
def test_each_trafilatura_expression_selects_the_same_elements(index: int,
                                                                trees: list[Any]) -> None:
    assert_same(original_expressions()[index], trees)


@pytest.mark.parametrize("source", SUBSET)
def test_each_construct_of_the_subset_selects_the_same_elements(source: str,
                                                                trees: list[Any]) -> None:
    assert_same(XPath(source, namespaces=REGEXP), trees)


def test_random_values_do_match_the_expressions(trees: list[Any]) -> None:
    """The comparison above means little if nothing ever matched."""
    hits = [sum(len(x(t)) for t in trees) for x in original_expressions()]
    assert all(h > 0 for h in hits), hits


def real_pages() -> list[bytes]:
    pages = [p.read_bytes() for p in sorted(SEEDS.glob("*.html"))]
    docs = build(CorpusSpec(seed=3, feeds=6, items=10))
    return pages + [render_page(item, "http://127.0.0.1:1") for d in docs for item in d.items]


def test_real_pages_select_the_same_elements() -> None:
    trees = [html.fromstring(page) for page in real_pages()]
    for expression in original_expressions():
        assert_same(expression, trees)


def test_extraction_gives_the_same_text_either_way() -> None:
    pages = real_pages()
    prune_xpath.install()
    fast = [extract_page(p, "https://example.org/a", "text/html") for p in pages]
    lists = [getattr(xpaths, name) for name in prune_xpath.PRUNE_LISTS]
    saved = [list(expressions) for expressions in lists]
    try:
        for expressions in lists:
            expressions[:] = [e.xpath if isinstance(e, PrunePath) else e for e in expressions]
        slow = [extract_page(p, "https://example.org/a", "text/html") for p in pages]
    finally:
        for expressions, items in zip(lists, saved, strict=True):
            expressions[:] = items
    assert [e.text for e in fast] == [e.text for e in slow]
    assert any("missile" in e.text for e in fast)


def test_install_replaces_what_it_can_and_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    unsupported = XPath(".//div[1]")
    teasers = [XPath(".//*[self::div][contains(@class, 'teaser')]"), unsupported]
    monkeypatch.setattr(xpaths, "TEASER_DISCARD_XPATH", teasers)
    first = prune_xpath.install()
    assert isinstance(teasers[0], PrunePath)
    assert teasers[1] is unsupported  # left to libxml2
    assert first.left == (".//div[1]",)
    assert prune_xpath.install() == first  # a second call changes nothing
    assert not isinstance(teasers[0].xpath, PrunePath)


@pytest.mark.parametrize("source", [
    "//div", "descendant::div", ".//div/p", ".//div[1]", ".//*[position() = 1]",
    ".//div[@id != 'x']", ".//*[count(p) > 1]", ".//*[normalize-space(@class)]",
    ".//*[@class = @id]", ".//*[self::div]//p", ".//*[@id or 1]",
])
def test_xpath_outside_the_subset_is_refused(source: str) -> None:
    with pytest.raises(Unsupported):
        PrunePath(XPath(source))


def test_a_whole_document_goes_to_libxml2() -> None:
    tree = html.fromstring("<html><body><div class='nav'>x</div><p>y</p></body></html>")
    expression = XPath(".//*[self::div][contains(@class, 'nav')]")
    document = tree.getroottree()
    assert paths(PrunePath(expression)(document)) == paths(expression(document)) != []


def test_comments_and_processing_instructions_are_not_elements() -> None:
    tree = html.fromstring("<div><!-- c --><?pi x?><p>a</p></div>")
    expression = XPath(".//*")
    assert paths(PrunePath(expression)(tree)) == paths(expression(tree)) == ["/html/body/div/p"]


# Pruning lists trafilatura has that watcher's extraction never reaches: comments are
# not extracted (comments=False) and metadata is watcher's own (with_metadata=False).
NOT_REACHED = {"COMMENTS_DISCARD_XPATH", "AUTHOR_DISCARD_XPATHS"}


def _lists_trafilatura_prunes_with() -> set[str]:
    """The module-level lists trafilatura's own code hands to prune_unwanted_nodes."""
    import ast

    import trafilatura

    names: set[str] = set()
    for source in Path(trafilatura.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == \
                    "prune_unwanted_nodes" and len(node.args) >= 2:
                names |= {n.id for n in ast.walk(node.args[1])
                          if isinstance(n, ast.Name) and n.id.isupper()}
    return names


def test_install_replaces_every_pruning_expression_of_the_installed_trafilatura() -> None:
    """The day a trafilatura release changes an expression beyond the subset, or adds or
    renames a pruning list, this fails: the speed-up does not vanish unnoticed."""
    import trafilatura

    used = _lists_trafilatura_prunes_with()
    assert used, "trafilatura no longer calls prune_unwanted_nodes with its lists"
    assert used - NOT_REACHED == set(prune_xpath.PRUNE_LISTS), (
        f"trafilatura {trafilatura.__version__} prunes with {sorted(used)}")
    originals = original_expressions()
    for expression in originals:
        PrunePath(expression)  # raises Unsupported for one outside the subset
    installed = prune_xpath.install()
    assert installed.complete and installed.left == () and installed.missing == ()
    assert installed.replaced == installed.total == len(originals) > 0
    assert all(isinstance(e, PrunePath) for name in prune_xpath.PRUNE_LISTS
               for e in getattr(xpaths, name))


def test_install_says_what_it_leaves_to_libxml2(monkeypatch: pytest.MonkeyPatch) -> None:
    unsupported = XPath(".//div[position() = 1]")
    monkeypatch.setattr(xpaths, "TEASER_DISCARD_XPATH", [unsupported])
    monkeypatch.delattr(xpaths, "DISCARD_IMAGE_ELEMENTS")
    installed = prune_xpath.install()
    assert not installed.complete
    assert installed.left == (".//div[position() = 1]",)
    assert installed.missing == ("DISCARD_IMAGE_ELEMENTS",)
    assert installed.replaced == installed.total - 1
