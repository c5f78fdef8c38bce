"""``bounded_schema``: what the local model is sent is a narrowing of the prompt's schema that
llama.cpp's grammar enforces in full (no server needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.local_model import bounded_prompts, bounded_schema
from tests.stacks import ROOT
from worker_llm_client.catalog.sources import load_prompts
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.core.schema_dialects import wire_schema

pytestmark = pytest.mark.local_model

TEXT = "A-Za-z0-9 ,.;:!?%&()'/+-"
TENTHS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


@pytest.mark.parametrize(
    ("schema", "bounded"),
    [
        ({"type": "string"}, {"type": "string", "pattern": f"^[{TEXT}]{{0,200}}$"}),
        ({"type": "string", "minLength": 10}, {"type": "string", "pattern": f"^[{TEXT}]{{10,200}}$"}),
        ({"type": "string", "maxLength": 40}, {"type": "string", "pattern": f"^[{TEXT}]{{0,40}}$"}),
        ({"type": "string", "enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b"]}),
        ({"type": "string", "format": "date"}, {"type": "string", "format": "date"}),
        ({"type": "string", "pattern": "^x+$"}, {"type": "string", "pattern": "^x+$"}),
        (
            {"type": "array", "items": {"type": "boolean"}},
            {"type": "array", "items": {"type": "boolean"}, "maxItems": 5},
        ),
        ({"type": "array", "minItems": 7}, {"type": "array", "minItems": 7, "maxItems": 7}),
        ({"type": "array", "maxItems": 2}, {"type": "array", "maxItems": 2}),
        ({"type": "number", "minimum": 0, "maximum": 1}, {"type": "number", "enum": TENTHS}),
        ({"type": "integer", "minimum": 1, "maximum": 3}, {"type": "integer", "enum": [1, 2, 3]}),
        ({"type": "number", "minimum": 0}, {"type": "number", "minimum": 0}),
        (
            {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMinimum": 0},
        ),
        (
            {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
            {
                "type": "object",
                "properties": {
                    "a": {"anyOf": [{"type": "string", "pattern": f"^[{TEXT}]{{0,200}}$"}, {"type": "null"}]}
                },
            },
        ),
        (
            {"$defs": {"t": {"type": "string"}}, "$ref": "#/$defs/t"},
            {"$defs": {"t": {"type": "string", "pattern": f"^[{TEXT}]{{0,200}}$"}}, "$ref": "#/$defs/t"},
        ),
    ],
)
def test_each_keyword_is_narrowed_or_kept(schema: dict[str, Any], bounded: dict[str, Any]) -> None:
    assert bounded_schema(schema) == bounded


@pytest.mark.parametrize("prompt_id", sorted(load_prompts(ROOT / "prompts", ROOT / "schemas")))
def test_each_prompt_has_a_bounded_copy_the_grammar_enforces_in_full(prompt_id: str) -> None:
    original = load_prompts(ROOT / "prompts", ROOT / "schemas")[prompt_id]
    copy = bounded_prompts(ROOT)[f"{prompt_id}.bounded"]
    schema = json.loads(copy["outputSchema"])

    assert {key: copy[key] for key in ("template", "systemInstruction")} == {
        key: original[key] for key in ("template", "systemInstruction")
    }
    assert copy["sha256"] != original["sha256"]
    load_schema(copy["outputSchema"])  # a schema the executor accepts
    sent = wire_schema(schema, "openai_compatible", "json_object_schema")
    assert (sent.dialect, sent.unenforced) == ("json_object_schema", ())


def test_bounded_values_are_valid_against_the_original_schema() -> None:
    original = json.loads((ROOT / "schemas" / "weekly_report.json").read_text(encoding="utf-8"))
    bounded = bounded_schema(original)
    report = {
        "title": "Search: reindex done",
        "summary": "The reindex finished two days late. Cache hit rate is up to 71%.",
        "status": "at_risk",
        "highlights": ["cache hit rate up to 71%"],
        "risks": [{"risk": "paged twice for timeouts", "severity": "medium"}],
        "confidence": 0.7,
    }
    for confidence in bounded["properties"]["confidence"]["enum"]:
        Draft202012Validator(bounded).validate(report | {"confidence": confidence})
        Draft202012Validator(original).validate(report | {"confidence": confidence})
    for outside in ({"confidence": 70}, {"title": "x" * 201}, {"highlights": ["a"] * 6}, {"title": 'say "hi"'}):
        assert not Draft202012Validator(bounded).is_valid(report | outside), outside
