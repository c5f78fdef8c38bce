"""A credential in vars never reaches the model: redacted (the default) or the step refused."""

from __future__ import annotations

from structlog.testing import capture_logs

from tests.builders import make_profile, make_prompt, step_data
from tests.fakes import FakeCatalog, FakeLlm
from tests.world import World

KEY = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"  # shaped like a Google API key, valid nowhere


def _world(policy: str | None) -> World:
    profile = make_profile() if policy is None else make_profile(secrets_policy=policy)
    return World(FakeLlm(), catalog=FakeCatalog([make_prompt(template="Report for {{ team }}.")], [profile]))


def test_a_credential_is_redacted_before_rendering_and_counted() -> None:
    world = _world(None)
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data(vars={"team": f"core {KEY}"})}))
    [request] = world.llm.requests
    assert request.contents[0].text == "Report for core [REDACTED:google-api-key:1]."
    step = world.step("s1")
    assert step["status"] == "SUCCEEDED" and step["outputs"]["secretsRedacted"] == 1
    [line] = [entry for entry in logs if entry["event"] == "input.secrets_redacted"]
    assert (line["count"], line["kinds"], line["vars"]) == (1, ["google-api-key"], ["team"])
    assert KEY not in repr(logs) and KEY not in repr(
        step["outputs"]
    )  # the step's own inputs keep it: the orchestrator's


def test_clean_vars_are_sent_as_they_are() -> None:
    world = _world("reject")
    world.executor.handle(world.run({"s1": step_data(vars={"team": "core"})}))
    assert world.llm.requests[0].contents[0].text == "Report for core."
    assert world.step("s1")["outputs"]["secretsRedacted"] == 0


def test_a_reject_profile_fails_the_step_naming_the_var_and_the_kind_never_the_value() -> None:
    world = _world("reject")
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data(vars={"team": "core", "auth": {"key": KEY}})}))
    error = world.step("s1")["error"]
    assert (error["code"], error["retryable"]) == ("INPUT_REJECTED", False)
    assert "inputs.vars.auth.key holds a credential (google-api-key)" in error["message"]
    assert KEY not in error["message"] and KEY not in repr(logs)
    assert world.llm.requests == []
