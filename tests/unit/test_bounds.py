"""Bounds on what outsiders choose: the provider's strings stored on the step."""

from __future__ import annotations

import pytest

from worker_llm_client.core.bounds import MAX_PROVIDER_STRING, clip_optional


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("STOP", "STOP"),
        ("", None),
        (None, None),
        (7, None),
        ("x" * 300, "x" * (MAX_PROVIDER_STRING - 1) + "…"),
    ],
)
def test_a_provider_string_is_stored_bounded_or_not_at_all(value: object, stored: str | None) -> None:
    assert clip_optional(value) == stored
