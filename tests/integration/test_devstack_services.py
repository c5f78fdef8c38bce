"""Integration tests: devstack.services against the real local services."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core.exceptions import PreconditionFailed
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import firestore
from google.cloud.storage import Client as StorageClient  # type: ignore[import-untyped,unused-ignore]

from devstack.services import (
    LOOPBACK_OPENER,
    FakeGcs,
    FirestoreEmulator,
    FunctionsFramework,
    ManagedProcess,
    PrerequisiteMissing,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.integration

PROJECT = "demo-test"

RECORDER_SOURCE = textwrap.dedent(
    """
    import os

    import functions_framework


    @functions_framework.cloud_event
    def record(event):
        with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as out:
            out.write(event["document"] + "\\n")


    @functions_framework.http
    def hello(request):
        return "hello"
    """
)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def recorder_source(tmp_path: Path) -> Path:
    source = tmp_path / "app" / "main.py"
    source.parent.mkdir()
    source.write_text(RECORDER_SOURCE, encoding="utf-8")
    return source


@pytest.fixture
def functions_port() -> int:
    return free_port()


@pytest.fixture
def emulator(tmp_path: Path, functions_port: int) -> Iterator[FirestoreEmulator]:
    emu = FirestoreEmulator(PROJECT, tmp_path / "logs", functions_emulator=f"127.0.0.1:{functions_port}")
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def fs_client(emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> firestore.Client:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host_port)
    return firestore.Client(project=PROJECT)


@pytest.fixture
def gcs(tmp_path: Path) -> Iterator[FakeGcs]:
    server = FakeGcs(tmp_path / "logs").start()
    yield server
    server.stop()


def test_emulator_read_write_and_reset(emulator: FirestoreEmulator, fs_client: firestore.Client) -> None:
    assert emulator.is_running()
    assert emulator.log_path == emulator.log_dir / "firestore-emulator.log"
    ref = fs_client.collection("things").document("one")
    ref.set({"n": 1})
    assert ref.get().to_dict() == {"n": 1}
    emulator.reset()
    assert not ref.get().exists


def test_trigger_delivers_cloudevent_to_functions_framework(
    emulator: FirestoreEmulator, fs_client: firestore.Client, functions_port: int, recorder_source: Path, tmp_path: Path
) -> None:
    record_file = tmp_path / "events.txt"
    fn = FunctionsFramework(
        "record",
        recorder_source,
        "cloudevent",
        {"RECORD_FILE": str(record_file)},
        tmp_path / "logs",
        port=functions_port,
    )
    fn.start()
    try:
        emulator.register_trigger("flow-runs")
        fs_client.collection("other").document("x").set({"ignored": True})
        fs_client.collection("flow_runs").document("run-1").set({"status": "queued"})
        wait_until(
            lambda: record_file.exists() and record_file.read_text().endswith("\n"),
            timeout=30,
            what="CloudEvent delivery",
        )
        assert record_file.read_text().splitlines() == ["flow_runs/run-1"]
    finally:
        fn.stop()
    assert not fn.is_running()


def test_fake_gcs_upload_honours_if_generation_match(gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    gcs.create_bucket("artifacts", project=PROJECT)
    gcs.create_bucket("artifacts", project=PROJECT)  # idempotent
    # google-auth leaves AnonymousCredentials.__init__ unannotated.
    anonymous: Credentials = AnonymousCredentials()  # type: ignore[no-untyped-call,unused-ignore]
    client = StorageClient(project=PROJECT, credentials=anonymous)
    blob = client.bucket("artifacts").blob("runs/1/output.json")
    blob.upload_from_string(b'{"a": 1}', if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        client.bucket("artifacts").blob("runs/1/output.json").upload_from_string(b'{"a": 2}', if_generation_match=0)
    assert blob.download_as_bytes() == b'{"a": 1}'
    client.close()


def test_kill_removes_whole_process_group(recorder_source: Path, tmp_path: Path) -> None:
    fn = FunctionsFramework("hello", recorder_source, "http", {}, tmp_path / "logs").start()
    try:
        with LOOPBACK_OPENER.open(fn.url, timeout=10) as response:
            assert response.read() == b"hello"
        pgid = fn.pid
        assert pgid is not None
        assert _group_exists(pgid)
        fn.kill()
        assert not fn.is_running()
        wait_until(lambda: not _group_exists(pgid), timeout=5, what="process group to vanish")
    finally:
        fn.stop()


def test_stop_terminates_a_plain_managed_process(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "logs", ["sh", "-c", "sleep 60 & echo started; wait"])
    proc.start()
    pgid = proc.pid
    assert pgid is not None
    assert proc.is_running()
    wait_until(lambda: "started" in proc.log_tail(), timeout=5, what="sh to start")
    proc.stop()
    assert not proc.is_running()
    assert not _group_exists(pgid)


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    source = tmp_path / "broken.py"
    source.write_text("raise SystemExit('boom: cannot import')\n", encoding="utf-8")
    fn = FunctionsFramework("nothing", source, "http", {}, tmp_path / "logs")
    with pytest.raises(RuntimeError, match="boom: cannot import"):
        fn.start()
    assert not fn.is_running()


def test_missing_emulator_binary_raises_prerequisite_missing(tmp_path: Path) -> None:
    emu = FirestoreEmulator(PROJECT, tmp_path / "logs", sdk_root=tmp_path / "no-sdk")
    with pytest.raises(PrerequisiteMissing, match="gcloud components install cloud-firestore-emulator"):
        emu.start()
    assert not emu.is_running()


def test_missing_java_raises_prerequisite_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk_root = tmp_path / "sdk"
    launcher = sdk_root / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    launcher.chmod(0o755)
    monkeypatch.setenv("JAVA", str(tmp_path / "no-such-java"))
    emu = FirestoreEmulator(PROJECT, tmp_path / "logs", sdk_root=sdk_root)
    with pytest.raises(PrerequisiteMissing, match="openjdk-17-jre-headless"):
        emu.start()


def test_a_log_line_still_being_written_is_left_for_the_next_read(tmp_path: Path) -> None:
    from devstack.services import ManagedProcess

    proc = ManagedProcess("writer", tmp_path / "logs", ["true"])
    proc.log_path.parent.mkdir(parents=True, exist_ok=True)
    proc.log_path.write_text('{"message": "done"}\nplain text\n{"message": "half', encoding="utf-8")
    assert proc.json_log_lines() == [{"message": "done"}]
