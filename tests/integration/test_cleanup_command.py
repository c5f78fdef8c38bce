"""``python -m worker_llm_client cleanup`` as a subprocess against the Firestore emulator and fake-gcs-server.

Each test works under its own ``--prefix flow_runs/{run_id}`` (the bucket is the session's), and
moves the clock with the hidden ``--now`` instead of ageing objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.builders import step_data
from tests.stacks import BUCKET, IT_PROJECT, ROOT
from worker_llm_client.core.artifact_naming import artifact_object_name, debug_object_name

pytestmark = pytest.mark.integration
FP, OTHER, THIRD = "a" * 64, "b" * 64, "c" * 64
LATER = (datetime.now(UTC) + timedelta(days=30, hours=12)).isoformat()  # every object here is 30 days old
SENTINEL = "SENTINEL-report-content-never-printed"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command with the test's environment (the session fixtures set both emulator hosts)."""
    command = [sys.executable, "-m", "worker_llm_client", "cleanup", *args]
    base = os.environ | {"GOOGLE_CLOUD_PROJECT": IT_PROJECT, "ARTIFACTS_BUCKET": BUCKET}
    return subprocess.run(command, cwd=ROOT, env=base | (env or {}), capture_output=True, text=True, timeout=120)


def _upload(bucket: Any, name: str, run_id: str | None = None) -> Any:
    blob = bucket.blob(name)
    blob.metadata = {"runId": run_id} if run_id else None
    blob.upload_from_string(json.dumps({"title": SENTINEL}), content_type="application/json")
    return blob


def _uri(name: str) -> str:
    return f"gs://{BUCKET}/{name}"


def _names(bucket: Any, prefix: str) -> set[str]:
    return {blob.name for blob in bucket.client.list_blobs(bucket, prefix=prefix)}


@pytest.fixture
def seeded(db: Any, bucket: Any, run_id: str) -> dict[str, str]:
    """A run whose s1 SUCCEEDED with report ``kept``; s2 was CANCELLED after writing ``orphan`` (and
    rejected replies); s3 is RUNNING over ``running``. ``gone`` belongs to a run that does not exist,
    ``cut``/``cut_named`` to a run with an id too long for its segment (with and without metadata)."""
    names = {
        "kept": artifact_object_name(run_id, "s1", FP),
        "orphan": artifact_object_name(run_id, "s2", OTHER),
        "invalid": debug_object_name(artifact_object_name(run_id, "s2", THIRD), 1),
        "running": artifact_object_name(run_id, "s3", FP),
        "gone": artifact_object_name(f"{run_id}-gone", "s1", FP),
        "cut": artifact_object_name(f"{run_id}-" + "x" * 400, "s1", FP),
        "cut_named": artifact_object_name(f"{run_id}-" + "x" * 400, "s1", OTHER),
    }
    steps = {
        "s1": step_data("SUCCEEDED", attempt=1, outputs={"gcs_uri": _uri(names["kept"])}),
        "s2": step_data("CANCELLED", attempt=1),
        "s3": step_data("RUNNING", attempt=1, claim={"token": "t"}),
    }
    db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": steps})
    for key, name in names.items():
        _upload(bucket, name, run_id=f"{run_id}-" + "x" * 400 if key == "cut_named" else None)
    return names


def test_a_dry_run_lists_the_unreferenced_reports_and_deletes_nothing(
    bucket: Any, run_id: str, seeded: dict[str, str]
) -> None:
    prefix = f"flow_runs/{run_id}"
    done = cli("--prefix", prefix, "--now", LATER)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"# gs://{BUCKET}/{prefix} against Firestore project {IT_PROJECT}, database (default);")
    assert lines[0].endswith("(7d); dry run: nothing is deleted (pass --delete)")
    assert sorted(lines[1:-1]) == sorted(
        [
            f"would delete {_uri(seeded['orphan'])}  (age 30d, unreferenced: step s2 is CANCELLED with no outputs.gcs_uri)",
            f"would delete {_uri(seeded['gone'])}  (age 30d, run {run_id}-gone no longer exists)",
            f"would delete {_uri(seeded['cut_named'])}  (age 30d, run {run_id}-{'x' * 400} no longer exists)",
            f"kept {_uri(seeded['cut'])}  (age 30d, run id not recoverable from the object name (nor its runId metadata))",
        ]
    )
    assert lines[-1].startswith("scanned 7 objects in 3 runs; would delete 3 (")
    assert lines[-1].endswith(
        "kept 4 (1 referenced, 1 rejected replies (lifecycle rule), 1 run id not recoverable, 1 step not finished)"
    )
    assert SENTINEL not in done.stdout + done.stderr
    assert _names(bucket, prefix) == set(seeded.values())


def test_delete_removes_only_the_unreferenced_old_reports(bucket: Any, run_id: str, seeded: dict[str, str]) -> None:
    prefix = f"flow_runs/{run_id}"
    done = cli("--prefix", prefix, "--now", LATER, "--delete", "--verbose")
    assert done.returncode == 0, done.stderr
    deleted = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("deleted ")]
    assert sorted(deleted) == sorted(_uri(seeded[key]) for key in ("orphan", "gone", "cut_named"))
    assert f"kept {_uri(seeded['kept'])}  (age 30d, referenced by step s1)" in done.stdout.splitlines()
    assert "scanned 7 objects in 3 runs; deleted 3 (" in done.stdout
    assert _names(bucket, prefix) == {seeded[key] for key in ("kept", "invalid", "running", "cut")}

    again = cli("--prefix", prefix, "--now", LATER, "--delete", "--include-invalid")
    assert again.returncode == 0, again.stderr
    assert (
        f"deleted {_uri(seeded['invalid'])}  (age 30d, unreferenced: step s2 is CANCELLED with no outputs.gcs_uri)"
    ) in again.stdout.splitlines()
    assert _names(bucket, prefix) == {seeded[key] for key in ("kept", "running", "cut")}


def test_within_the_grace_period_nothing_is_deleted(bucket: Any, run_id: str, seeded: dict[str, str]) -> None:
    prefix = f"flow_runs/{run_id}"
    done = cli("--prefix", prefix, "--delete")
    assert done.returncode == 0, done.stderr
    assert "; deleted 0 (0 bytes); kept 7 (3 within the grace period," in done.stdout
    assert _names(bucket, prefix) == set(seeded.values())
    limited = cli("--prefix", prefix, "--now", LATER, "--limit", "2")
    assert limited.stdout.splitlines()[-1].endswith("; stopped at --limit, more objects remain"), limited.stderr


def test_a_deletion_names_the_generation_listed(run_id: str, fake_gcs: Any) -> None:
    """The delete carries ``ifGenerationMatch`` of the listing. fake-gcs-server ignores that
    precondition on DELETE (a stale generation deletes anyway), so GCS's 412 -> "changed since
    listed" is covered by the unit tests; here: the parameter is sent, a 404 is "already gone"."""
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials

    from worker_llm_client.operations.cleanup import GONE, Listed, deleter

    client = storage.Client(project=IT_PROJECT, credentials=AnonymousCredentials())
    sent: list[tuple[str, str]] = []
    request = client._http.request

    def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append((method, url))
        return request(method, url, *args, **kwargs)

    client._http.request = recording
    name = artifact_object_name(run_id, "s1", FP)
    blob = _upload(client.bucket(BUCKET), name)
    delete = deleter(client, BUCKET)
    assert delete(Listed(name, blob.generation, 1, None)) == "deleted"
    assert client.bucket(BUCKET).get_blob(name) is None
    assert delete(Listed(name, blob.generation, 1, None)) == GONE
    deletes = [url for method, url in sent if method == "DELETE"]
    assert len(deletes) == 2 and all(f"ifGenerationMatch={blob.generation}" in url for url in deletes)
    client.close()


def test_bad_input_exits_2_and_touches_nothing(fake_gcs: Any, db: Any) -> None:
    done = cli(env={"ARTIFACTS_BUCKET": ""})
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "error: no bucket: set ARTIFACTS_BUCKET or pass --bucket\n",
    )
    done = cli("--prefix", "other/")
    assert (done.returncode, done.stderr) == (2, "error: --prefix must start with 'flow_runs/', got 'other/'\n")
    done = cli("--older-than", "-1")
    assert done.returncode == 2 and "expected a number of days >= 0, got '-1'" in done.stderr
    done = cli("--bucket", "no-such-bucket")
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr == "error: listing gs://no-such-bucket/flow_runs/ failed: bucket 'no-such-bucket' does not exist\n"
    )
