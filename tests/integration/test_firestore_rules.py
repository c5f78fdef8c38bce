"""firestore.rules on the real Firestore emulator: no client-SDK request reads or writes anything.

The emulator evaluates Security Rules for every request that does not carry
``Authorization: Bearer owner``. That header is what the server SDKs send to an emulator (the
Python client does) and it stands for IAM-authenticated server access, which Rules never bind in
production either. So each denied request below is sent twice more as a control: with ``owner``
(the same request succeeds, so a denial is never a malformed request) and, on an emulator loaded
with a permissive rules file, with the same fake ID token (it succeeds there, so the emulator did
accept the token as a signed-in user and the denial comes from our rules).

Client-SDK-style identities: no ``Authorization`` header (a web/mobile app signed out) and an
unsigned Firebase ID token (``alg: none``; the emulator does not check signatures) for a signed-in
user, including one whose token claims ``admin: true``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devstack.services import LOOPBACK_OPENER, FirestoreEmulator
from tests.stacks import ROOT

pytestmark = pytest.mark.integration

PROJECT = "rules-project"
RULES = ROOT / "firestore.rules"
DOCUMENTS = [
    "flow_runs/run-1",
    "prompts/weekly_report",
    "prompts/weekly_report/versions/1",
    "llm_profiles/flash-json",
    "llm_profiles/flash-json/versions/1",
    "anything_else/doc-1",  # deny by default: a collection nobody has thought of yet
]
COLLECTIONS = ["flow_runs", "prompts", "prompts/weekly_report/versions", "llm_profiles", "anything_else"]


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _id_token(uid: str, **claims: Any) -> str:
    """An unsigned Firebase ID token, as the Auth emulator issues them."""
    payload = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": uid,
        "user_id": uid,
        "iat": 0,
        "exp": 4_102_444_800,  # 2100
        "firebase": {"sign_in_provider": "password", "identities": {}},
        **claims,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


OWNER = "owner"
CLIENTS = {
    "signed-out": None,
    "signed-in": _id_token("alice"),
    "admin-claim": _id_token("mallory", admin=True, email="mallory@example.com", email_verified=True),
}


class Rest:
    """Firestore's REST API on one emulator, as a client SDK would call it."""

    def __init__(self, emulator: FirestoreEmulator) -> None:
        self.base = f"http://{emulator.host_port}/v1/projects/{PROJECT}/databases/(default)/documents"

    def call(self, method: str, suffix: str, bearer: str | None, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + suffix, data, headers, method=method)
        try:
            with LOOPBACK_OPENER.open(request, timeout=10.0) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def get(self, path: str, bearer: str | None) -> tuple[int, Any]:
        return self.call("GET", f"/{path}", bearer)

    def list(self, collection: str, bearer: str | None) -> tuple[int, Any]:
        return self.call("GET", f"/{collection}", bearer)

    def patch(self, path: str, bearer: str | None, status: str) -> tuple[int, Any]:
        return self.call("PATCH", f"/{path}", bearer, {"fields": {"status": {"stringValue": status}}})

    def delete(self, path: str, bearer: str | None) -> tuple[int, Any]:
        return self.call("DELETE", f"/{path}", bearer)

    def query(self, collection_id: str, bearer: str | None, all_descendants: bool = False) -> tuple[int, Any]:
        source = {"collectionId": collection_id, "allDescendants": all_descendants}
        return self.call("POST", ":runQuery", bearer, {"structuredQuery": {"from": [source]}})


@contextmanager
def _emulator(log_dir: Path, rules: Path) -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator(PROJECT, log_dir, rules=rules).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    """An emulator of its own, on a free port, with the repository's firestore.rules; one document
    at each path, written with the owner token."""
    with _emulator(tmp_path_factory.mktemp("rules-logs"), RULES) as emulator:
        api = Rest(emulator)
        for path in DOCUMENTS:
            assert api.patch(path, OWNER, "SEEDED")[0] == 200
        yield api


@pytest.fixture(scope="module")
def permissive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    """The control: an emulator whose rules let any signed-in user in."""
    rules = tmp_path_factory.mktemp("permissive") / "firestore.rules"
    rules.write_text(
        "rules_version = '2';\nservice cloud.firestore {\n  match /databases/{database}/documents {\n"
        "    match /{document=**} { allow read, write: if request.auth != null; }\n  }\n}\n",
        encoding="utf-8",
    )
    with _emulator(tmp_path_factory.mktemp("permissive-logs"), rules) as emulator:
        yield Rest(emulator)


def _denied_by_rules(answer: tuple[int, Any]) -> bool:
    """403 PERMISSION_DENIED from rule evaluation (the emulator names each failing rule: "false for 'get' @ L25")."""
    status, body = answer
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return status == 403 and error.get("status") == "PERMISSION_DENIED" and "false for" in error.get("message", "")


def test_the_rules_file_is_deny_all_and_says_server_sdks_bypass_it() -> None:
    text = RULES.read_text(encoding="utf-8")
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    assert "if false" in code
    assert "if true" not in code and "request.auth" not in code  # no allow condition that could be met
    assert "DO NOT APPLY" in text  # the comment that tells the reader IAM, not rules, governs the servers


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("path", DOCUMENTS)
def test_a_client_cannot_read_or_write_any_document(rest: Rest, path: str, client: str) -> None:
    bearer = CLIENTS[client]
    assert _denied_by_rules(rest.get(path, bearer))
    assert _denied_by_rules(rest.patch(path, bearer, "READY"))  # update of an existing document
    assert _denied_by_rules(rest.patch(f"{path}-new", bearer, "READY"))  # create
    assert _denied_by_rules(rest.delete(path, bearer))

    status, body = rest.get(path, OWNER)  # the same requests are well formed, and changed nothing
    assert status == 200 and body["fields"]["status"] == {"stringValue": "SEEDED"}
    assert rest.get(f"{path}-new", OWNER)[0] == 404


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("collection", COLLECTIONS)
def test_a_client_cannot_list_or_query_a_collection(rest: Rest, collection: str, client: str) -> None:
    bearer = CLIENTS[client]
    collection_id = collection.rsplit("/", 1)[-1]
    assert _denied_by_rules(rest.list(collection, bearer))
    assert _denied_by_rules(rest.query(collection_id, bearer))
    assert _denied_by_rules(rest.query(collection_id, bearer, all_descendants=True))  # a collection group

    status, body = rest.list(collection, OWNER)
    assert status == 200 and body.get("documents")
    status, rows = rest.query(collection_id, OWNER, all_descendants=True)
    assert status == 200 and any("document" in row for row in rows)


@pytest.mark.parametrize("client", CLIENTS)
def test_the_owner_token_is_what_passes(rest: Rest, client: str) -> None:
    """Writes, read back and deletes with the owner token (what the server SDKs send) all succeed."""
    path = f"flow_runs/owner-{client}"
    assert rest.patch(path, OWNER, "READY")[0] == 200
    assert _denied_by_rules(rest.get(path, CLIENTS[client]))
    assert rest.get(path, OWNER)[1]["fields"]["status"] == {"stringValue": "READY"}
    assert rest.delete(path, OWNER)[0] == 200
    assert rest.get(path, OWNER)[0] == 404


@pytest.mark.parametrize("client", ["signed-in", "admin-claim"])
def test_control_the_same_tokens_pass_rules_that_allow_them(permissive: Rest, client: str) -> None:
    """The emulator accepts these tokens as signed-in users: only our rules stand in their way."""
    bearer = CLIENTS[client]
    assert permissive.patch("flow_runs/run-1", bearer, "READY")[0] == 200
    assert permissive.get("flow_runs/run-1", bearer)[0] == 200
    assert permissive.list("prompts", bearer)[0] == 200
    assert _denied_by_rules(permissive.get("flow_runs/run-1", None))  # signed out: no request.auth


def test_the_server_sdk_is_not_bound_by_the_rules(rest: Rest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's and the orchestrators' client (google-cloud-firestore) works with the rules loaded."""
    from google.cloud import firestore

    host_port = rest.base.split("/")[2]
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host_port)
    client = firestore.Client(project=PROJECT)
    try:
        ref = client.collection("flow_runs").document("server-run")
        ref.set({"status": "RUNNING", "steps": {}})
        assert ref.get().to_dict() == {"status": "RUNNING", "steps": {}}
        assert client.document("prompts/weekly_report").get().to_dict() == {"status": "SEEDED"}
    finally:
        client.close()
    assert _denied_by_rules(rest.get("flow_runs/server-run", CLIENTS["signed-in"]))


def test_the_emulator_refuses_a_rules_file_it_could_not_load(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no rules file"):
        FirestoreEmulator(PROJECT, tmp_path, rules=tmp_path / "missing.rules")._build_command()
    spaced = tmp_path / "with space.rules"  # the launcher passes its arguments on unquoted ($*)
    spaced.write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match="whitespace"):
        FirestoreEmulator(PROJECT, tmp_path, rules=spaced)._build_command()
    command = FirestoreEmulator(PROJECT, tmp_path, rules=RULES)._build_command()
    assert f"--rules={RULES.resolve()}" in command
