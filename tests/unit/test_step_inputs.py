from __future__ import annotations

import pytest

from tests.builders import make_run, make_step, step_data
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.errors import InvalidStep


def test_parses_inputs() -> None:
    step = make_step(prompt_id="p", profile="fast", vars={"x": 1}, maxAttempts=5)
    inputs = parse_inputs(step, {"s1": step})
    assert (inputs.prompt_id, inputs.llm_profile, dict(inputs.vars), inputs.max_attempts) == ("p", "fast", {"x": 1}, 5)
    assert inputs.prompt_version is None


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
