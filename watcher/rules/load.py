"""Load and validate rules.yaml, reporting every problem with its line and column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from watcher.digest import parse_cooldown, parse_digest
from watcher.errors import RuleError
from watcher.models import FIELDS, Rule
from watcher.rules.text import phrase_keys

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    description: str = ""
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    fields: tuple[str, ...] = FIELDS
    feeds: tuple[str, ...] = ()
    notify: tuple[str, ...] = Field(min_length=1)
    cooldown: Annotated[float, BeforeValidator(parse_cooldown)] | None = None
    digest: Annotated[str, BeforeValidator(parse_digest)] | None = None

    @field_validator("any", "all", "none", "feeds", "notify", "fields", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("any", "all", "none")
    @classmethod
    def _phrases_have_words(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for phrase in v:
            if not phrase_keys(phrase):
                raise ValueError(f"phrase {phrase!r} has no words to match")
        return v

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for f in v:
            if f not in FIELDS:
                raise ValueError(f"unknown field {f!r} (use {', '.join(FIELDS)})")
        if not v:
            raise ValueError("at least one field is needed")
        return v


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str

    def channels(self) -> set[str]:
        return {c for r in self.rules for c in r.notify}


class _Located:
    """YAML scalars and containers turned into Python, with marks kept by path."""

    def __init__(self) -> None:
        self.marks: dict[tuple[Any, ...], tuple[int, int]] = {}

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


def parse_rules(text: str, source: str = "rules.yaml",
                channels: Iterable[str] | None = None,
                unusable_channels: dict[str, str] | None = None) -> RuleSet:
    """Validate rules text; raise RuleError listing every problem as file:line:col."""
    problems: list[str] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise RuleError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        raise RuleError(f"{source}: the file is empty; expected 'rules:' with a list of rules")
    located = _Located()
    data = located.build(root)

    def at(path: tuple[Any, ...], msg: str, key: bool = False) -> None:
        pos = located.where(path, key)
        problems.append(f"{source}:{pos[0]}:{pos[1]}: {msg}" if pos else f"{source}: {msg}")

    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        at((), "expected a mapping with a 'rules:' list at the top level")
        raise RuleError("\n".join(problems))
    for key in data:
        if key != "rules":
            at((key,), f"unknown top-level key {key!r}", key=True)

    known = set(channels) if channels is not None else None
    unusable = unusable_channels or {}
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data["rules"]):
        path: tuple[Any, ...] = ("rules", i)
        label = raw.get("name") if isinstance(raw, dict) else None
        prefix = f"rule {label!r}: " if isinstance(label, str) else f"rules[{i}]: "
        if not isinstance(raw, dict):
            at(path, f"{prefix}expected a mapping with name, any/all/none and notify")
            continue
        try:
            model = _RuleModel.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                field = ".".join(str(p) for p in loc) or "rule"
                if err["type"] == "extra_forbidden":
                    at((*path, *loc), f"{prefix}unknown key {loc[-1]!r}", key=True)
                elif err["type"] == "missing":
                    at(path, f"{prefix}missing required key {field!r}")
                else:
                    at((*path, *loc), f"{prefix}{field}: {err['msg']}")
            continue
        if not model.any and not model.all:
            at(path, f"{prefix}needs at least one phrase in 'any' or 'all'")
            continue
        if model.name in seen:
            at((*path, "name"), f"{prefix}duplicate rule name (first defined at line "
                                f"{seen[model.name]})")
            continue
        seen[model.name] = (located.where((*path, "name")) or (0, 0))[0]
        for j, ch in enumerate(model.notify):
            if ch in unusable:
                at((*path, "notify", j), f"{prefix}channel {ch!r} is unusable: {unusable[ch]}")
            elif known is not None and ch not in known:
                options = ", ".join(sorted(known)) or "none configured"
                at((*path, "notify", j), f"{prefix}unknown channel {ch!r} (known: {options})")
        rules.append(Rule(
            name=model.name, any=model.any, all=model.all, none=model.none,
            fields=model.fields, feeds=model.feeds, notify=model.notify,
            line=seen[model.name], cooldown_s=model.cooldown, digest=model.digest,
        ))
    if problems:
        raise RuleError("\n".join(problems))
    return RuleSet(rules=tuple(rules), source=source)


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
