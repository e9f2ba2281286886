"""The JSON Schema of rules.yaml, for editors (yaml-language-server) and `rules schema`."""

from __future__ import annotations

import json
from typing import Any

from watcher.rules.load import _RuleModel

SCHEMA_ID = "https://watcher.invalid/schemas/rules.schema.json"


def rules_schema() -> dict[str, Any]:
    rule = _RuleModel.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs = rule.pop("$defs", {})
    defs["Rule"] = rule
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "watcher rules.yaml",
        "description": "Alert rules for watcher. Each rule has a name, a query (Lucene "
                       "syntax) or any/all/none phrases, and the channels to notify.",
        "type": "object",
        "additionalProperties": False,
        "required": ["rules"],
        "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/Rule"}}},
        "$defs": defs,
    }


def rules_schema_text() -> str:
    return json.dumps(rules_schema(), indent=2, ensure_ascii=False) + "\n"
