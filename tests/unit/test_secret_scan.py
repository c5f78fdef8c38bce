"""Credentials in vars are found and replaced before a template renders them; nothing else is.

The keys below are built by concatenation so that no scanner (ours, GitHub's) mistakes this file
for a leak; they are shaped like the real ones and are not valid anywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from worker_llm_client.core.secret_scan import SecretFound, find_secrets, redact_secrets

GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
ANTHROPIC = "sk-ant-" + "api03-" + "Jq3v" * 10
OPENAI = "sk-" + "proj-" + "Z8kQ" * 10
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp" + "_" + "R2d2" * 9
SLACK = "xoxb-" + "123456789012-" + "abcdefghijklmnop"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXN0cmluZw"
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1L\nzZ7Gk=\n-----END RSA PRIVATE KEY-----"
BEARER_TOKEN = "Zm9vYmFyYmF6cXV4cXV1eA"


@pytest.mark.parametrize(
    ("text", "kind", "redacted"),
    [
        (f"key {GOOGLE} here", "google-api-key", "key [REDACTED:google-api-key:1] here"),
        (ANTHROPIC, "anthropic-api-key", "[REDACTED:anthropic-api-key:1]"),
        (f"openai={OPENAI}", "openai-api-key", "openai=[REDACTED:openai-api-key:1]"),
        (f"id {AWS}", "aws-access-key", "id [REDACTED:aws-access-key:1]"),
        (GITHUB, "github-token", "[REDACTED:github-token:1]"),
        (SLACK, "slack-token", "[REDACTED:slack-token:1]"),
        (STRIPE, "stripe-access-key", "[REDACTED:stripe-access-key:1]"),
        (JWT, "json-web-token", "[REDACTED:json-web-token:1]"),
        (f"cert:\n{PEM}\nend", "private-key", "cert:\n[REDACTED:private-key:1]\nend"),
        (f"Authorization: Bearer {BEARER_TOKEN}", "bearer-token", "Authorization: Bearer [REDACTED:bearer-token:1]"),
        ("https://alice:" + "s3cretpassw0rd" + "@db.example.com/x", "basic-auth-credentials",
         "https://alice:[REDACTED:basic-auth-credentials:1]@db.example.com/x"),
    ],
)  # fmt: skip
def test_each_kind_of_credential_is_replaced_where_it_stands(text: str, kind: str, redacted: str) -> None:
    cleaned, found = redact_secrets({"note": text})
    assert cleaned == {"note": redacted}
    assert found == [SecretFound("note", kind)]


def test_the_same_secret_keeps_its_number_and_paths_name_where_it_was() -> None:
    variables: dict[str, Any] = {
        "team": "core",
        "creds": {"primary": GOOGLE, "odd key": [1, f"again {GOOGLE}", AWS]},
        "notes": [None, 3.5, True, f"{AWS} and {GOOGLE}"],
    }
    cleaned, found = redact_secrets(variables)
    assert cleaned == {
        "team": "core",
        "creds": {
            "primary": "[REDACTED:google-api-key:1]",
            "odd key": [1, "again [REDACTED:google-api-key:1]", "[REDACTED:aws-access-key:2]"],
        },
        "notes": [None, 3.5, True, "[REDACTED:aws-access-key:2] and [REDACTED:google-api-key:1]"],
    }
    assert [(f.var, f.kind) for f in found] == [
        ("creds.primary", "google-api-key"),
        ("creds['odd key'][1]", "google-api-key"),
        ("creds['odd key'][2]", "aws-access-key"),
        ("notes[3]", "google-api-key"),
        ("notes[3]", "aws-access-key"),
    ]
    assert find_secrets(variables) == found
    assert GOOGLE not in repr(found) and AWS not in repr(found)


@pytest.mark.parametrize(
    "text",
    [
        "Weekly report for the payments team: refunds p95 down to 1.2s.",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "run 3f2b9c1e-8a7d-4e5f-9b0c-1d2e3f4a5b6c, commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "see https://example.com/path?x=1 or mail ops@example.com",
        "the bearer of bad news",
        "sk-short",
        "10.0.0.1 and 8.8.8.8",  # addresses are not credentials (the IP plugin is left out)
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_secrets({"x": text}) == ({"x": text}, [])


@pytest.mark.parametrize(
    "hostile",
    [
        "-----BEGIN A PRIVATE KEY-----" * 8_000,  # unclosed blocks
        "://a:" * 50_000,  # quadratic on Python's re for BasicAuth's pattern: runs on RE2
        "cloudant_key: " * 18_000,  # the lookbehind patterns that stay on Python's re
        "ibm_cloud_iam_api_key: " * 11_000,
        "glpat-" + "a" * 200_000,
    ],
)
def test_a_hostile_var_is_scanned_to_the_end(hostile: str) -> None:
    """256 KiB of adversarial text is scanned in linear time (the suite's timeout guards it)."""
    assert redact_secrets({"x": hostile})[0] == {"x": hostile}


def test_a_secret_repeated_in_one_value_is_found_once_and_replaced_everywhere() -> None:
    cleaned, found = redact_secrets({"x": f"{AWS} then {AWS}"})
    assert cleaned == {"x": "[REDACTED:aws-access-key:1] then [REDACTED:aws-access-key:1]"}
    assert found == [SecretFound("x", "aws-access-key")]
