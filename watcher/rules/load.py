"""Load and validate rules.yaml, reporting every problem with its line and column.

What it makes (RuleSet, Example) is plain data defined in watcher.rules.ruleset,
named here too for the callers that import it from here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from watcher.core.digest import parse_cooldown, parse_digest
from watcher.core.errors import RuleError
from watcher.core.models import FIELDS, Article, Rule
from watcher.core.text import words_of
from watcher.rules.compile import leaf_problem
from watcher.rules.query import TEXT_FIELDS, Node, QueryError, leaves, rule_tree, true_without_terms
from watcher.rules.ruleset import Example as Example
from watcher.rules.ruleset import RuleSet as RuleSet
from watcher.rules.ruleset import digest_of as digest_of

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _one_or_many(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


StrList = Annotated[tuple[str, ...], BeforeValidator(_one_or_many,
                                                     json_schema_input_type=str | list[str])]
_TextField = Literal["title", "summary", "body", "author", "url"]
FieldList = Annotated[tuple[str, ...], BeforeValidator(
    _one_or_many, json_schema_input_type=_TextField | list[_TextField])]
Duration = Annotated[float, BeforeValidator(parse_cooldown,
                                            json_schema_input_type=str | float)]
DigestWhen = Annotated[str, BeforeValidator(parse_digest, json_schema_input_type=str)]


class ExampleArticle(BaseModel):
    """An article for a rule's example; every part is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ExampleArticle")

    title: str = ""
    summary: str = ""
    body: str = ""
    author: str | None = None
    url: str | None = None
    feed: str | None = None
    tags: StrList | None = None
    language: str | None = None


ExampleSpec = str | ExampleArticle


class RuleExamples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="Examples")

    match: tuple[ExampleSpec, ...] = Field(
        default=(), description="articles the rule must match (a string is an article body)")
    no_match: tuple[ExampleSpec, ...] = Field(
        default=(), description="articles the rule must not match")

    @field_validator("match", "no_match", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _one_or_many(v)


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="Rule")

    name: str = Field(pattern=_NAME, description="unique name, used in alerts")
    description: str = ""
    query: str = Field(
        default="", description='Lucene query: words, "phrases", AND / OR / NOT, -term, '
        '+term, (groups), field:term, "phrase"~N, prefix*, /regex/. Bare terms are joined '
        "with default_operator (OR, as in Lucene)")
    default_operator: Literal["OR", "AND"] = Field(
        default="OR", description="operator between bare terms of the query (Lucene: OR)")
    any: StrList = Field(default=(), description="shorthand: at least one of these phrases")
    all: StrList = Field(default=(), description="shorthand: every one of these phrases")
    none: StrList = Field(default=(), description="shorthand: none of these phrases")
    fields: FieldList = Field(default=FIELDS, description="where unprefixed terms look")
    feeds: StrList = Field(default=(), description="only articles from these feeds")
    tags: StrList = Field(default=(), description="only articles of feeds with one of these tags")
    languages: StrList = Field(
        default=(), description="only articles in these languages (ISO 639-1 codes such as "
        "en, de; und = unknown)")
    min_hits: int = Field(default=1, ge=1, description="the query must hit at least this often")
    stem: bool = Field(default=True, description="match other forms of a word (Snowball "
                       "stemmer for the article's language)")
    accents: Literal["fold", "exact"] = Field(
        default="fold", description="fold: Zurich finds Zürich; exact: accents must match")
    notify: StrList = Field(min_length=1, description="channels from config/watcher.yaml")
    cooldown: Duration | None = Field(
        default=None, description="hold repeats for this long after an alert (e.g. 30m)")
    digest: DigestWhen | None = Field(
        default=None, description="send digests only: hourly, daily or \"HH:MM\"")
    examples: RuleExamples | None = Field(
        default=None, description="articles checked by `watcher rules check`")

    @field_validator("default_operator", "accents", mode="before")
    @classmethod
    def _case(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        return v.upper() if v.upper() in ("OR", "AND") else v.lower()

    @field_validator("any", "all", "none")
    @classmethod
    def _phrases_have_words(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in v:
            if not words_of(phrase):
                raise ValueError(f"phrase {phrase!r} has no words to match")
        return v

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for code in v:
            c = code.strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}", c):
                raise ValueError(f"{code!r} is not a language code (use e.g. en, de, und)")
            out.append(c)
        return tuple(out)

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for f in v:
            if f not in TEXT_FIELDS:
                raise ValueError(f"unknown field {f!r} (use {', '.join(TEXT_FIELDS)})")
        if not v:
            raise ValueError("at least one field is needed")
        return v


class _Located:
    """YAML scalars and containers turned into Python, with marks kept by path."""

    def __init__(self) -> None:
        self.marks: dict[tuple[Any, ...], tuple[int, int]] = {}
        # scalars written on one line: their quote style ("" for plain)
        self.inline: dict[tuple[Any, ...], str] = {}

    def build(self, node: yaml.Node, path: tuple[Any, ...] = ()) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in node.value:
                key = yaml.safe_load(yaml.serialize(k)) if not isinstance(k, yaml.ScalarNode) \
                    else k.value
                self.marks[(*path, key, "__key__")] = (k.start_mark.line + 1,
                                                        k.start_mark.column + 1)
                out[key] = self.build(v, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i)) for i, v in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line \
                and node.style in (None, "'", '"'):
            self.inline[path] = node.style or ""
        # Scalars: let PyYAML's safe resolver decide the type (int, bool, null...).
        return yaml.safe_load(yaml.serialize(node))

    def where(self, path: tuple[Any, ...], key: bool = False) -> tuple[int, int] | None:
        if key and (*path, "__key__") in self.marks:
            return self.marks[(*path, "__key__")]
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get(())


class _Parser:
    """Collects every problem of one rules file, each as file:line:col."""

    def __init__(self, source: str, located: _Located, channels: Iterable[str] | None,
                 unusable: dict[str, str]) -> None:
        self.source, self.located = source, located
        self.known = set(channels) if channels is not None else None
        self.unusable = unusable
        self.problems: list[str] = []
        self.seen: dict[str, int] = {}  # rule name -> line

    def at(self, path: tuple[Any, ...], msg: str, key: bool = False) -> None:
        pos = self.located.where(path, key)
        self.problems.append(f"{self.source}:{pos[0]}:{pos[1]}: {msg}" if pos
                             else f"{self.source}: {msg}")

    def at_query(self, path: tuple[Any, ...], pos: int | None, msg: str) -> None:
        """A problem inside a rule's query: point at the character when we can."""
        qpath = (*path, "query")
        where = self.located.where(qpath)
        style = self.located.inline.get(qpath)
        if where and pos is not None and style is not None and qpath in self.located.marks:
            where = (where[0], where[1] + pos + (1 if style else 0))
        elif pos is not None:
            msg += f" (at character {pos + 1} of the query)"
        self.problems.append(f"{self.source}:{where[0]}:{where[1]}: {msg}" if where
                             else f"{self.source}: {msg}")

    def model(self, path: tuple[Any, ...], raw: Any, prefix: str) -> _RuleModel | None:
        if not isinstance(raw, dict):
            self.at(path, f"{prefix}expected a mapping with name, any/all/none and notify")
            return None
        try:
            model = _RuleModel.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                field = ".".join(str(p) for p in loc) or "rule"
                if err["type"] == "extra_forbidden":
                    self.at((*path, *loc), f"{prefix}unknown key {loc[-1]!r}", key=True)
                elif err["type"] == "missing":
                    self.at(path, f"{prefix}missing required key {field!r}")
                else:
                    self.at((*path, *loc), f"{prefix}{field}: {err['msg']}")
            return None
        if not model.query and not model.any and not model.all:
            self.at(path, f"{prefix}needs at least one phrase in 'any' or 'all', or a 'query'")
            return None
        if model.name in self.seen:
            self.at((*path, "name"), f"{prefix}duplicate rule name (first defined at line "
                                     f"{self.seen[model.name]})")
            return None
        return model

    def rule(self, i: int, raw: Any) -> tuple[Rule, Node, list[Example]] | None:
        """One rule with its query tree and examples; None after reporting why not."""
        path: tuple[Any, ...] = ("rules", i)
        label = raw.get("name") if isinstance(raw, dict) else None
        prefix = f"rule {label!r}: " if isinstance(label, str) else f"rules[{i}]: "
        model = self.model(path, raw, prefix)
        if model is None:
            return None
        self.seen[model.name] = (self.located.where((*path, "name")) or (0, 0))[0]
        rule = Rule(
            name=model.name, any=model.any, all=model.all, none=model.none,
            fields=model.fields, feeds=model.feeds, notify=model.notify,
            line=self.seen[model.name], cooldown_s=model.cooldown, digest=model.digest,
            query=model.query, default_operator=model.default_operator, tags=model.tags,
            languages=model.languages, min_hits=model.min_hits, stem=model.stem,
            accents=model.accents,
        )
        tree = _check_query(rule, lambda pos, msg: self.at_query(path, pos, prefix + msg))
        for j, ch in enumerate(model.notify):
            if ch in self.unusable:
                self.at((*path, "notify", j),
                        f"{prefix}channel {ch!r} is unusable: {self.unusable[ch]}")
            elif self.known is not None and ch not in self.known:
                options = ", ".join(sorted(self.known)) or "none configured"
                self.at((*path, "notify", j),
                        f"{prefix}unknown channel {ch!r} (known: {options})")
        if tree is None:
            return None
        return rule, tree, self.examples(path, rule, model)

    def examples(self, path: tuple[Any, ...], rule: Rule, model: _RuleModel) -> list[Example]:
        out: list[Example] = []
        if not model.examples:
            return out
        for expect, specs in ((True, model.examples.match), (False, model.examples.no_match)):
            key = "match" if expect else "no_match"
            for j, spec in enumerate(specs):
                pos = self.located.where((*path, "examples", key, j)) or (0, 0)
                out.append(Example(
                    rule=rule.name, expect_match=expect, article=_example_article(spec, rule),
                    where=f"{self.source}:{pos[0]}:{pos[1]}", label=_label(spec)))
        return out


def parse_rules(text: str, source: str = "rules.yaml",
                channels: Iterable[str] | None = None,
                unusable_channels: dict[str, str] | None = None) -> RuleSet:
    """Validate rules text; raise RuleError listing every problem as file:line:col."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RuleError(yaml_problem(exc, source)) from None
    if root is None:
        raise RuleError(f"{source}: the file is empty; expected 'rules:' with a list of rules")
    located = _Located()
    data = located.build(root)
    parser = _Parser(source, located, channels, unusable_channels or {})
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        parser.at((), "expected a mapping with a 'rules:' list at the top level")
        raise RuleError("\n".join(parser.problems))
    for key in data:
        if key != "rules":
            parser.at((key,), f"unknown top-level key {key!r}", key=True)
    rules: list[Rule] = []
    trees: dict[str, Node] = {}
    examples: list[Example] = []
    for i, raw in enumerate(data["rules"]):
        parsed = parser.rule(i, raw)
        if parsed is not None:
            rule, trees[parsed[0].name], found = parsed
            rules.append(rule)
            examples += found
    if parser.problems:
        raise RuleError("\n".join(parser.problems))
    return RuleSet(rules=tuple(rules), source=source, digest=digest_of(text),
                   examples=tuple(examples), trees=trees)


def yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    """Where and why YAML could not be read. A value left open (a quote, a bracket)
    is noticed only at the end of the file: point at where the value starts."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    start = getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None) or ""
    if start is not None and ("quoted scalar" in context or "end of stream" in problem
                              or "<stream end>" in problem):
        what = "a quoted value" if "quoted" in context else \
            context.removeprefix("while parsing ").removeprefix("while scanning ")
        ended = f" at line {mark.line + 1}" if mark else ""
        return (f"{source}:{start.line + 1}:{start.column + 1}: invalid YAML: {what} starts "
                f"here and is never closed ({problem}{ended})")
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    return f"{where}: invalid YAML: {problem}"


def _check_query(rule: Rule, report: Any) -> Node | None:
    """The rule's query tree, or None after reporting why it cannot be used."""
    try:
        tree = rule_tree(rule)
    except QueryError as exc:
        report(exc.pos, f"query: {exc.message}")
        return None
    ok = True
    for leaf, _ in leaves(tree):
        problem = leaf_problem(leaf)
        if problem is not None:
            report(problem.pos, f"query: {problem.message}")
            ok = False
    if ok and true_without_terms(tree):
        report(None, "query: it would match articles that contain none of its terms "
                     "(it only says what to leave out); add a term to look for")
        ok = False
    return tree if ok else None


def _example_article(spec: ExampleSpec, rule: Rule) -> Article:
    if isinstance(spec, str):
        spec = ExampleArticle(body=spec)
    return Article(
        feed=spec.feed or (rule.feeds[0] if rule.feeds else "example"),
        entry_id="example", url=spec.url, title=spec.title, summary=spec.summary,
        body=spec.body, text_source="page", published=None,
        fetched_at=datetime(2000, 1, 1, tzinfo=UTC), author=spec.author,
        language=spec.language or (rule.languages[0] if rule.languages else None),
        tags=spec.tags if spec.tags is not None else rule.tags[:1])


def _label(spec: ExampleSpec) -> str:
    if isinstance(spec, str):
        text = spec
    else:
        text = " / ".join(f"{k}: {v}" for k, v in spec.model_dump(exclude_defaults=True).items())
    text = " ".join(text.split())
    return repr(text if len(text) <= 70 else text[:69] + "…")


def load_rules(path: str | Path, channels: Iterable[str] | None = None,
               unusable_channels: dict[str, str] | None = None) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from None
    return parse_rules(text, str(path), channels, unusable_channels)
