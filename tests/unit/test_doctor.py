"""``python -m worker_llm_client doctor`` offline: every check's ok/warn/FAIL over a catalog and an
environment written to a temp directory, the Terraform-plan source, exit codes, ``--json``, and no
key value anywhere in what it prints. The network probes' own logic is at the end (``--network``
against the stubs is tests/integration/test_doctor_command.py)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.auth import exceptions as auth_errors

from tests.builders import REPORT_SCHEMA
from tests.stacks import ROOT
from worker_llm_client.cli import main
from worker_llm_client.config import Settings
from worker_llm_client.execution_models import Profile
from worker_llm_client.operations import doctor_network
from worker_llm_client.operations.doctor import Check, diagnose, redact
from worker_llm_client.operations.doctor_sources import Inputs, read_plan, repo_catalog

# fake keys, built so that the secret scan does not flag this file
GEMINI_KEY = "AIza" + "-doctor-gemini-fake"
OPENAI_KEY = "sk-" + "doctor-openai-fake"
ANTHROPIC_KEY = "sk-ant-" + "doctor-anthropic-fake"
LOCAL_KEY = "local-" + "doctor-endpoint-fake"
KEYS = (GEMINI_KEY, OPENAI_KEY, ANTHROPIC_KEY, LOCAL_KEY)

PROFILES: dict[str, dict[str, Any]] = {
    "g": {"provider": "gemini", "model": "gemini-2.5-flash"},
    "o": {"provider": "openai", "model": "gpt-x"},
    "a": {"provider": "anthropic", "model": "claude-x"},
    "v": {"provider": "vertex", "model": "gemini-2.5-flash"},
    "cv": {"provider": "anthropic_vertex", "model": "claude-x@1"},
    "c": {
        "provider": "openai_compatible",
        "model": "local-model",
        "endpoint": {
            "baseUrl": "http://127.0.0.1:9/v1",
            "apiKeyEnv": "LOCAL_API_KEY",  # pragma: allowlist secret
            "structuredOutput": "json_object",
        },
    },
    "f": {"provider": "gemini", "model": "gemini-2.5-pro", "fallbacks": ["a", "o"]},
}
ALLOWED = "g,o,a,v,cv,c,f"
MODELS = "gemini-2.5-flash,gemini-2.5-pro,gpt-x,claude-x,claude-x@1,local-model"
GOOD_ENV = {
    "ALLOWED_LLM_PROFILES": ALLOWED,
    "ALLOWED_MODELS": MODELS,
    "GOOGLE_CLOUD_PROJECT": "p",
    "ARTIFACTS_BUCKET": "b",
    "GEMINI_API_KEY": GEMINI_KEY,
    "OPENAI_API_KEY": OPENAI_KEY,
    "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    "LOCAL_API_KEY": LOCAL_KEY,
}
LINE = re.compile(r"^(ok  |warn|FAIL)  (\S+) +(.+?): (.*?)(?:  -> (.*))?$")


# --- builders -------------------------------------------------------------------------------------


def make_repo(
    root: Path,
    profiles: Mapping[str, Any] = PROFILES,
    schemas: Mapping[str, Any] | None = None,
    governance: Mapping[str, Any] | None = None,
) -> Path:
    """A repository layout: llm_profiles.yaml, prompts/<id>.yaml + schemas/<id>.json, governance.yaml."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "schemas").mkdir(exist_ok=True)
    (root / "llm_profiles.yaml").write_text(yaml.safe_dump(dict(profiles)), encoding="utf-8")
    for prompt_id, schema in (schemas or {"report": REPORT_SCHEMA}).items():
        (root / "schemas" / f"{prompt_id}.json").write_text(json.dumps(schema), encoding="utf-8")
        prompt = {"template": "Write about {{ topic }}.", "schema": f"{prompt_id}.json"}
        (root / "prompts" / f"{prompt_id}.yaml").write_text(yaml.safe_dump(prompt), encoding="utf-8")
    lists = governance or {"allowedLlmProfiles": ALLOWED.split(","), "allowedModels": MODELS.split(",")}
    (root / "governance.yaml").write_text(yaml.safe_dump(dict(lists)), encoding="utf-8")
    return root


def env_file(root: Path, env: Mapping[str, str]) -> Path:
    path = root / "function-env.yaml"
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in env.items()), encoding="utf-8")
    return path


def doctor(
    capsys: pytest.CaptureFixture[str], root: Path, env: Mapping[str, str] = GOOD_ENV, *args: str
) -> tuple[int, str, str]:
    code = main(["doctor", "--root", str(root), "--env-file", str(env_file(root, env)), *args])
    out, err = capsys.readouterr()
    return code, out, err


def lines(out: str) -> list[tuple[str, str, str, str, str]]:
    """(level, profile, check, what, fix) of every check line."""
    found = [LINE.match(line) for line in out.splitlines()[1:-1]]
    assert all(found), out
    return [(m[1].strip(), m[2], m[3].strip(), m[4], m[5] or "") for m in found if m]


def find(out: str, profile: str, check: str) -> tuple[str, str, str]:
    (hit,) = [(level, what, fix) for level, p, c, what, fix in lines(out) if (p, c) == (profile, check)]
    return hit


def without(env: Mapping[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in env.items() if key not in names}


# --- the whole report -----------------------------------------------------------------------------


def test_a_sound_environment_passes_with_one_line_per_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = doctor(capsys, make_repo(tmp_path))
    assert (code, err) == (0, "")
    first, *_, last = out.splitlines()
    assert first.startswith("doctor: environment from --env-file ") and "network off" in first
    found = lines(out)
    assert {level for level, *_ in found} == {"ok"}
    assert last == f"doctor: {len(found)} ok, 0 warn, 0 FAIL"
    checks = {(profile, check) for _, profile, check, _, _ in found}
    for profile in ALLOWED.split(","):
        assert {
            (profile, "profile"),
            (profile, "model"),
            (profile, "credentials"),
            (profile, "schema report"),
        } <= checks
    assert {("f", "fallback a"), ("f", "fallback o")} <= checks
    assert {("-", "ALLOWED_LLM_PROFILES"), ("-", "ALLOWED_MODELS"), ("-", "executor settings")} <= checks
    assert not [c for c in checks if c[1] == "endpoint"], "nothing is probed without --network"


def test_the_repositorys_own_catalog_passes_with_the_env_file_it_renders(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What the deploy ships: env-file's allowlists, the deploy's settings and a key per provider."""
    sets = [
        "GOOGLE_CLOUD_PROJECT=p",
        "ARTIFACTS_BUCKET=b",
        *(f"{name}={GOOD_ENV[name]}" for name in GOOD_ENV if "KEY" in name),
    ]
    assert main(["env-file", "--root", str(ROOT), *(arg for pair in sets for arg in ("--set", pair))]) == 0
    rendered = tmp_path / "env.yaml"
    rendered.write_text(capsys.readouterr().out, encoding="utf-8")
    code = main(["doctor", "--root", str(ROOT), "--env-file", str(rendered)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "from --env-file" in out and "warn" not in {level for level, *_ in lines(out)}


# --- the environment ------------------------------------------------------------------------------


def test_without_allowlists_in_the_environment_governance_yaml_is_used_and_said(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = doctor(capsys, make_repo(tmp_path), without(GOOD_ENV, "ALLOWED_LLM_PROFILES", "ALLOWED_MODELS"))
    assert code == 0
    level, what, fix = find(out, "-", "ALLOWED_LLM_PROFILES")
    assert level == "warn" and "checking governance.yaml's allowedLlmProfiles instead" in what and "env-file" in fix
    assert find(out, "-", "ALLOWED_MODELS")[0] == "warn"
    assert find(out, "g", "profile")[0] == "ok", "the profiles governance.yaml lists are checked"


def test_without_allowlists_anywhere_nothing_is_allowed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    (root / "governance.yaml").unlink()
    code, out, _ = doctor(capsys, root, without(GOOD_ENV, "ALLOWED_LLM_PROFILES"))
    assert code == 1
    level, what, _ = find(out, "-", "ALLOWED_LLM_PROFILES")
    assert level == "FAIL" and "governance.yaml cannot be read" in what
    assert not [p for _, p, *_ in lines(out) if p != "-"], "no profile is checked"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (without(GOOD_ENV, "ARTIFACTS_BUCKET"), "ARTIFACTS_BUCKET is required"),
        (without(GOOD_ENV, "GOOGLE_CLOUD_PROJECT"), "GOOGLE_CLOUD_PROJECT is required"),
        (GOOD_ENV | {"LEASE_SECONDS": "soon"}, "LEASE_SECONDS must be an integer >= 1, got 'soon'"),
    ],
)
def test_executor_settings_are_required(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    code, out, _ = doctor(capsys, make_repo(tmp_path), env)
    level, what, fix = find(out, "-", "executor settings")
    assert (code, level) == (1, "FAIL") and expected in what and "executor_env" in fix


# --- profiles and models --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        ({k: v for k, v in PROFILES.items() if k != "g"}, "not in "),
        (
            PROFILES | {"g": {"provider": "gemini", "model": "m", "generation": {"temperature": 5}}},
            "invalid: generation",
        ),
        (PROFILES | {"g": {"provider": "gemini"}}, "invalid: model: Field required"),
        (PROFILES | {"g": {"provider": "openai_compatible", "model": "m"}}, "endpoint is required"),
        (PROFILES | {"g": PROFILES["g"] | {"enabled": False}}, "disabled: steps naming it fail PROFILE_NOT_ALLOWED"),
    ],
    ids=["missing", "out-of-range", "no-model", "no-endpoint", "disabled"],
)
def test_an_allowlisted_profile_must_exist_be_valid_and_enabled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profiles: dict[str, Any], expected: str
) -> None:
    code, out, _ = doctor(capsys, make_repo(tmp_path, profiles))
    level, what, fix = find(out, "g", "profile")
    assert (code, level) == (1, "FAIL") and expected in what and fix
    assert find(out, "o", "profile")[0] == "ok", "one broken profile hides no other"


def test_the_model_must_be_allowed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = doctor(capsys, make_repo(tmp_path), GOOD_ENV | {"ALLOWED_MODELS": "gemini-2.5-flash"})
    assert code == 1
    assert find(out, "g", "model")[0] == "ok"
    level, what, fix = find(out, "o", "model")
    assert level == "FAIL" and "gpt-x is not in ALLOWED_MODELS" in what and "allowedModels" in fix


# --- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "profiles", "expected"),
    [
        ("GEMINI_API_KEY", ("g", "f"), "GEMINI_API_KEY is not set"),
        ("OPENAI_API_KEY", ("o",), "OPENAI_API_KEY is not set"),
        ("ANTHROPIC_API_KEY", ("a",), "ANTHROPIC_API_KEY is not set"),
        ("LOCAL_API_KEY", ("c",), "LOCAL_API_KEY is not set"),
        ("GOOGLE_CLOUD_PROJECT", ("v", "cv"), "GOOGLE_CLOUD_PROJECT is not set: Vertex AI needs it"),
    ],
)
def test_each_provider_needs_its_credentials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, missing: str, profiles: tuple[str, ...], expected: str
) -> None:
    code, out, _ = doctor(capsys, make_repo(tmp_path), without(GOOD_ENV, missing))
    assert code == 1
    failed = {p for level, p, check, what, _ in lines(out) if check == "credentials" and level == "FAIL"}
    assert failed == set(profiles)
    _, what, fix = find(out, profiles[0], "credentials")
    assert expected in what and fix


def test_credentials_lines_say_what_was_found(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, out, _ = doctor(capsys, make_repo(tmp_path), GOOD_ENV | {"GOOGLE_CLOUD_LOCATION": "europe-west1"})
    assert find(out, "o", "credentials")[1] == "OPENAI_API_KEY is set"
    assert find(out, "c", "credentials")[1] == "LOCAL_API_KEY is set"
    vertex = find(out, "cv", "credentials")[1]
    assert "project p, location europe-west1" in vertex and "ADC not resolved offline" in vertex


def test_an_endpoint_without_api_key_env_needs_no_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    local = {"provider": "openai_compatible", "model": "local-model", "endpoint": {"baseUrl": "http://127.0.0.1:9/v1"}}
    code, out, _ = doctor(capsys, make_repo(tmp_path, PROFILES | {"c": local}), without(GOOD_ENV, "LOCAL_API_KEY"))
    assert code == 0
    assert find(out, "c", "credentials") == ("ok", "none needed: the endpoint names no apiKeyEnv", "")


# --- fallbacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "env", "level", "expected"),
    [
        ({}, {"ALLOWED_LLM_PROFILES": "g,o,v,cv,c,f"}, "FAIL", "not in ALLOWED_LLM_PROFILES: it is skipped"),
        ({"a": None}, {}, "FAIL", "not in "),
        ({"a": {"provider": "anthropic", "model": "claude-x", "timeoutSeconds": -1}}, {}, "FAIL", "invalid: "),
        ({"a": PROFILES["a"] | {"enabled": False}}, {}, "FAIL", "disabled: it is skipped"),
        ({"a": PROFILES["a"] | {"model": "claude-y"}}, {}, "FAIL", "claude-y is not in ALLOWED_MODELS"),
        ({"a": PROFILES["a"] | {"fallbacks": ["f"]}}, {}, "warn", "circular: a falls back to f in turn"),
        ({"a": PROFILES["f"] | {"fallbacks": []}}, {}, "warn", "the same gemini gemini-2.5-pro"),
        ({}, {}, "ok", "anthropic claude-x, usable"),
    ],
    ids=["not-allowlisted", "missing", "invalid", "disabled", "model-not-allowed", "circular", "same-model", "ok"],
)
def test_each_fallback_is_governed_like_a_profile(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    change: dict[str, Any],
    env: dict[str, str],
    level: str,
    expected: str,
) -> None:
    profiles = {k: v for k, v in (PROFILES | change).items() if v is not None}
    code, out, _ = doctor(capsys, make_repo(tmp_path, profiles), GOOD_ENV | env)
    found = find(out, "f", "fallback a")
    assert found[0] == level and expected in found[1], found
    assert code == (1 if level == "FAIL" else 0)
    assert find(out, "f", "fallback o")[0] == "ok"


# --- schemas --------------------------------------------------------------------------------------


def test_each_prompt_schema_is_compiled_for_each_provider_with_what_it_leaves_unenforced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    array = {"type": "array", "items": {"type": "string"}}
    scored = REPORT_SCHEMA | {"properties": REPORT_SCHEMA["properties"] | {"score": {"type": "number", "maximum": 5}}}
    code, out, _ = doctor(capsys, make_repo(tmp_path, schemas={"report": scored, "list": array}))
    assert code == 1
    assert find(out, "-", "prompt list") == ("ok", "schema loads", "")
    assert find(out, "g", "schema list")[0] == "ok", "Gemini takes a root that is not an object"
    for profile in ("o", "a", "cv", "c"):
        level, what, fix = find(out, profile, "schema list")
        assert level == "FAIL" and "its root admits no JSON object" in what and "another provider" in fix
    assert find(out, "o", "schema report")[1] == "sent as openai_strict (strict); the provider enforces all of it"
    anthropic = find(out, "a", "schema report")
    assert (
        anthropic[0] == "ok"
        and anthropic[1] == "sent as anthropic; validated locally only: 'maximum' at $.properties.score"
    )
    assert find(out, "c", "schema report")[1].startswith(
        "sent as json_object; validated locally only: the whole schema"
    )


def test_the_unenforced_constraints_are_listed_in_full_in_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    strings = {f"s{i}": {"type": "string", "minLength": 1, "maxLength": 9} for i in range(3)}
    schema = {"type": "object", "properties": strings, "required": list(strings), "additionalProperties": False}
    root = make_repo(tmp_path, schemas={"report": schema})
    _, text, _ = doctor(capsys, root)
    assert "; +3 more" in find(text, "a", "schema report")[1]
    _, out, _ = doctor(capsys, root, GOOD_ENV, "--json")
    (anthropic,) = [c for c in json.loads(out)["checks"] if (c["profile"], c["check"]) == ("a", "schema report")]
    assert len(anthropic["notes"]) == 6 and anthropic["notes"][0] == "'minLength' at $.properties.s0"


def test_a_schema_that_does_not_load_fails_once_for_its_prompt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = doctor(capsys, make_repo(tmp_path, schemas={"report": REPORT_SCHEMA, "bad": {"type": "objekt"}}))
    assert code == 1
    level, what, fix = find(out, "-", "prompt bad")
    assert level == "FAIL" and what.startswith("schema invalid: ") and "lint" in fix
    assert not [c for _, _, c, *_ in lines(out) if c == "schema bad"]


# --- the Terraform plan (the deploy pipeline's source) --------------------------------------------


def plan(
    path: Path,
    env: Mapping[str, str],
    mounts: Mapping[str, tuple[str, ...]],
    roles: tuple[str, ...] = ("roles/aiplatform.user",),
) -> Path:
    """``terraform show -json`` of a plan: both functions with ``env`` and the secrets mounted in each."""

    def function(name: str) -> dict[str, Any]:
        secrets = [
            {"key": key, "project_id": "p", "secret": key.lower().replace("_", "-"), "version": "3"}
            for key, where in mounts.items()
            if name in where
        ]
        service = {"environment_variables": dict(env) | {"THREADS": "8"}, "secret_environment_variables": secrets}
        return {
            "address": f"google_cloudfunctions2_function.{name}",
            "mode": "managed",
            "type": "google_cloudfunctions2_function",
            "name": name,
            "values": {"name": f"worker-{name}", "service_config": [service]},
        }

    grants = [
        {"address": f"google_project_iam_member.r{i}", "type": "google_project_iam_member", "values": {"role": role}}
        for i, role in enumerate(roles)
    ]
    document = {
        "format_version": "1.2",
        "terraform_version": "1.11.4",
        "planned_values": {"root_module": {"resources": [function("events"), function("sweeper"), *grants]}},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


BOTH = ("events", "sweeper")
DEPLOY_ENV = {key: value for key, value in GOOD_ENV.items() if not key.endswith("_API_KEY")}
ALL_MOUNTED = {name: BOTH for name in ("GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LOCAL_API_KEY")}


def from_plan(capsys: pytest.CaptureFixture[str], root: Path, path: Path, *args: str) -> tuple[int, str]:
    code = main(["doctor", "--root", str(root), "--terraform-plan", str(path), *args])
    return code, capsys.readouterr().out


def test_from_a_plan_keys_are_checked_as_mounted_secrets(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    code, out = from_plan(capsys, root, plan(tmp_path / "plan.json", DEPLOY_ENV, ALL_MOUNTED))
    assert code == 0, out
    assert "environment from the functions in " in out.splitlines()[0]
    level, what, _ = find(out, "o", "credentials")
    assert (level, what) == ("ok", "OPENAI_API_KEY is mounted from secret openai-api-key version 3")
    assert "roles/aiplatform.user granted" in find(out, "v", "credentials")[1]
    assert find(out, "-", "executor settings") == ("ok", "GOOGLE_CLOUD_PROJECT=p, ARTIFACTS_BUCKET=b", "")


@pytest.mark.parametrize(
    ("mounts", "env", "roles", "profile", "expected"),
    [
        (
            ALL_MOUNTED | {"OPENAI_API_KEY": ("events",)},
            {},
            None,
            "o",
            "OPENAI_API_KEY is not mounted from Secret Manager in sweeper (only in events)",
        ),
        (
            {k: v for k, v in ALL_MOUNTED.items() if k != "ANTHROPIC_API_KEY"},
            {},
            None,
            "a",
            "ANTHROPIC_API_KEY is not mounted from Secret Manager in events, sweeper",
        ),
        (ALL_MOUNTED, {"LOCAL_API_KEY": LOCAL_KEY}, None, "c", "a plain environment variable in the plan"),
        (ALL_MOUNTED, {}, (), "cv", "the plan grants no roles/aiplatform.user"),
    ],
    ids=["one-function", "absent", "plain", "no-vertex-role"],
)
def test_from_a_plan_what_the_deploy_does_not_wire_fails(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mounts: dict[str, tuple[str, ...]],
    env: dict[str, str],
    roles: tuple[str, ...] | None,
    profile: str,
    expected: str,
) -> None:
    path = plan(tmp_path / "plan.json", DEPLOY_ENV | env, mounts, *(() if roles is None else (roles,)))
    code, out = from_plan(capsys, make_repo(tmp_path), path)
    level, what, fix = find(out, profile, "credentials")
    assert (code, level) == (1, "FAIL") and expected in what and fix
    assert LOCAL_KEY not in out


def test_a_plan_is_read_from_its_planned_values(tmp_path: Path) -> None:
    deployed = read_plan(plan(tmp_path / "plan.json", DEPLOY_ENV, {"GEMINI_API_KEY": BOTH, "X_API_KEY": ("sweeper",)}))
    assert deployed.functions == ("events", "sweeper")
    assert deployed.secrets == {"GEMINI_API_KEY": "secret gemini-api-key version 3"}  # pragma: allowlist secret
    assert deployed.partial == {"X_API_KEY": ("sweeper",)}
    assert deployed.env == DEPLOY_ENV | {"THREADS": "8"}
    assert deployed.project_roles == {"roles/aiplatform.user"}


def test_the_pipeline_runs_doctor_on_the_plan_before_applying_it() -> None:
    steps = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text(encoding="utf-8"))["steps"]
    ids = [step["id"] for step in steps]
    assert ids.index("checks") < ids.index("terraform-plan") < ids.index("doctor") < ids.index("terraform-apply")
    by_id = {step["id"]: step for step in steps}
    show = by_id["terraform-show"]
    assert ids.index("terraform-plan") < ids.index("terraform-show") < ids.index("doctor")
    assert show["name"].startswith("hashicorp/terraform:") and show["dir"] == "deploy/terraform"
    assert "terraform show -json tfplan > tfplan.json" in show["args"][-1]
    script = by_id["doctor"]["args"][-1]
    assert "python -m worker_llm_client doctor --terraform-plan deploy/terraform/tfplan.json" in script
    assert "--network" not in script, "the pipeline has no keys: doctor stays offline there"


# --- usage and output -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--env-file", "/nonexistent/env.yaml"], "--env-file /nonexistent/env.yaml: FileNotFoundError"),
        (["--terraform-plan", "/nonexistent/plan.json"], "--terraform-plan /nonexistent/plan.json"),
        (["--root", "/nonexistent"], "has no llm_profiles.yaml and prompts/"),
    ],
)
def test_bad_input_is_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    assert main(["doctor", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and expected in err


def test_an_env_file_that_is_not_key_value_lines_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("- ALLOWED_MODELS\n", encoding="utf-8")
    assert main(["doctor", "--root", str(make_repo(tmp_path)), "--env-file", str(path)]) == 2
    assert "expected KEY: value lines" in capsys.readouterr().err


def test_a_plan_without_functions_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"planned_values": {"root_module": {"resources": []}}}), encoding="utf-8")
    assert main(["doctor", "--root", str(make_repo(tmp_path)), "--terraform-plan", str(path)]) == 2
    assert "no google_cloudfunctions2_function in the plan" in capsys.readouterr().err


def test_env_file_and_plan_together_are_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--env-file", "a.yaml", "--terraform-plan", "p.json"])
    assert exited.value.code == 2


def test_offline_nothing_leaves_the_machine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any) -> None:
        raise AssertionError("doctor opened a connection without --network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    code, out, _ = doctor(capsys, make_repo(tmp_path))
    assert code == 0, out


def test_without_env_file_the_process_environment_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in GOOD_ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["doctor", "--root", str(make_repo(tmp_path))]) == 0
    assert "environment from the environment;" in capsys.readouterr().out


def test_json_is_one_document_with_the_same_checks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    env = without(GOOD_ENV, "OPENAI_API_KEY")
    _, text, _ = doctor(capsys, root, env)
    code, out, _ = doctor(capsys, root, env, "--json")
    document = json.loads(out)
    assert code == document["exitCode"] == 1
    assert document["summary"] == {"ok": len(lines(text)) - 1, "warn": 0, "FAIL": 1}
    assert document["sources"]["network"] is False and document["sources"]["catalog"].endswith("prompts/)")
    (failed,) = [c for c in document["checks"] if c["level"] == "FAIL"]
    assert failed["profile"] == "o" and failed["check"] == "credentials" and failed["fix"].startswith("set ")
    assert [(c["level"], c["profile"], c["check"]) for c in document["checks"]] == [
        (level, profile, check) for level, profile, check, *_ in lines(text)
    ]


@pytest.mark.parametrize("extra", [[], ["--json"], ["--network"]], ids=["text", "json", "network"])
def test_no_key_value_is_ever_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    """Keys in the env file and the process environment; --network probes nothing reachable here
    (every base URL points at a closed port), so its error paths are the ones printed."""
    closed = "http://127.0.0.1:9"
    env = GOOD_ENV | {"GEMINI_BASE_URL": closed, "OPENAI_BASE_URL": f"{closed}/v1", "ANTHROPIC_BASE_URL": closed}
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-adc.json"))
    for key in KEYS:
        monkeypatch.setenv(f"X{len(key)}_API_KEY", key)
    code, out, err = doctor(capsys, make_repo(tmp_path), env, *extra)
    assert code == (1 if extra == ["--network"] else 0)
    for key in KEYS:
        assert key not in out and key not in err
        assert key[4:-2] not in out, "not even part of one"


def test_a_key_quoted_by_a_provider_is_redacted() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": OPENAI_KEY, "LOCAL_API_KEY": LOCAL_KEY})
    quoted = redact(f"the server said: bad key {OPENAI_KEY}, and {LOCAL_KEY}", settings)
    assert quoted == "the server said: bad key [redacted], and [redacted]"


# --- the network probes, offline ------------------------------------------------------------------


def test_network_checks_follow_each_usable_profiles_own_lines(tmp_path: Path) -> None:
    seen: list[str] = []

    def network(profiles: Any, settings: Settings) -> dict[str, Check]:
        seen.extend(p.profile_id for p in profiles)
        return {p.profile_id: Check("warn", p.profile_id, "endpoint", "probed") for p in profiles}

    profiles = PROFILES | {"o": PROFILES["o"] | {"enabled": False}}
    inputs = Inputs(Settings.from_env(GOOD_ENV), "test", repo_catalog(make_repo(tmp_path, profiles)), {}, None, True)
    checks = diagnose(inputs, network)
    assert seen == ["a", "c", "cv", "f", "g", "v"], "enabled profiles only, in id order"
    names = [(c.profile, c.name) for c in checks]
    assert names.index(("a", "endpoint")) < names.index(("c", "profile")), "right after the profile's own checks"
    assert ("o", "endpoint") not in names


@pytest.mark.parametrize(
    ("status", "level", "fix"),
    [
        (429, "warn", "rate-limited"),
        (401, "FAIL", "the key was refused"),
        (403, "FAIL", "the key was refused"),
        (404, "FAIL", "model id"),
        (503, "FAIL", "status page"),
    ],
)
def test_a_status_is_judged_by_its_code(status: int, level: str, fix: str) -> None:
    outcome = doctor_network.status_outcome("GET /models", "https://h", status, "APIStatusError", "some_type")
    assert outcome[0] == level and fix in outcome[2]
    assert outcome[1].startswith(f"GET /models at https://h: HTTP {status} APIStatusError, some_type")


def test_a_host_is_shown_without_userinfo_or_path() -> None:
    with_userinfo = "https://user:pw@api.example.com:8443/v1?x=1"  # pragma: allowlist secret
    assert doctor_network.host(with_userinfo) == "https://api.example.com:8443"
    assert doctor_network.host("http://127.0.0.1/v1") == "http://127.0.0.1"


def _vertex_check(adc: Any) -> Check:
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p"})
    return doctor_network.probe(Profile("v", "vertex", "gemini-2.5-flash", 1, True), settings, adc)


def test_vertex_is_probed_by_resolving_adc_and_getting_a_token() -> None:
    class Token:
        token = "ya29." + "never-printed"

    check = _vertex_check(lambda: Token())
    assert (check.level, check.what) == ("ok", "ADC (Token) gave a token")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (auth_errors.DefaultCredentialsError, "no Application Default Credentials found"),
        (auth_errors.RefreshError, "ADC found, but no token: RefreshError"),
        (auth_errors.TransportError, "ADC found, but no token: TransportError"),
        (RuntimeError, "the probe failed: RuntimeError"),
    ],
)
def test_vertex_without_usable_adc_fails(error: type[Exception], expected: str) -> None:
    def adc() -> Any:
        raise error("details never shown " + GEMINI_KEY)

    check = _vertex_check(adc)
    assert (check.level, check.what) == ("FAIL", expected) and check.fix
    assert "details" not in check.what + check.fix


@pytest.mark.parametrize(
    ("profile", "name"),
    [
        (Profile("g", "gemini", "m", 1, True), "GEMINI_API_KEY"),
        (Profile("o", "openai", "m", 1, True), "OPENAI_API_KEY"),
        (Profile("a", "anthropic", "m", 1, True), "ANTHROPIC_API_KEY"),
    ],
)
def test_a_profile_without_its_key_is_not_probed(profile: Profile, name: str) -> None:
    check = doctor_network.probe(profile, Settings.from_env({}))
    assert (check.level, check.what) == ("warn", f"not probed: {name} is not set here")
