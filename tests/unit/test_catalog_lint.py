"""The offline lint of prompts, schemas, profiles and governance, on the repo and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.stacks import ROOT
from worker_llm_client.catalog.lint import lint
from worker_llm_client.catalog.push import diff_lines
from worker_llm_client.catalog.sources import load_governance
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
        ("llm_profiles.yaml", "  provider: vertex", "  provider: nosuch", "is invalid"),
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
    for profile, provider in [("flash-json", "gemini"), ("flash-json-vertex", "vertex"), ("pro-json", "gemini")]:
        said = f"notice: prompts/weekly_report.yaml with {profile}: provider {provider}, dialect gemini"
        assert f"{said}: the schema is sent as Gemini's responseJsonSchema; 2 thing(s) it does not enforce" in out
        assert f"{said}: not enforced by the provider, checked locally only: 'const' at $.properties.title" in out
        assert f"{said}: not enforced by the provider, checked locally only: 'pattern' at $.properties.title" in out
    assert (
        "notice: prompts/weekly_report.yaml (schema weekly_report.json): $.properties.title: patterns are matched "
        "locally with RE2, an ECMA-262 subset: no lookahead, lookbehind or backreferences"
    ) in out


def test_the_repository_lint_says_what_each_allowed_profile_enforces() -> None:
    lines = [str(f) for f in lint(ROOT)]
    said = "notice: prompts/weekly_digest.yaml with flash-json: provider gemini, dialect gemini"
    assert f"{said}: not enforced by the provider, checked locally only: 'minLength' at $.properties.headline" in lines
    assert (
        "notice: prompts/weekly_report.yaml with flash-json: provider gemini, dialect gemini: the schema is sent as "
        "Gemini's responseJsonSchema; the provider enforces all of it"
    ) in lines


OTHER_PROFILES = """
gpt:
  provider: openai
  model: gpt-x
  enabled: true
compat-grammar:
  provider: openai_compatible
  model: local
  enabled: true
  endpoint: {baseUrl: "http://127.0.0.1:8080/v1", structuredOutput: json_object_schema}
compat-json:
  provider: openai_compatible
  model: local
  enabled: true
  endpoint: {baseUrl: "http://127.0.0.1:8080/v1", structuredOutput: json_object}
claude:
  provider: anthropic
  model: claude-x
  enabled: true
"""


def _allow(repo: Path, profiles: str, ids: list[str], models: list[str]) -> None:
    """Append ``profiles`` to the copy's llm_profiles.yaml and allow ``ids`` and ``models``."""
    with (repo / "llm_profiles.yaml").open("a") as file:
        file.write(profiles)
    _edit(
        repo / "governance.yaml", "allowedLlmProfiles:\n", "allowedLlmProfiles:\n" + "".join(f"  - {i}\n" for i in ids)
    )
    _edit(repo / "governance.yaml", "allowedModels:\n", "allowedModels:\n" + "".join(f"  - {m}\n" for m in models))


def test_each_allowed_provider_reports_what_it_enforces_of_each_prompt(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _allow(repo, OTHER_PROFILES, ["gpt", "compat-grammar", "compat-json", "claude"], ["gpt-x", "local", "claude-x"])
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    gaps = "not enforced by the provider, checked locally only"
    expected = [
        "prompts/weekly_report.yaml with gpt: provider openai, dialect openai_strict: the schema is sent in OpenAI "
        "strict mode; the provider enforces all of it",
        f"prompts/weekly_digest.yaml with gpt: provider openai, dialect openai_strict: {gaps}: 'minLength' at "
        "$.properties.headline",
        "prompts/weekly_report.yaml with claude: provider anthropic, dialect anthropic: the schema is sent as a Claude "
        "structured output; 3 thing(s) it does not enforce",
        f"prompts/weekly_report.yaml with claude: provider anthropic, dialect anthropic: {gaps}: 'maxItems' at "
        "$.properties.highlights",
        "prompts/weekly_report.yaml with compat-grammar: provider openai_compatible, dialect json_object_schema: the "
        "schema is sent as a llama.cpp grammar (json_object with a schema); 2 thing(s) it does not enforce",
        f"prompts/weekly_report.yaml with compat-grammar: provider openai_compatible, dialect json_object_schema: {gaps}: "
        "'minimum' at $.properties.confidence",
        "prompts/weekly_digest.yaml with compat-json: provider openai_compatible, dialect json_object: the schema is "
        "sent in the instructions only (JSON mode); 1 thing(s) it does not enforce",
        f"prompts/weekly_digest.yaml with compat-json: provider openai_compatible, dialect json_object: {gaps}: the "
        "whole schema: the endpoint only guarantees JSON",
    ]
    for line in expected:
        assert f"notice: {line}" in out, line


def test_a_schema_a_provider_cannot_take_is_an_error_for_that_pairing_only(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _allow(repo, OTHER_PROFILES, ["gpt", "claude", "compat-grammar"], ["gpt-x", "claude-x", "local"])
    (repo / "schemas/names.json").write_text(json.dumps({"type": "array", "items": {"type": "string"}}))
    (repo / "prompts/names.yaml").write_text("schema: names.json\ntemplate: List names.\n")
    assert main(["lint", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert (
        "error: prompts/names.yaml with gpt: outputSchema cannot be used with provider openai: its root admits no "
        "JSON object, and openai (openai_strict) only returns objects; make the report an object"
    ) in out
    assert "error: prompts/names.yaml with claude: outputSchema cannot be used with provider anthropic" in out
    assert "notice: prompts/names.yaml with flash-json: provider gemini, dialect gemini" in out
    assert (
        "notice: prompts/names.yaml with compat-grammar: provider openai_compatible, dialect json_object_schema" in out
    )
    assert out.count("error:") == 2


def test_strict_mode_and_claude_fall_back_where_the_schema_needs_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _allow(repo, OTHER_PROFILES, ["gpt", "claude"], ["gpt-x", "claude-x", "local"])
    _edit(
        repo / "schemas/weekly_report.json",
        '"items": {"type": "string"}',
        '"items": {"$ref": "#/properties/highlights"}',
    )
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    said = "notice: prompts/weekly_report.yaml with claude: provider anthropic, dialect anthropic"
    assert f"{said}: the schema is sent in the instructions only (no structured output); 2 thing(s)" in out
    assert (
        f"{said}: not enforced by the provider, checked locally only: structured outputs: the schema is recursive"
        in out
    )
    assert "with gpt: provider openai, dialect openai_strict: the schema is sent in OpenAI strict mode" in out


FALLBACKS = """
primary:
  provider: gemini
  model: gemini-2.5-flash
  enabled: true
  fallbacks: [nowhere, unlisted, disabled]
secondary:
  provider: gemini
  model: gemini-2.5-flash
  enabled: true
  fallbacks: [foreign]
unlisted:
  provider: gemini
  model: gemini-2.5-flash
  enabled: true
  fallbacks: [nowhere]
disabled:
  provider: gemini
  model: gemini-2.5-flash
  enabled: false
foreign:
  provider: gemini
  model: gemini-9
  enabled: true
ring-a:
  provider: gemini
  model: gemini-2.5-flash
  enabled: true
  fallbacks: [ring-b]
ring-b:
  provider: gemini
  model: gemini-2.5-flash
  enabled: true
  fallbacks: [ring-c, flash-json]
ring-c:
  provider: gemini
  model: gemini-2.5-flash
  enabled: true
  fallbacks: [ring-a]
"""


def test_fallbacks_a_step_could_not_use_are_errors(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _allow(repo, FALLBACKS, ["primary", "secondary", "disabled", "foreign", "ring-a", "ring-b", "ring-c"], [])
    assert main(["lint", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    for message in [
        "primary: fallback 'nowhere' is not a profile in llm_profiles.yaml",
        "primary: fallback 'unlisted' is not in governance.yaml allowedLlmProfiles",
        "primary: fallback 'disabled' is disabled",
        "secondary: fallback 'foreign' names model 'gemini-9', not in governance.yaml allowedModels",
        "foreign: model 'gemini-9' is not in governance.yaml allowedModels",
        "unlisted: fallback 'nowhere' is not a profile in llm_profiles.yaml",  # structural: an error even unlisted
        "ring-a: fallbacks form a cycle: ring-a -> ring-b -> ring-c -> ring-a",
    ]:
        assert f"error: llm_profiles.yaml: {message}" in out, message
    assert out.count("fallbacks form a cycle") == 1


def test_fallbacks_of_a_profile_no_step_may_use_are_notices(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _allow(repo, FALLBACKS.replace("fallbacks: [nowhere]", "fallbacks: [disabled]"), [], ["gemini-9"])
    _edit(repo / "llm_profiles.yaml", "fallbacks: [nowhere, unlisted, disabled]", "fallbacks: [unlisted]")
    _edit(repo / "llm_profiles.yaml", "fallbacks: [ring-a]", "fallbacks: []")
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    unlisted = "fallback 'unlisted' is not in governance.yaml allowedLlmProfiles"
    assert f"notice: llm_profiles.yaml: primary: {unlisted} (an error once this profile is allowed)" in out
    disabled = "fallback 'disabled' is disabled (an error once this profile is allowed)"
    assert f"notice: llm_profiles.yaml: unlisted: {disabled}" in out


SETTINGS = """
gpt-settings:
  provider: openai
  model: gpt-x
  enabled: true
  generation: {topK: 4, seed: 1, thinkingBudget: 0}
  safetySettings: [{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}]
compat-settings:
  provider: openai_compatible
  model: local
  enabled: true
  endpoint: {baseUrl: "http://127.0.0.1:8080/v1"}
  generation: {topK: 4, seed: 1, thinkingBudget: 2048}
claude-settings:
  provider: anthropic_vertex
  model: claude-x
  enabled: true
  generation: {seed: 1, thinkingBudget: 500, topK: 3}
claude-thinking:
  provider: anthropic
  model: claude-x
  enabled: true
  generation: {thinkingBudget: 2048}
claude-off:
  provider: anthropic
  model: claude-x
  enabled: true
  generation: {thinkingBudget: 0}
"""


def test_settings_a_provider_ignores_are_notices(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _allow(repo, SETTINGS, [], ["gpt-x", "local", "claude-x"])
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    ignored = [line.split(": ", 2)[1:] for line in out.splitlines() if "ignores it" in line or "minimum" in line]
    assert sorted(ignored) == [
        ["llm_profiles.yaml", "claude-settings: generation.seed: provider anthropic_vertex ignores it (not sent)"],
        [
            "llm_profiles.yaml",
            "claude-settings: generation.thinkingBudget under Anthropic's minimum (1024) is not sent",
        ],
        [
            "llm_profiles.yaml",
            "compat-settings: generation.thinkingBudget: provider openai_compatible ignores it (not sent)",
        ],
        ["llm_profiles.yaml", "gpt-settings: generation.thinkingBudget: provider openai ignores it (not sent)"],
        ["llm_profiles.yaml", "gpt-settings: generation.topK: provider openai ignores it (not sent)"],
        ["llm_profiles.yaml", "gpt-settings: safetySettings are Gemini's: provider openai ignores it (not sent)"],
    ]


def test_disabled_and_unlisted_profiles_are_notices(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(repo / "llm_profiles.yaml", "  enabled: true", "  enabled: false")
    _edit(repo / "governance.yaml", "  - pro-json\n", "")
    assert main(["lint", "--root", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "flash-json: disabled" in out and "pro-json: not in governance.yaml allowedLlmProfiles" in out


def test_prices_are_checked_and_a_profile_without_them_is_a_notice(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "pro-json: no pricing" not in "\n".join(str(f) for f in lint(repo))
    text = (repo / "llm_profiles.yaml").read_text()
    start = text.index("  pricing:", text.index("pro-json:"))
    (repo / "llm_profiles.yaml").write_text(text[:start])
    assert main(["lint", "--root", str(repo)]) == 0
    assert "pro-json: no pricing: outputs.costUsd and llm.call costUsd will be null" in capsys.readouterr().out
    _edit(repo / "llm_profiles.yaml", 'asOf: "2025-06-17"', "asOf: yesterday")
    assert main(["lint", "--root", str(repo)]) == 1
    assert "pricing.asOf" in capsys.readouterr().out


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
    models = ",".join(sorted(load_governance(ROOT / "governance.yaml")["allowedModels"]))
    assert f'ALLOWED_MODELS: "{models}"' in out and 'ARTIFACTS_BUCKET: "b"' in out
    assert main(["env-file", "--root", str(ROOT), "--set", "nope"]) == 2


def test_the_work_window_stays_inside_the_timeout_and_the_lease() -> None:
    from worker_llm_client.bootstrap import work_window

    assert work_window(540, 600) == 480  # 60 s kept to upload and finalize
    assert work_window(540, 3) == 2.25  # a short lease bounds it: never work past the lease
