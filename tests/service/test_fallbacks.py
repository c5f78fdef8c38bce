"""A profile's fallbacks: tried in order when its model stays unavailable after the retries, each
governed; every request is counted, priced at its own profile's rates, and the outputs say who served."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.builders import make_profile, make_prompt, step_data
from tests.fakes import FakeCatalog, FakeLlm, reply
from tests.world import World
from worker_llm_client.errors import (
    InvalidOutput,
    LlmAuth,
    LlmBadRequest,
    LlmBlocked,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
    StepError,
)
from worker_llm_client.execution_models import Endpoint, LlmRequest, LlmResult, Pricing

PRICED = Pricing(input_per_mtok=1.0, output_per_mtok=2.0, as_of="2026-11-01")
LOCAL = Endpoint("http://127.0.0.1:9/v1", "json_object_schema")


def _catalog(**primary: Any) -> FakeCatalog:
    return FakeCatalog(
        [make_prompt()],
        [
            make_profile("fast", fallbacks=("claude", "gpt"), **primary),
            make_profile("claude", provider="anthropic", model="claude-sonnet-4-6", pricing=PRICED),
            make_profile("gpt", provider="openai", model="gpt-5-mini", pricing=PRICED),
            make_profile("local", provider="openai_compatible", model="smollm2", endpoint=LOCAL),
        ],
    )


def _world(by_model: dict[str, Any], catalog: FakeCatalog | None = None, **policy: Any) -> World:
    """Each model answers with its entry: an exception, a reply, or a list played in order."""

    def respond(request: LlmRequest) -> LlmResult | Exception:
        answer = by_model.get(request.model, reply())
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer  # type: ignore[no-any-return]

    allowed = {"allowed_llm_profiles": frozenset({"fast", "claude", "gpt", "local"})}
    models = {"allowed_models": frozenset({"gemini-2.5-flash", "claude-sonnet-4-6", "gpt-5-mini", "smollm2"})}
    return World(FakeLlm(respond), catalog or _catalog(), **{**allowed, **models, **policy})


def _models(world: World) -> list[str]:
    return [request.model for request in world.llm.requests]


@pytest.mark.parametrize("error", [LlmUnavailable("503"), LlmRateLimited("429", retry_after=1.0), LlmTimeout("t")])
def test_the_first_fallback_serves_when_the_model_stays_unavailable(error: StepError) -> None:
    world = _world({"gemini-2.5-flash": error})
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "SUCCEEDED"
    outputs = step["outputs"]
    assert _models(world) == ["gemini-2.5-flash"] * 6 + ["claude-sonnet-4-6"]
    assert (outputs["llmProfile"], outputs["provider"], outputs["model"]) == (
        "claude",
        "anthropic",
        "claude-sonnet-4-6",
    )
    assert outputs["fallbackFrom"] == "fast"
    assert outputs["llmCalls"] == 7
    assert outputs["usage"]["promptTokens"] == 10  # only the reply that came back carried usage
    assert outputs["costUsd"] == pytest.approx((10 * 1.0 + 7 * 2.0) / 1e6)  # at the fallback's rates
    switch = [e for e in logs if e["event"] == "llm.fallback"]
    assert switch == [
        {
            "event": "llm.fallback",
            "log_level": "warning",
            "fromProfile": "fast",
            "toProfile": "claude",
            "code": error.code,
            "provider": "anthropic",
            "model": "claude-sonnet-4-6",
        }
    ]
    metadata = next(iter(world.artifacts.objects.values()))[1]
    assert metadata["fallbackFrom"] == "fast" and metadata["llmProfile"] == "claude"


def test_fallbacks_are_tried_in_order_until_one_serves() -> None:
    world = _world({"gemini-2.5-flash": LlmUnavailable("503"), "claude-sonnet-4-6": LlmRateLimited("429")})
    world.executor.handle(world.run({"s1": step_data()}))
    outputs = world.step("s1")["outputs"]
    assert outputs["llmProfile"] == "gpt" and outputs["fallbackFrom"] == "fast"
    assert _models(world)[-1] == "gpt-5-mini" and outputs["llmCalls"] == len(world.llm.requests) == 13


def test_when_every_fallback_stays_unavailable_the_last_error_waits_for_the_next_attempt() -> None:
    world = _world({m: LlmUnavailable("503") for m in ("gemini-2.5-flash", "claude-sonnet-4-6", "gpt-5-mini")})
    world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "RETRY_WAIT" and step["error"]["code"] == "LLM_UNAVAILABLE"
    assert len(world.llm.requests) == 18


@pytest.mark.parametrize(
    "error", [LlmAuth("401"), LlmBlocked("blocked"), InvalidOutput("bad", "bad")], ids=lambda e: e.code
)
def test_never_on_a_permanent_error_a_block_or_invalid_output(error: StepError) -> None:
    primary: Any = error if not isinstance(error, InvalidOutput) else reply("not json")
    if isinstance(error, LlmBlocked):
        primary = reply(None, finish_reason="SAFETY")
    world = _world({"gemini-2.5-flash": primary})
    world.executor.handle(world.run({"s1": step_data()}))
    assert set(_models(world)) == {"gemini-2.5-flash"}
    assert world.step("s1")["status"] == "FAILED"


def test_a_fallback_outside_governance_is_skipped_and_the_next_one_serves() -> None:
    world = _world(
        {"gemini-2.5-flash": LlmUnavailable("503")}, allowed_models=frozenset({"gemini-2.5-flash", "gpt-5-mini"})
    )
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["outputs"]["llmProfile"] == "gpt"
    skipped = [e for e in logs if e["event"] == "llm.fallback" and "skipped" in e]
    assert [(e["toProfile"], e["skipped"]) for e in skipped] == [("claude", "MODEL_NOT_ALLOWED")]
    assert any(e["event"] == "governance.violation" and e["profile"] == "claude" for e in logs)


@pytest.mark.parametrize(
    ("catalog_change", "skipped"),
    [("missing", "PROFILE_NOT_FOUND"), ("disabled", "PROFILE_NOT_ALLOWED"), ("not_allowlisted", "PROFILE_NOT_ALLOWED")],
)
def test_an_unusable_fallback_is_skipped(catalog_change: str, skipped: str) -> None:
    profiles = {
        "fast": make_profile("fast", fallbacks=("claude",)),
        "claude": make_profile(
            "claude", provider="anthropic", model="claude-sonnet-4-6", enabled=catalog_change != "disabled"
        ),
    }
    if catalog_change == "missing":
        del profiles["claude"]
    allowed = {"fast"} | ({"claude"} if catalog_change != "not_allowlisted" else set())
    world = _world(
        {"gemini-2.5-flash": LlmUnavailable("503")},
        FakeCatalog([make_prompt()], list(profiles.values())),
        allowed_llm_profiles=frozenset(allowed),
    )
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["status"] == "RETRY_WAIT" and set(_models(world)) == {"gemini-2.5-flash"}
    assert [e.get("skipped") for e in logs if e["event"] == "llm.fallback"] == [skipped]


def test_a_fallback_whose_provider_cannot_take_the_schema_is_skipped() -> None:
    array_root = make_prompt(schema={"type": "array", "items": {"type": "string"}})
    catalog = FakeCatalog(
        [array_root],
        [make_profile("fast", fallbacks=("gpt",)), make_profile("gpt", provider="openai", model="gpt-5-mini")],
    )
    world = _world({"gemini-2.5-flash": LlmUnavailable("503")}, catalog)
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    assert [e.get("skipped") for e in logs if e["event"] == "llm.fallback"] == ["SCHEMA_INVALID"]
    assert world.step("s1")["status"] == "RETRY_WAIT"


def test_a_replay_after_a_fallback_served_reuses_the_fallbacks_artifact() -> None:
    world = _world({"gemini-2.5-flash": LlmUnavailable("503")})
    world.executor.handle(world.run({"s1": step_data()}))
    first = dict(world.step("s1")["outputs"])
    calls = len(world.llm.requests)
    world.run({"s1": step_data()})  # the orchestrator puts the step up again
    world.executor.handle(world.runs.get_run("r1"))
    again = world.step("s1")["outputs"]
    assert again["cached"] is True and again["gcs_uri"] == first["gcs_uri"]
    assert again["llmProfile"] == "claude" and again["fallbackFrom"] == "fast"
    assert len(world.llm.requests) == calls + 6  # the primary was tried again, the fallback not called


def test_the_served_requests_fingerprint_names_the_artifact() -> None:
    """A fallback's report is stored where a step naming that profile directly would store it."""
    world = _world({"gemini-2.5-flash": LlmUnavailable("503")})
    world.executor.handle(world.run({"s1": step_data()}))
    direct = _world({})
    direct.executor.handle(direct.run({"s1": step_data(profile="claude")}))
    assert direct.step("s1")["outputs"]["llmProfile"] == "claude"
    assert world.step("s1")["outputs"]["gcs_uri"] == direct.step("s1")["outputs"]["gcs_uri"]


def test_a_fallback_that_refuses_our_key_is_skipped_and_the_step_keeps_its_own_transient_error() -> None:
    world = _world({"gemini-2.5-flash": LlmUnavailable("503"), "claude-sonnet-4-6": LlmAuth("401")})
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["outputs"]["llmProfile"] == "gpt"  # the next fallback served
    lines = [(e["toProfile"], e.get("code"), e.get("skipped")) for e in logs if e["event"] == "llm.fallback"]
    assert lines == [
        ("claude", "LLM_UNAVAILABLE", None),
        ("claude", None, "LLM_AUTH"),
        ("gpt", "LLM_UNAVAILABLE", None),
    ]
    assert all(e["fromProfile"] == "fast" for e in logs if e["event"] == "llm.fallback")

    down = _world(
        {m: LlmBadRequest("400") for m in ("claude-sonnet-4-6", "gpt-5-mini")} | {"gemini-2.5-flash": LlmTimeout("t")}
    )
    down.executor.handle(down.run({"s1": step_data()}))
    step = down.step("s1")
    assert step["status"] == "RETRY_WAIT" and step["error"]["code"] == "LLM_TIMEOUT"  # the primary may recover
    assert step["error"]["retryable"] is True


def test_a_fallbacks_block_or_invalid_output_is_the_steps_result() -> None:
    world = _world(
        {"gemini-2.5-flash": LlmUnavailable("503"), "claude-sonnet-4-6": reply(None, finish_reason="refusal")}
    )
    world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "FAILED" and step["error"]["code"] == "LLM_BLOCKED"
    assert "gpt-5-mini" not in _models(world)
