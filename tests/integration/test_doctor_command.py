"""``python -m worker_llm_client doctor --network`` as a subprocess, through the real SDKs, against the
local stubs: OpenAI and an OpenAI-compatible endpoint (``OpenAiStub``), Anthropic (``AnthropicStub``),
Gemini (``GeminiStub``), plus a closed port, a port that never answers, and Vertex without ADC. One
run probes them all in parallel (the silent port takes the probe timeout, 5 s); the tests read its
lines. ``--firestore`` reads the catalog the emulator holds (pushed from the repository).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.builders import REPORT_SCHEMA
from tests.stacks import IT_PROJECT, ROOT

pytestmark = pytest.mark.integration

GEMINI_KEY = "AIza" + "-doctor-it-gemini"
OPENAI_KEY = "sk-" + "doctor-it-openai"
ANTHROPIC_KEY = "sk-ant-" + "doctor-it-anthropic"
LOCAL_KEY = "local-" + "doctor-it-endpoint"
KEYS = (GEMINI_KEY, OPENAI_KEY, ANTHROPIC_KEY, LOCAL_KEY)
LINE = re.compile(r"^(ok  |warn|FAIL)  (\S+) +(.+?): (.*?)(?:  -> (.*))?$")


def doctor(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker_llm_client", "doctor", *args]
    return subprocess.run(
        command, cwd=ROOT, env=dict(env or os.environ), capture_output=True, text=True, timeout=timeout
    )


def endpoint_lines(out: str) -> dict[str, tuple[str, str]]:
    """profile -> (level, what) of its ``endpoint`` line."""
    found = (LINE.match(line) for line in out.splitlines())
    return {m[2]: (m[1].strip(), m[4]) for m in found if m and m[3].strip() == "endpoint"}


def write_repo(root: Path, profiles: Mapping[str, Any]) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "schemas").mkdir()
    (root / "schemas" / "report.json").write_text(json.dumps(REPORT_SCHEMA), encoding="utf-8")
    prompt = {"template": "Write about {{ topic }}.", "schema": "report.json"}
    (root / "prompts" / "report.yaml").write_text(yaml.safe_dump(prompt), encoding="utf-8")
    (root / "llm_profiles.yaml").write_text(yaml.safe_dump(dict(profiles)), encoding="utf-8")
    return root


def write_env(path: Path, env: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in env.items()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory, silent_port: int) -> Iterator[dict[str, Any]]:
    """One ``doctor --network`` over every provider; its result and the stubs it talked to."""
    from devstack.anthropic_stub import AnthropicStub
    from devstack.gemini_stub import GeminiStub
    from devstack.openai_stub import OpenAiStub, Reply
    from devstack.services import free_port

    with GeminiStub() as gemini, OpenAiStub() as openai, AnthropicStub() as anthropic:
        openai.script(Reply.ok(), model="gpt-doctor")  # the stub lists the models it was scripted for
        compatible = {
            "apiKeyEnv": "LOCAL_API_KEY",  # pragma: allowlist secret
            "structuredOutput": "json_object_schema",
        }
        profiles = {
            "g": {"provider": "gemini", "model": "gemini-2.5-flash"},
            "o": {"provider": "openai", "model": "gpt-doctor"},
            "c": {"provider": "openai_compatible", "model": "local-model", "endpoint": {"baseUrl": openai.base_url} | compatible},
            "a": {"provider": "anthropic", "model": "claude-doctor"},
            "v": {"provider": "vertex", "model": "gemini-2.5-flash"},
            "down": {"provider": "openai_compatible", "model": "local-model",
                     "endpoint": {"baseUrl": f"http://127.0.0.1:{free_port()}/v1"}},
            "silent": {"provider": "openai_compatible", "model": "local-model",
                       "endpoint": {"baseUrl": f"http://127.0.0.1:{silent_port}/v1"}},
        }  # fmt: skip
        root = write_repo(tmp_path_factory.mktemp("doctor-repo"), profiles)
        function_env = {
            "ALLOWED_LLM_PROFILES": ",".join(profiles),
            "ALLOWED_MODELS": "gemini-2.5-flash,gpt-doctor,local-model,claude-doctor",
            "GOOGLE_CLOUD_PROJECT": "p",
            "ARTIFACTS_BUCKET": "b",
            "GEMINI_API_KEY": GEMINI_KEY,
            "GEMINI_BASE_URL": gemini.base_url,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai.base_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": anthropic.base_url,
            "LOCAL_API_KEY": LOCAL_KEY,
        }
        env_file = write_env(root / "function-env.yaml", function_env)
        process_env = {"PATH": os.environ["PATH"], "GOOGLE_APPLICATION_CREDENTIALS": str(root / "no-adc.json")}
        done = doctor("--root", str(root), "--env-file", str(env_file), "--network", env=process_env | dict.fromkeys(
            ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"), "sk-" + "process-env-not-used"
        ))  # fmt: skip
        yield {
            "done": done,
            "lines": endpoint_lines(done.stdout),
            "openai": openai,
            "anthropic": anthropic,
            "gemini": gemini,
        }


def test_every_allowlisted_profile_gets_one_endpoint_line(probed: dict[str, Any]) -> None:
    done = probed["done"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert set(probed["lines"]) == {"g", "o", "c", "a", "v", "down", "silent"}
    assert done.stdout.splitlines()[0].endswith("network on")


def test_openai_is_reached_with_its_key_and_lists_the_model(probed: dict[str, Any]) -> None:
    openai = probed["openai"]
    assert probed["lines"]["o"] == ("ok", f"GET /models at {openai.url}: lists gpt-doctor")
    assert openai.calls() == 0, "no completion was requested: the probe costs no tokens"


def test_a_compatible_endpoint_that_does_not_list_the_model_is_a_warning(probed: dict[str, Any]) -> None:
    level, what = probed["lines"]["c"]
    assert (level, what) == (
        "warn",
        f"GET /models at {probed['openai'].url}: answered with 1 model(s), not local-model",
    )


def test_a_closed_port_fails_as_unreachable(probed: dict[str, Any]) -> None:
    level, what = probed["lines"]["down"]
    assert level == "FAIL" and what.endswith(": unreachable (ConnectError)") and what.startswith("GET /models at ")


def test_a_port_that_never_answers_fails_after_the_probe_timeout(probed: dict[str, Any]) -> None:
    level, what = probed["lines"]["silent"]
    assert level == "FAIL" and what.endswith(": no answer within 5 s")


def test_vertex_without_adc_fails(probed: dict[str, Any]) -> None:
    assert probed["lines"]["v"] == ("FAIL", "no Application Default Credentials found")


def test_gemini_and_anthropic_are_reached_through_their_sdks(probed: dict[str, Any]) -> None:
    """The request reached the stub (an answer, not a transport failure) at the SDK's path."""
    for profile, stub, call in (
        ("g", "gemini", "models.get(gemini-2.5-flash)"),
        ("a", "anthropic", "models.retrieve(claude-doctor)"),
    ):
        _, what = probed["lines"][profile]
        assert (
            what.startswith(f"{call} at {probed[stub].url}: ") and "unreachable" not in what and "no answer" not in what
        )


def test_gemini_answers_models_get(probed: dict[str, Any]) -> None:
    assert probed["lines"]["g"] == ("ok", f"models.get(gemini-2.5-flash) at {probed['gemini'].url}: answered")


def test_anthropic_answers_models_retrieve(probed: dict[str, Any]) -> None:
    assert probed["lines"]["a"] == ("ok", f"models.retrieve(claude-doctor) at {probed['anthropic'].url}: answered")


def test_no_key_is_printed(probed: dict[str, Any]) -> None:
    done = probed["done"]
    for key in KEYS:
        assert key not in done.stdout and key not in done.stderr
    assert "process-env-not-used" not in done.stdout + done.stderr


# --- the catalog in Firestore ---------------------------------------------------------------------


def test_firestore_profiles_and_prompts_are_checked(db: Any, tmp_path: Path) -> None:
    """The emulator holds the repository's catalog (the ``db`` fixture pushed it)."""
    function_env = {
        "ALLOWED_LLM_PROFILES": "flash-json,pro-json,not-pushed",
        "ALLOWED_MODELS": "gemini-2.5-flash,gemini-2.5-pro",
        "GOOGLE_CLOUD_PROJECT": IT_PROJECT,
        "ARTIFACTS_BUCKET": "b",
        "GEMINI_API_KEY": GEMINI_KEY,
    }
    env_file = write_env(tmp_path / "env.yaml", function_env)
    done = doctor(
        "--firestore", "--env-file", str(env_file), "--json", env=os.environ | {"GOOGLE_CLOUD_PROJECT": IT_PROJECT}
    )
    document = json.loads(done.stdout)
    assert document["sources"]["catalog"] == "Firestore llm_profiles/ and prompts/"
    failed = [(c["profile"], c["check"], c["what"]) for c in document["checks"] if c["level"] == "FAIL"]
    assert failed == [("not-pushed", "profile", "not in Firestore llm_profiles/ and prompts/")]
    checked = {(c["profile"], c["check"]) for c in document["checks"]}
    assert {
        ("-", "prompt weekly_report"),
        ("flash-json", "schema weekly_report"),
        ("pro-json", "credentials"),
    } <= checked
    assert done.returncode == 1 and GEMINI_KEY not in done.stdout + done.stderr


def test_firestore_without_a_project_is_bad_usage(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")}
    done = doctor("--firestore", "--env-file", str(write_env(tmp_path / "env.yaml", {})), env=env)
    assert done.returncode == 2 and "GOOGLE_CLOUD_PROJECT is not set" in done.stderr
