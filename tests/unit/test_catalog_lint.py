"""The offline lint of prompts, schemas, profiles and governance, on the repo and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.stacks import ROOT
from worker_llm_client.catalog.lint import gemini_gaps, lint
from worker_llm_client.catalog.push import diff_lines
from worker_llm_client.cli import main


def test_the_repository_lints_without_errors() -> None:
    assert [f for f in lint(ROOT) if f.level == "error"] == []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("prompts", "schemas"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for name in ("llm_profiles.yaml", "governance.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("prompts/weekly_report.yaml", '"{{ team }}"', '"{{ team }"', "template: syntax error at line 1"),
        (
            "prompts/weekly_report.yaml",
            "  You are a precise",
            "  {% if %}You are a precise",
            "systemInstruction: syntax error",
        ),
        (
            "schemas/weekly_report.json",
            '"type": "object",\n  "properties"',
            '"type": "objekt",\n  "properties"',
            "not valid draft 2020-12",
        ),
        (
            "schemas/weekly_report.json",
            '"items": {"type": "string"}',
            '"items": {"$ref": "#/$defs/nope"}',
            "does not resolve",
        ),
        (
            "schemas/weekly_report.json",
            '"title": "WeeklyReport",',
            '"title": "WeeklyReport",,',
            "cannot be read as JSON",
        ),
        (
            "llm_profiles.yaml",
            "model: gemini-2.5-pro",
            "model: gemini-9-ultra",
            "'gemini-9-ultra' is not in governance.yaml allowedModels",
        ),
        ("llm_profiles.yaml", "  provider: vertex", "  provider: openai", "is invalid"),
        ("governance.yaml", "allowedModels:", "allowedModels: nope\nx:", "'allowedModels' must be a list"),
    ],
)
def test_broken_sources_are_errors(
    repo: Path, file: str, old: str, new: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(repo / file, old, new)
    assert main(["lint", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert message in out and "error:" in out


def _deep(depth: int) -> str:
    return '{"type": "object", "properties": {"x": ' * depth + '{"type": "string"}' + "}}" * depth


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (
            '"items": {"$ref": "https://example.com/item.json"}',
            "outputSchema $ref 'https://example.com/item.json' at $.properties.highlights.items is not local",
        ),
        (
            '"items": {"$dynamicRef": "https://example.com/item.json#meta"}',
            "$dynamicRef 'https://example.com/item.json#meta' at $.properties.highlights.items is not local",
        ),
        (
            '"items": {"type": "object", "properties": {"default": {"$ref": "https://example.com/d.json"}}}',
            "at $.properties.highlights.items.properties.default is not local",
        ),
        (
            '"items": {"$id": "https://example.com/item.json", "type": "string"}',
            "outputSchema has $id at $.properties.highlights.items: only the root may carry $id",
        ),
        ('"items": ' + _deep(40), "outputSchema nests arrays and objects deeper than 32 levels"),
        (
            '"items": {"type": "string", "pattern": "^(a)\\\\1$"}',
            "outputSchema pattern at $.properties.highlights.items is not supported by RE2",
        ),
        (
            '"items": {"type": "string", "pattern": "^(?!draft)"}',
            "backreferences and lookaround are not available",
        ),
        ('"items": {"$ref": "#/properties/title/description"}', "does not point at a subschema"),
        (
            '"items": {"allOf": [{"$ref": "#/properties/highlights/items"}]}',
            "$ref cycle at $.properties.highlights.items",
        ),
    ],
    ids=[
        "remote-ref",
        "dynamic-ref",
        "ref-under-default",
        "nested-id",
        "too-deep",
        "backreference",
        "lookahead",
        "ref-into-data",
        "ref-cycle",
    ],
)
def test_schemas_the_function_would_refuse_are_errors(
    repo: Path, new: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(repo / "schemas/weekly_report.json", '"items": {"type": "string"}', new)
    assert main(["lint", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "error: prompts/weekly_report.yaml (schema weekly_report.json): outputSchema" in out and message in out, out


def test_keywords_gemini_ignores_are_notices_not_errors(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(
        repo / "schemas/weekly_report.json",
        '"title": {"type": "string"',
        '"title": {"type": "string", "pattern": "^[A-Z]", "const": "x"',
    )
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    assert (
        "notice: prompts/weekly_report.yaml (schema weekly_report.json): $.properties.title: 'const' is enforced locally only"
        in out
    )
    assert "$.properties.title: 'pattern' is enforced locally only" in out
    assert "matched locally with RE2, an ECMA-262 subset: no lookahead, lookbehind or backreferences" in out


def test_disabled_and_unlisted_profiles_are_notices(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(repo / "llm_profiles.yaml", "  enabled: true", "  enabled: false")
    _edit(repo / "governance.yaml", "  - pro-json\n", "")
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "flash-json: disabled" in out and "pro-json: not in governance.yaml allowedLlmProfiles" in out


def test_prices_are_checked_and_a_profile_without_them_is_a_notice(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no pricing" not in "\n".join(str(f) for f in lint(repo))  # the repository prices every profile
    text = (repo / "llm_profiles.yaml").read_text()
    start = text.index("  pricing:", text.index("pro-json:"))
    (repo / "llm_profiles.yaml").write_text(text[:start])
    assert main(["lint", "--root", str(repo)]) == 0
    assert "pro-json: no pricing: outputs.costUsd and llm.call costUsd will be null" in capsys.readouterr().out
    _edit(repo / "llm_profiles.yaml", 'asOf: "2025-06-17"', "asOf: yesterday")
    assert main(["lint", "--root", str(repo)]) == 1
    assert "pricing.asOf" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("schema", "gaps"),
    [
        ({"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}}, ["$.properties.a: 'minLength'"]),
        (
            {"type": "array", "items": {"type": "integer", "multipleOf": 2}, "uniqueItems": True},
            ["$: 'uniqueItems'", "$.items: 'multipleOf'"],
        ),
        (
            {"$defs": {"d": {"type": "number", "exclusiveMinimum": 0}}, "$ref": "#/$defs/d"},
            ["$.$defs.d: 'exclusiveMinimum'"],
        ),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, ["$: 'oneOf' is treated as 'anyOf'"]),
        ({"anyOf": [{"type": "object", "patternProperties": {"^x": {}}}]}, ["$.anyOf[0]: 'patternProperties'"]),
        (
            {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
            [],
        ),  # a property named like a keyword
    ],
)
def test_gemini_gaps(schema: dict, gaps: list[str]) -> None:
    found = list(gemini_gaps(schema))
    assert len(found) == len(gaps) and all(any(f.startswith(g) for f in found) for g in gaps)


def test_diff_lines_show_what_changed_per_field() -> None:
    old = {
        "version": 2,
        "sha256": "a",
        "template": "Hello {{ team }}\nBye",
        "outputSchema": json.dumps({"type": "object"}),
    }
    new = {"sha256": "b", "template": "Hello {{ team }}!\nBye", "outputSchema": json.dumps({"type": "array"})}
    lines = list(diff_lines("prompts/p", old, new))
    assert "--- prompts/p v2 template" in lines and "-Hello {{ team }}" in lines and "+Hello {{ team }}!" in lines
    assert '-  "type": "object"' in lines and '+  "type": "array"' in lines
    assert not any("sha256" in line or "version" in line for line in lines)


def test_env_file_renders_governance_for_the_deploy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env-file", "--root", str(ROOT), "--set", "ARTIFACTS_BUCKET=b"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert 'ALLOWED_MODELS: "gemini-2.5-flash,gemini-2.5-pro"' in out and 'ARTIFACTS_BUCKET: "b"' in out
    assert main(["env-file", "--root", str(ROOT), "--set", "nope"]) == 2


def test_the_work_window_stays_inside_the_timeout_and_the_lease() -> None:
    from worker_llm_client.bootstrap import work_window

    assert work_window(540, 600) == 480  # 60 s kept to upload and finalize
    assert work_window(540, 3) == 2.25  # a short lease bounds it: never work past the lease
