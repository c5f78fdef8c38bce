from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.builders import make_run, make_step, step_data
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.errors import InvalidStep


def test_parses_inputs() -> None:
    step = make_step(prompt_id="p", profile="fast", vars={"x": 1}, maxAttempts=5)
    inputs = parse_inputs(step, {"s1": step})
    assert (inputs.prompt_id, inputs.llm_profile, dict(inputs.vars), inputs.max_attempts) == ("p", "fast", {"x": 1}, 5)
    assert inputs.prompt_version is None


def test_a_prompt_version_pins_the_prompt_and_absent_vars_are_empty() -> None:
    run = make_run({"s1": {**step_data(), "inputs": {"promptId": "p", "promptVersion": 3, "llm": {"llmProfile": "f"}}}})
    inputs = parse_inputs(run.steps["s1"], run.steps)
    assert (inputs.prompt_version, dict(inputs.vars)) == (3, {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inputs": None}, "inputs must be a map"),
        ({"inputs": {"llm": {"llmProfile": "fast"}}}, "inputs.promptId is required"),
        ({"inputs": {"promptId": "p"}}, "inputs.llm.llmProfile is required"),
        ({"inputs": {"promptId": "a/b", "llm": {"llmProfile": "f"}}}, "must not contain '/'"),
        (
            {"inputs": {"promptId": "p", "promptVersion": "2", "llm": {"llmProfile": "f"}}},
            "promptVersion must be a positive integer",
        ),
        (
            {"inputs": {"promptId": "p", "promptVersion": True, "llm": {"llmProfile": "f"}}},
            "promptVersion must be a positive integer",
        ),
        (
            {"inputs": {"promptId": "p\ud800", "llm": {"llmProfile": "f"}}},
            r"^inputs\.promptId must be valid UTF-8 text$",
        ),
        ({"inputs": {"promptId": "p", "llm": {"llmProfile": "f"}, "vars": [1]}}, "vars must be a map"),
        ({"maxAttempts": 0}, "maxAttempts must be a positive integer"),
        ({"dependsOn": "a"}, "dependsOn must be a list"),
        ({"dependsOn": ["s1"]}, "names the step itself"),
        ({"dependsOn": ["ghost"]}, "unknown steps: ghost"),
    ],
)
def test_rejects_bad_steps(data: dict, message: str) -> None:
    run = make_run({"s1": {**step_data(), **data}})
    with pytest.raises(InvalidStep, match=message):
        parse_inputs(run.steps["s1"], run.steps)


@pytest.mark.parametrize("bad_id", ["__evil__", "____", "..", ".", "é" * 751, "a/b", "\udc00"])
@pytest.mark.parametrize("field", ["promptId", "llmProfile"])
def test_ids_firestore_would_reject_are_invalid_step_naming_the_field(bad_id: str, field: str) -> None:
    inputs = {"promptId": "p", "llm": {"llmProfile": "f"}}
    if field == "promptId":
        inputs["promptId"] = bad_id
    else:
        inputs["llm"] = {"llmProfile": bad_id}
    run = make_run({"s1": {**step_data(), "inputs": inputs}})
    with pytest.raises(InvalidStep, match=f"inputs.{'promptId' if field == 'promptId' else 'llm.llmProfile'} ") as info:
        parse_inputs(run.steps["s1"], run.steps)
    assert len(bad_id) < 3 or bad_id not in info.value.message


@pytest.mark.parametrize("good_id", ["__x", "x__", "___", "a.b", "...", "weekly-report.v2", "报" * 500, "é" * 750])
def test_ids_firestore_accepts_are_kept(good_id: str) -> None:
    step = make_step(prompt_id=good_id, profile=good_id)
    inputs = parse_inputs(step, {"s1": step})
    assert (inputs.prompt_id, inputs.llm_profile) == (good_id, good_id)


def test_vars_are_plain_json_values() -> None:
    step = make_step(vars={"when": datetime(2026, 1, 2, tzinfo=UTC), "pair": (1, 2), "raw": b"a"})
    assert parse_inputs(step, {"s1": step}).vars == {
        "pair": [1, 2],
        "raw": "YQ==",
        "when": "2026-01-02T00:00:00.000000Z",
    }


def test_vars_that_are_not_json_values_are_invalid_step() -> None:
    step = make_step(vars={"team": {"lead": object()}})
    with pytest.raises(InvalidStep, match=r"^inputs\.vars\.team\.lead is not a JSON value \(object\)$"):
        parse_inputs(step, {"s1": step})


@pytest.mark.parametrize(
    ("steps", "step_id", "message"),
    [
        ({"a": step_data(depends_on=["b"]), "b": step_data(depends_on=["a"])}, "a", "a -> b -> a"),
        ({"a": step_data(depends_on=["b"]), "b": step_data(depends_on=["a"])}, "b", "b -> a -> b"),
        (
            {"a": step_data(depends_on=["c"]), "b": step_data(depends_on=["a"]), "c": step_data(depends_on=["b"])},
            "b",
            "b -> a -> c -> b",
        ),
        (  # a claimed member still closes the cycle; a FAILED one too
            {"a": step_data(status="RUNNING", depends_on=["b"]), "b": step_data(status="FAILED", depends_on=["a"])},
            "a",
            "a -> b -> a",
        ),
    ],
)
def test_a_dependency_cycle_is_invalid_step_naming_it(steps: dict, step_id: str, message: str) -> None:
    run = make_run(steps)
    with pytest.raises(InvalidStep, match=f"^dependsOn closes a cycle of {message.count('->')} steps: {message}$"):
        parse_inputs(run.steps[step_id], run.steps)


def test_a_step_downstream_of_a_cycle_is_not_on_it() -> None:
    run = make_run(
        {"a": step_data(depends_on=["b"]), "b": step_data(depends_on=["a"]), "c": step_data(depends_on=["a"])}
    )
    assert parse_inputs(run.steps["c"], run.steps).prompt_id == "weekly"


def test_a_cycle_through_a_succeeded_step_is_no_cycle() -> None:
    run = make_run({"a": step_data(depends_on=["b"]), "b": step_data(status="SUCCEEDED", depends_on=["a"])})
    assert parse_inputs(run.steps["a"], run.steps).prompt_id == "weekly"


def test_a_long_cycle_is_named_in_a_bounded_message() -> None:
    ids = [f"step-{i:03d}-" + "x" * 100 for i in range(500)]
    run = make_run({sid: step_data(depends_on=[ids[i - 1]]) for i, sid in enumerate(ids)})  # ids[0] <- ids[-1]
    with pytest.raises(InvalidStep, match=r"^dependsOn closes a cycle of 500 steps: step-000-x+… -> step-499-") as info:
        parse_inputs(run.steps[ids[0]], run.steps)
    assert info.value.message.endswith(" -> …") and len(info.value.message) < 500


def test_unknown_dependencies_are_named_in_a_bounded_message() -> None:
    run = make_run({"s1": step_data(depends_on=[f"ghost-{i}" for i in range(100)])})
    with pytest.raises(InvalidStep, match=r"unknown steps: ghost-0, ghost-1, .* \(100 in all\)$") as info:
        parse_inputs(run.steps["s1"], run.steps)
    assert len(info.value.message) < 300
