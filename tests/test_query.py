"""The query language, table-driven: rule spec + article in, match or no match out.

Plus query validation (file:line:col: rule: reason), examples, the JSON Schema,
explanations (hits with offsets) and the rules commands.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer, WebhookReceiver
from tests.test_e2e import SEED_TITLE, VARIANT_TITLE, write_config
from watcher.core.errors import RuleError
from watcher.core.models import Article
from watcher.extract.page import extract_page
from watcher.rules import compile_rules, parse_rules
from watcher.rules.examples import run_examples
from watcher.rules.schema import rules_schema_text

ARTICLES = ROOT / "seeds" / "feeds" / "articles"


def article(body: str = "", title: str = "", summary: str = "", feed: str = "world",
            tags: tuple[str, ...] = ("news",), language: str | None = None,
            author: str | None = None, url: str | None = "https://news.example/a") -> Article:
    return Article(feed=feed, entry_id="e1", url=url, title=title, summary=summary, body=body,
                   text_source="page", published=None,
                   fetched_at=datetime(2024, 5, 21, 12, 0, tzinfo=UTC), tags=tags,
                   language=language, author=author)


def compiled(*specs: dict[str, Any]):
    rules = [{"name": f"r{i}", **spec, "notify": ["c"]} for i, spec in enumerate(specs)]
    text = yaml.safe_dump({"rules": rules}, allow_unicode=True)
    return compile_rules(parse_rules(text, "rules.yaml", channels=["c"]))


def Q(query: str, **options: Any) -> dict[str, Any]:
    return {"query": query, **options}


def page_body(name: str) -> str:
    return extract_page((ARTICLES / name).read_bytes(), f"https://news.example/{name}",
                        "text/html; charset=utf-8").text


TM = Q('"tactical missile"')

CASES = [
    # --- bare terms, phrases and the default operator (OR, as in Lucene)
    pytest.param(Q("missile"), "a missile test", True, id="bare-term"),
    pytest.param(Q("tactical missile"), "a tactical retreat", True, id="default-or-one-term"),
    pytest.param(Q("tactical missile", default_operator="AND"), "a tactical retreat", False,
                 id="default-and-needs-both"),
    pytest.param(Q("tactical missile", default_operator="AND"), "missile was tactical", True,
                 id="default-and-any-order"),
    pytest.param(TM, "a new tactical missile system", True, id="phrase"),
    pytest.param(TM, "new missile tactics", False, id="phrase-reversed-missile-tactics"),
    pytest.param(TM, "a tactical retreat, then a missile strike", False, id="phrase-far-apart"),
    pytest.param(TM, "tactical nuclear missile", False, id="phrase-word-between"),
    pytest.param(Q("“tactical missile”"), "tactical missiles", True, id="curly-quoted-phrase"),
    # --- AND / OR / NOT / + / - / parentheses
    pytest.param(Q("wildfire AND evacuation"), "wildfire forces evacuations", True, id="and"),
    pytest.param(Q("wildfire AND evacuation"), "wildfire contained", False, id="and-one-missing"),
    pytest.param(Q("Pyongyang OR Seoul"), "talks in Seoul", True, id="or"),
    pytest.param(Q("Pyongyang OR Seoul"), "talks in Tokyo", False, id="or-none"),
    pytest.param(Q('"tactical missile" AND NOT "video game"'),
                 "a tactical missile in a new video game", False, id="and-not-present"),
    pytest.param(Q('"tactical missile" AND NOT "video game"'), "a tactical missile test", True,
                 id="and-not-absent"),
    pytest.param(Q('"tactical missile" -game'), "tactical missile game", False, id="minus"),
    pytest.param(Q('"tactical missile" -game'), "tactical missile test", True, id="minus-absent"),
    pytest.param(Q("+missile tactical drone"), "a missile", True, id="plus-required-only"),
    pytest.param(Q("+missile tactical drone"), "a tactical drone", False, id="plus-missing"),
    pytest.param(Q("(Pyongyang OR Seoul) AND missile"), "Seoul fired a missile", True,
                 id="parentheses"),
    pytest.param(Q("(Pyongyang OR Seoul) AND missile"), "Seoul held a parade", False,
                 id="parentheses-and-missing"),
    pytest.param(Q("missile AND NOT (game OR film)"), "a missile film", False,
                 id="not-group"),
    # --- fields
    pytest.param(Q("title:missile"), {"title": "Missile test", "body": "x"}, True,
                 id="title-prefix"),
    pytest.param(Q("title:missile"), {"title": "News", "body": "missile"}, False,
                 id="title-prefix-hit-in-body"),
    pytest.param(Q('body:"tactical missile"'), {"title": "tactical missile", "body": "x"}, False,
                 id="body-prefix-hit-in-title"),
    pytest.param(Q("summary:missile"), {"summary": "a missile"}, True, id="summary-prefix"),
    pytest.param(Q("author:Reuters AND missile"), {"body": "missile", "author": "Reuters staff"},
                 True, id="author-prefix"),
    pytest.param(Q("url:example AND missile"), {"body": "missile",
                                                "url": "https://www.example.com/x"},
                 True, id="url-prefix"),
    pytest.param(Q("feed:world AND missile"), {"body": "missile", "feed": "world"}, True,
                 id="feed-prefix"),
    pytest.param(Q("feed:asia AND missile"), {"body": "missile", "feed": "world"}, False,
                 id="feed-prefix-other-feed"),
    pytest.param(Q("tag:news AND missile"), {"body": "missile"}, True, id="tag-prefix"),
    pytest.param(Q("tag:sport AND missile"), {"body": "missile"}, False, id="tag-prefix-miss"),
    pytest.param(Q("title:(missile OR rocket)"), {"title": "Rocket launch"}, True,
                 id="field-group"),
    pytest.param(Q("missile", fields=["title"]), {"title": "x", "body": "missile"}, False,
                 id="fields-option-scopes-bare-terms"),
    pytest.param(Q("missile", feeds=["asia"]), {"body": "missile", "feed": "world"}, False,
                 id="feeds-option"),
    pytest.param(Q("missile", tags=["news", "x"]), {"body": "missile"}, True, id="tags-option"),
    pytest.param(Q("missile", tags=["sport"]), {"body": "missile"}, False, id="tags-option-miss"),
    pytest.param(Q("missile", languages=["en"]), {"body": "missile", "language": "en-GB"}, True,
                 id="languages-option"),
    pytest.param(Q("missile", languages=["de"]), {"body": "missile", "language": "en"}, False,
                 id="languages-option-miss"),
    pytest.param(Q("missile", languages=["en"]), {"body": "missile"}, False,
                 id="languages-unknown-is-und"),
    # --- proximity (Lucene sloppy phrase)
    pytest.param(Q('"tactical missile"~3'), "a tactical long range guided missile", True,
                 id="proximity-within"),
    pytest.param(Q('"tactical missile"~3'), "missile tactics", True,
                 id="proximity-any-order"),
    pytest.param(Q('"tactical missile"~1'), "missile tactics", False,
                 id="proximity-swap-costs-two"),
    pytest.param(Q('"tactical missile"~3'),
                 "a tactical retreat was ordered before the long missile strike", False,
                 id="proximity-too-far"),
    # --- wildcards and regular expressions
    pytest.param(Q("missil*"), "Missiles flew", True, id="prefix-wildcard"),
    pytest.param(Q("missil*"), "antimissile shield", False, id="prefix-wildcard-word-start"),
    pytest.param(Q("title:evacu*"), {"title": "Evacuations ordered"}, True,
                 id="prefix-wildcard-in-field"),
    pytest.param(Q("/missiles?/"), "MISSILES flew", True, id="regex-whole-word"),
    pytest.param(Q("/missiles?/"), "antimissile shield", False, id="regex-is-anchored"),
    pytest.param(Q("/su[0-9]+/"), "a Su57 jet", True, id="regex-class"),
    pytest.param(Q("/z.rich/"), "talks in Zürich", True, id="regex-on-folded-words"),
    # --- normalisation
    pytest.param(TM, "TACTICAL MISSILE", True, id="case"),
    pytest.param(TM, "ＴＡＣＴＩＣＡＬ ＭＩＳＳＩＬＥ", True, id="nfkc-full-width"),
    pytest.param(Q("finance"), "the \ufb01nance minister", True, id="nfkc-ligature"),
    pytest.param(Q("Zürich"), "talks in Zurich", True, id="accents-folded"),
    pytest.param(Q("Zurich"), "talks in Zu\u0308rich", True, id="accents-folded-nfd"),
    pytest.param(Q("Zürich", accents="exact"), "talks in Zurich", False, id="accents-exact"),
    pytest.param(Q("Zürich", accents="exact"), "talks in ZÜRICH", True,
                 id="accents-exact-case-folded"),
    pytest.param(TM, "tactical-missile units", True, id="hyphen"),
    pytest.param(TM, "tactical\u00a0missile", True, id="nbsp"),
    pytest.param(TM, "tactical\nmissile", True, id="line-break"),
    pytest.param(TM, "tactical<b>missile</b>", True, id="inline-markup-boundary"),
    pytest.param(Q('"Kim Jong Un\'s"'), "Kim Jong Un’s visit", True, id="curly-apostrophe"),
    pytest.param(TM, "tac\u00adtical missile", True, id="soft-hyphen"),
    # --- stemming, per language
    pytest.param(TM, "two Tactical Missiles were fired", True, id="stem-plural"),
    pytest.param(Q("missiles", stem=False), "a missile", False, id="stem-off"),
    pytest.param(Q("missiles", stem=False), "two missiles", True, id="stem-off-exact-form"),
    pytest.param(Q("Raketen"), {"body": "Die Rakete flog", "language": "de"}, True,
                 id="stem-german"),
    pytest.param(Q('"missiles balistiques"'), {"body": "un missile balistique",
                                               "language": "fr"}, True, id="stem-french"),
    # --- min_hits
    pytest.param(Q("missile", min_hits=2), "one missile here", False, id="min-hits-short"),
    pytest.param(Q("missile", min_hits=2), "one missile here, missiles there", True,
                 id="min-hits-met"),
    # --- any/all/none shorthand still works beside a query
    pytest.param({"any": ["tactical missile"], "query": "test"}, "a tactical missile test",
                 True, id="shorthand-and-query"),
    pytest.param({"any": ["tactical missile"], "query": "test"}, "a tactical missile", False,
                 id="shorthand-and-query-missing"),
]


@pytest.mark.parametrize(("spec", "text", "expected"), CASES)
def test_query_matches(spec: dict[str, Any], text: str | dict[str, Any], expected: bool) -> None:
    a = article(body=text) if isinstance(text, str) else article(**text)
    assert [m.rule for m in compiled(spec).match(a)] == (["r0"] if expected else [])


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60


# --- boilerplate: only trafilatura's main text is ever matched ----------------------------


def test_phrase_only_in_navigation_of_a_real_page_does_not_match() -> None:
    raw = (ARTICLES / "crews-contain-pine-hollow-wildfire.html").read_text()
    assert raw.lower().count("tactical missile") >= 3  # in the menu and related links
    body = page_body("crews-contain-pine-hollow-wildfire.html")
    assert "wildfire" in body.lower()
    assert compiled(TM).match(article(body=body, title="Crews contain Pine Hollow wildfire")) \
        == []


def test_phrase_in_main_text_of_a_real_page_matches_across_line_break() -> None:
    body = page_body("vellmark-signs-deal-to-re-equip-artillery-brigades.html")
    (m,) = compiled(TM).match(article(body=body))
    assert m.field == "body"
    assert "Tactical Missiles" in m.hits[0].matched


# --- explanations: hits carry the field, the words and original offsets --------------------


@pytest.mark.parametrize(("spec", "text", "expected"), [
    (Q('"tactical missile"~3'), "A tactical, long-range missile.",
     ["tactical, long-range missile"]),
    (Q("missil*"), "ＭＩＳＳＩＬＥＳ flew", ["ＭＩＳＳＩＬＥＳ"]),
    (Q("/z.rich/ OR Genf"), "Zu\u0308rich and Genf", ["Zu\u0308rich", "Genf"]),
    (TM, "x tactical<b>missile</b> y", ["tactical<b>missile"]),
])
def test_hits_point_at_original_text(spec: dict[str, Any], text: str,
                                     expected: list[str]) -> None:
    (m,) = compiled(spec).match(article(body=text))
    assert [h.matched for h in m.hits] == expected
    for h in m.hits:
        assert text[h.start:h.end] == h.matched and h.field == "body"


def test_snippet_is_the_sentence_around_the_first_hit() -> None:
    body = "Markets rose. A tactical missile was fired on Tuesday. Later, rain."
    (m,) = compiled(Q('"tactical missile" OR rain')).match(article(body=body))
    assert m.snippet == "A tactical missile was fired on Tuesday."
    assert [h.phrase for h in m.hits] == ["tactical missile", "rain"]
    assert m.query == '"tactical missile" OR rain'


def test_many_rules_match_independently_and_in_file_order() -> None:
    cr = compiled(Q("wildfire"), TM, Q("tram"), Q("missil* AND base"))
    got = [m.rule for m in cr.match(article(body="A wildfire near the tactical missile base."))]
    assert got == ["r0", "r1", "r3"]


# --- validation: file:line:col: rule: reason -----------------------------------------------


def problems(text: str) -> list[str]:
    with pytest.raises(RuleError) as info:
        parse_rules(text, "r.yaml", channels=["c"])
    return str(info.value).removeprefix("rules: ").splitlines()


@pytest.mark.parametrize(("query_line", "expected"), [
    ("query: missile AND", "r.yaml:3:23: rule 'a': query: cannot parse the query: the query "
                           "ends too early"),
    ("query: 'a AND ) b'", "r.yaml:3:19: rule 'a': query: cannot parse the query: unexpected ')'"),
    ("query: colour:red", "r.yaml:3:12: rule 'a': query: unknown field 'colour'"),
    ("query: /(a)\\1/", "r.yaml:3:12: rule 'a': query: RE2 cannot run /(a)\\1/: invalid escape "
                        "sequence"),
    ("query: '/(?=x)y/'", "r.yaml:3:13: rule 'a': query: RE2 cannot run"),
    ("query: NOT missile", "r.yaml:3:12: rule 'a': query: it would match articles that contain "
                           "none of its terms"),
    ("query: 'te?t'", "r.yaml:3:13: rule 'a': query: 'te?t': only a trailing * is supported"),
    ("query: 'missile~2'", "r.yaml:3:13: rule 'a': query: fuzzy terms"),
    ("query: '\"--\"'", "r.yaml:3:13: rule 'a': query: \"--\" has no words to match"),
    ("query: ''", "r.yaml:2:5: rule 'a': needs at least one phrase in 'any' or 'all', or a "
                  "'query'"),
    ("query: x\n    accents: loose", "r.yaml:4:14: rule 'a': accents: Input should be 'fold' "
                                     "or 'exact'"),
    ("query: x\n    languages: [english]", "r.yaml:4:16: rule 'a': languages: Value error, "
                                           "'english' is not a language code"),
    ("query: x\n    min_hits: 0", "r.yaml:4:15: rule 'a': min_hits: Input should be greater"),
    ("query: x\n    fields: [feed]", "r.yaml:4:13: rule 'a': fields: Value error, unknown "
                                     "field 'feed'"),
])
def test_query_problems_are_reported_with_position(query_line: str, expected: str) -> None:
    text = f"rules:\n  - name: a\n    {query_line}\n    notify: [c]\n"
    lines = problems(text)
    assert any(line.startswith(expected) for line in lines), lines


def test_every_problem_of_every_rule_is_listed() -> None:
    text = ("rules:\n"
            "  - name: a\n    query: 'x AND'\n    notify: [c]\n"
            "  - name: b\n    query: '/(a)\\1/ OR /(?=x)/'\n    notify: [c]\n"
            "  - name: a\n    query: ok\n    notify: [c]\n"
            "  - name: d\n    query: fine\n    notify: [pager]\n")
    lines = problems(text)
    assert [line.split(": ")[0] for line in lines] == [
        "r.yaml:3:18", "r.yaml:6:13", "r.yaml:6:24", "r.yaml:8:11", "r.yaml:13:14"]
    assert "RE2 cannot run /(a)\\1/" in lines[1] and "RE2 cannot run /(?=x)/" in lines[2]
    assert "duplicate rule name" in lines[3] and "unknown channel 'pager'" in lines[4]


# --- examples ------------------------------------------------------------------------------


EXAMPLES = """\
rules:
  - name: tm
    query: '"tactical missile" AND NOT "video game"'
    notify: [c]
    examples:
      match:
        - "A tactical missile was fired."
        - {title: "Tactical Missiles", body: "x"}
        - "missile tactics"
      no_match:
        - "missile tactics"
        - "a tactical missile in a video game"
        - {title: "A tactical missile"}
"""


def test_examples_pass_and_fail_with_rule_example_and_words() -> None:
    rs = parse_rules(EXAMPLES, "r.yaml", channels=["c"])
    ran, failures = run_examples(rs)
    assert ran == 6
    assert [str(f) for f in failures] == [
        "r.yaml:9:11: rule 'tm': example 'missile tactics' should match, but it did not match",
        "r.yaml:13:11: rule 'tm': example 'title: A tactical missile' should not match, but it "
        "matched: 'tactical missile' (tactical missile) in title",
    ]


def test_bundled_rules_examples_pass() -> None:
    from watcher.rules import load_rules

    rs = load_rules(ROOT / "rules.yaml", channels=["console", "alerts-file", "ops-hook"])
    ran, failures = run_examples(rs)
    assert ran >= 4 and failures == []
    tm = next(r for r in rs.rules if r.name == "tactical-missile")
    assert tm.query


# --- JSON Schema ---------------------------------------------------------------------------


def test_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "config" / "rules.schema.json").read_text(encoding="utf-8")
    assert committed == rules_schema_text(), "run: watcher rules schema -o config/rules.schema.json"


def test_bundled_rules_name_the_schema_in_a_modeline_and_validate_against_it() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    text = (ROOT / "rules.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=config/rules.schema.json")
    schema = json.loads((ROOT / "config" / "rules.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(text), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"rules": [{"name": "x", "query": "y", "notify": ["c"],
                                        "colour": 1}]}, schema)


# --- the rules commands --------------------------------------------------------------------


def test_rules_check_command(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook")
    good = run_watcher("rules", "check", "--config", str(cfg))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "1 rule(s) ok" in good.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLES.replace("notify: [c]", "notify: [hook]") + (
        "  - name: broken\n    query: 'x AND (y'\n    notify: [pager]\n"))
    result = run_watcher("rules", "check", str(bad), "--config", str(cfg))
    assert result.returncode == 1
    assert f"{bad}:15:21: rule 'broken': query: cannot parse the query" in result.stdout
    assert f"{bad}:16:14: rule 'broken': unknown channel 'pager'" in result.stdout

    bad.write_text(EXAMPLES.replace("notify: [c]", "notify: [hook]"))
    result = run_watcher("rules", "check", str(bad), "--config", str(cfg))
    assert result.returncode == 1
    assert f"{bad}:9:11: rule 'tm': example 'missile tactics' should match" in result.stdout
    assert "2 of 6 example(s) failed" in result.stdout

    bad.write_text("rules:\n  - name: x\n    query: [\n")
    result = run_watcher("rules", "check", str(bad), "--config", str(cfg))
    assert result.returncode == 1 and "invalid YAML" in result.stdout


def test_rules_schema_command_prints_the_schema() -> None:
    result = run_watcher("rules", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["$defs"]["Rule"]["properties"]["default_operator"][
        "default"] == "OR"


def test_rules_test_backtests_the_archive_without_sending(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    cfg = write_config(tmp_path, seed_server.url("/feeds/world.xml"), receiver.url("/hook"))
    assert run_watcher("run", "--once", "--config", str(cfg)).returncode == 0
    sent = len(receiver.accepted)
    draft = tmp_path / "draft.yaml"
    draft.write_text(yaml.safe_dump({"rules": [
        {"name": "tm-near", "query": '"tactical missile"~2', "notify": ["hook"]},
        {"name": "wildfire", "query": "title:wildfire", "notify": ["hook"]},
        {"name": "nothing", "query": "zeppelin", "notify": ["hook"]},
    ]}))
    result = run_watcher("rules", "test", str(draft), "--since", "1d", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "5 article(s) since" in out and "nothing was sent" in out
    assert "tm-near: 2 article(s) would have matched" in out
    assert "wildfire: 1 article(s) would have matched" in out
    assert "nothing: 0 article(s) would have matched" in out
    assert SEED_TITLE in out and VARIANT_TITLE in out
    assert "**tactical missile**" in out
    only = run_watcher("rules", "test", str(draft), "--rule", "wildfire", "--config", str(cfg))
    assert "tm-near" not in only.stdout and "wildfire: 1" in only.stdout
    assert len(receiver.accepted) == sent
    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        assert db.execute("SELECT count(*) FROM matches WHERE rule = 'wildfire'").fetchone()[0] \
            == 0


# --- the fast paths of matching agree with the plain ones ------------------------------------


@pytest.mark.parametrize("text", ["", "a", " a", "a ", "tactical missile", "  x  y--z ",
                                  "End.", "1984 and 2024-05-21: 3 dates"])
def test_word_bounds_agree_with_split_words(text: str) -> None:
    from watcher.core.text import split_words, word_bounds

    fast = [int(x) for x in word_bounds(text)]
    words, ends = split_words(text)
    assert fast == ends[:2 * len(words)]
    assert [text[fast[2 * i]:fast[2 * i + 1]] for i in range(len(words))] == words


def test_hit_offsets_stay_right_past_many_hits() -> None:
    # More hits per field than the counting shortcut takes: positions switch to
    # a table and must still point at the right words.
    words = [f"w{i}" for i in range(60)]
    body = " ".join(f"{w} missile" for w in words)
    (m,) = compiled(Q("missile AND w59")).match(article(body=body))
    (w59,) = [h for h in m.hits if h.phrase == "w59"]
    assert body[w59.start:w59.end] == "w59" and w59.start == body.index("w59")
    assert len([h for h in m.hits if h.phrase == "missile"]) == 60
    cr = compiled(Q('"w58 missile"'))
    (m,) = cr.match(article(body=body))
    assert body[m.hits[0].start:m.hits[0].end] == "w58 missile"


def test_unseen_words_among_cached_ones_are_stemmed() -> None:
    from watcher.core.text import stem_words

    stem_words(["missiles", "fired"], "en")  # now cached
    got = stem_words(["missiles", "zorbulating", "fired", "zorbulating", "launchers"], "en")
    assert got == ["missil", "zorbul", "fire", "zorbul", "launcher"]
