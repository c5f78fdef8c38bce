from __future__ import annotations

from dataclasses import replace

from tests.builders import REPORT_SCHEMA, make_profile, make_prompt
from worker_llm_client.core.artifact_naming import artifact_object_name, request_fingerprint
from worker_llm_client.report_models import GenerationSettings, LlmRequest, SafetySetting, Turn


def _request(**changes: object) -> LlmRequest:
    base = LlmRequest(
        "gemini",
        "gemini-2.5-flash",
        "sys",
        (Turn("user", "user text"),),
        REPORT_SCHEMA,
        GenerationSettings(temperature=0.2),
        (),
        30.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_fingerprint_is_stable_and_sensitive_to_everything_that_shapes_the_request() -> None:
    prompt, profile = make_prompt(), make_profile()
    base = request_fingerprint(prompt, profile, _request())
    assert base == request_fingerprint(prompt, profile, _request())
    assert len(base) == 64
    variants = [
        request_fingerprint(make_prompt(version=2), profile, _request()),
        request_fingerprint(prompt, make_profile(version=2), _request()),
        request_fingerprint(prompt, profile, _request(model="gemini-2.5-pro")),
        request_fingerprint(prompt, profile, _request(contents=(Turn("user", "other text"),))),
        request_fingerprint(prompt, profile, _request(system_instruction="other")),
        request_fingerprint(prompt, profile, _request(generation=GenerationSettings(temperature=0.3))),
        request_fingerprint(
            prompt, profile, _request(safety_settings=(SafetySetting("HARM_CATEGORY_HATE_SPEECH", "BLOCK_NONE"),))
        ),
        request_fingerprint(prompt, profile, _request(response_schema={"type": "object"})),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_timeout_does_not_change_the_fingerprint() -> None:
    prompt, profile = make_prompt(), make_profile()
    assert request_fingerprint(prompt, profile, _request()) == request_fingerprint(
        prompt, profile, _request(timeout_seconds=5.0)
    )


def test_object_name_quotes_ids() -> None:
    assert artifact_object_name("r1", "weekly-report.v2", "ab") == "flow_runs/r1/weekly-report.v2/ab.json"
    assert artifact_object_name("r 1", "a/b", "ab") == "flow_runs/r%201/a%2Fb/ab.json"
