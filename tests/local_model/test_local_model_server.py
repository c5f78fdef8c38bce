"""The local model's service and profile, without starting the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.local_model import (
    LOCAL_PROFILE,
    MODEL_ALIAS,
    LocalModelServer,
    allow_local_model,
    local_profile,
    profile_body,
)
from devstack.services import PrerequisiteMissing
from worker_llm_client.catalog.documents import parse_profile
from worker_llm_client.execution_models import Endpoint

pytestmark = pytest.mark.local_model


def test_a_missing_venv_names_the_make_target(tmp_path: Path) -> None:
    server = LocalModelServer(tmp_path, venv=tmp_path / "absent")

    with pytest.raises(PrerequisiteMissing, match="make local-model"):
        server.start()

    assert not server.is_running()


def test_the_profile_is_a_free_openai_compatible_endpoint_with_a_schema_grammar() -> None:
    profile = parse_profile(LOCAL_PROFILE, {**local_profile("http://127.0.0.1:9/v1"), "version": 1})

    assert (profile.provider, profile.model) == ("openai_compatible", MODEL_ALIAS)
    assert profile.endpoint == Endpoint("http://127.0.0.1:9/v1", "json_object_schema", None)
    assert profile.generation.temperature == 0
    assert profile.pricing is not None and (profile.pricing.input_per_mtok, profile.pricing.output_per_mtok) == (0, 0)
    assert profile_body("http://127.0.0.1:9/v1")["sha256"] != profile_body("http://127.0.0.1:10/v1")["sha256"]


def test_the_local_profile_and_model_join_the_allowlists() -> None:
    env = {"ALLOWED_LLM_PROFILES": "pro-json,flash-json", "ALLOWED_MODELS": "", "OTHER": "x"}

    assert allow_local_model(env) == {
        "ALLOWED_LLM_PROFILES": f"flash-json,{LOCAL_PROFILE},pro-json",
        "ALLOWED_MODELS": MODEL_ALIAS,
        "OTHER": "x",
    }
