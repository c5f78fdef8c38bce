from __future__ import annotations

from dataclasses import replace
from urllib.parse import unquote

import pytest

from tests.builders import REPORT_SCHEMA, make_profile, make_prompt
from worker_llm_client.core.artifact_naming import artifact_object_name, debug_object_name, request_fingerprint
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, SafetySetting, Turn


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


# --- object names GCS accepts, one per (run, step) -------------------------------------------------

FINGERPRINT = "0" * 64  # what request_fingerprint returns: 64 hex digits
GCS_NAME_MAX_BYTES = 1024
LONGEST_DEBUG_SUFFIX_ATTEMPT = 10**19  # more digits than any attempt counter will reach
PINNED_CUT_NAME = (  # "每周销售报告" * 20: its first 44 characters, then 128 bits of its sha256
    f"flow_runs/r/{'%E6%AF%8F%E5%91%A8%E9%94%80%E5%94%AE%E6%8A%A5%E5%91%8A' * 7}%E6%AF%8F%E5%91%A8"
    f"~e44f73635e9a5f30ede2f2d71671d682/{FINGERPRINT}.json"
)


def _name(run_id: str, step_id: str) -> str:
    return artifact_object_name(run_id, step_id, FINGERPRINT)


def _segments(run_id: str, step_id: str) -> list[str]:
    prefix, run, step, leaf = _name(run_id, step_id).split("/")
    assert (prefix, leaf) == ("flow_runs", f"{FINGERPRINT}.json")
    return [run, step]


def _assert_valid_for_gcs(name: str) -> None:
    for candidate in (name, debug_object_name(name, LONGEST_DEBUG_SUFFIX_ATTEMPT)):
        assert len(candidate.encode("utf-8")) < GCS_NAME_MAX_BYTES, candidate
        assert "\r" not in candidate and "\n" not in candidate
        assert not candidate.startswith(".well-known/acme-challenge/")
        assert not {".", ".."} & set(candidate.split("/")), candidate


@pytest.mark.parametrize(
    ("run_id", "step_id", "name"),
    [
        ("r1", "weekly-report.v2", f"flow_runs/r1/weekly-report.v2/{FINGERPRINT}.json"),
        ("run 7", "a/b", f"flow_runs/run%207/a%2Fb/{FINGERPRINT}.json"),
        ("报告-é-run", "周报", f"flow_runs/%E6%8A%A5%E5%91%8A-%C3%A9-run/%E5%91%A8%E6%8A%A5/{FINGERPRINT}.json"),
        ("r~1", "...", f"flow_runs/r~1/.../{FINGERPRINT}.json"),
        ("r.", ".hidden", f"flow_runs/r./.hidden/{FINGERPRINT}.json"),
        ("%2E", "100%", f"flow_runs/%252E/100%25/{FINGERPRINT}.json"),
        ("r" * 400, "s", f"flow_runs/{'r' * 400}/s/{FINGERPRINT}.json"),  # the longest kept as it is
        ("r", "周" * 44, f"flow_runs/r/{'%E5%91%A8' * 44}/{FINGERPRINT}.json"),  # 396 encoded characters
    ],
)
def test_names_of_ordinary_ids_are_unchanged(run_id: str, step_id: str, name: str) -> None:
    """Replays after a deploy find the artifacts written before it only if these stay as they were."""
    assert _name(run_id, step_id) == name


@pytest.mark.parametrize(("step_id", "segment"), [(".", "%2E"), ("..", "%2E%2E")])
def test_dot_segments_are_escaped(step_id: str, segment: str) -> None:
    assert _segments("r", step_id) == ["r", segment]
    assert _segments(step_id, "s") == [segment, "s"]
    _assert_valid_for_gcs(_name(step_id, step_id))


def test_a_long_cjk_step_id_is_cut_readably_and_named_by_its_hash() -> None:
    step_id = "每周销售报告" * 20  # 120 characters, 1,080 encoded
    _, segment = _segments("r", step_id)
    prefix, _, digest = segment.rpartition("~")
    assert step_id.startswith(unquote(prefix)) and len(prefix) <= 400
    assert len(digest) == 32 and int(digest, 16) >= 0
    _assert_valid_for_gcs(_name("r", step_id))


@pytest.mark.parametrize(
    "run_id",
    [
        pytest.param("r" * 1_500, id="1500-ascii-bytes"),
        pytest.param("报" * 500, id="1500-utf8-bytes"),
        pytest.param("😀" * 375, id="1500-bytes-of-4-byte-characters"),
        pytest.param("%" * 1_500, id="1500-bytes-each-escaped"),
    ],
)
def test_names_of_the_longest_ids_fit_gcs(run_id: str) -> None:
    _assert_valid_for_gcs(_name(run_id, run_id))
    _assert_valid_for_gcs(_name(run_id, "\r\n" + run_id))


def _tricky_ids() -> list[str]:
    base = "x" * 1_000
    ids = [base + "a", base + "b", base, base + "é", "é" + base, "", ".", "..", "...", "%2E", "%2E%2E", "~", "a\nb"]
    for length in range(395, 405):  # around the cut, with multi-byte characters straddling it
        ids += ["a" * length, "a" * (length - 3) + "周", "a" * (length - 1) + "😀", "%" * (length // 3)]
    cut = artifact_object_name(base + "a", "s", FINGERPRINT).split("/")[1]
    ids += [cut, unquote(cut), cut.rpartition("~")[0]]  # someone naming a run like another run's cut segment
    return ids


def test_different_ids_never_share_a_name() -> None:
    ids = _tricky_ids()
    pairs = [(run_id, step_id) for run_id in ids for step_id in ids[:12]]
    names = [_name(run_id, step_id) for run_id, step_id in pairs]
    assert len(set(names)) == len(set(pairs))
    for name in names:
        _assert_valid_for_gcs(name)


def test_names_are_deterministic_across_processes_and_deploys() -> None:
    """A cut name is pinned: reusing an artifact after a deploy depends on it never changing."""
    step_id = "每周销售报告" * 20
    assert _name("r", step_id) == _name("r", step_id)
    assert _name("r", step_id) == PINNED_CUT_NAME
