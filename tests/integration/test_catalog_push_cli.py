"""``python -m worker_llm_client seed`` against the emulator: versions, idempotence, dry runs."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import ROOT
from worker_llm_client.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def project(firestore_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"push-{uuid.uuid4().hex[:8]}"  # a fresh project: an empty database
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", name)
    return name


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("prompts", "schemas"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "llm_profiles.yaml", tmp_path / "llm_profiles.yaml")
    return tmp_path


def _docs(project: str, collection: str) -> dict[str, Any]:
    from google.cloud import firestore

    client = firestore.Client(project=project)
    try:
        return {d.id: (d.to_dict(), d.update_time) for d in client.collection(collection).stream()}
    finally:
        client.close()


def test_seed_writes_versions_once_and_dry_run_writes_nothing(
    project: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed", "--root", str(repo), "--dry-run"]) == 0
    assert "prompts/weekly_report  v1  would create" in capsys.readouterr().out
    assert _docs(project, "prompts") == {}

    assert main(["seed", "--root", str(repo)]) == 0
    assert "prompts/weekly_report  v1  created" in capsys.readouterr().out
    before = _docs(project, "prompts")
    assert main(["seed", "--root", str(repo)]) == 0
    assert "llm_profiles/pro-json  v1  unchanged" in capsys.readouterr().out
    assert _docs(project, "prompts") == before  # same update_time: nothing was written

    template = repo / "prompts" / "weekly_report.yaml"
    template.write_text(template.read_text().replace("weekly status report", "weekly status digest"))
    assert main(["prompts", "push", "--root", str(repo), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "prompts/weekly_report  v2  would create" in out
    assert "--- prompts/weekly_report v1 template" in out and "+Write the weekly status digest" in out
    assert main(["prompts", "push", "--root", str(repo)]) == 0
    current = _docs(project, "prompts")["weekly_report"][0]
    assert current["version"] == 2 and "digest" in current["template"]

    from google.cloud import firestore

    client = firestore.Client(project=project)
    v1 = client.collection("prompts").document("weekly_report").collection("versions").document("1").get().to_dict()
    client.close()
    assert "status report" in v1["template"] and v1["version"] == 1  # the old version is immutable


def test_a_broken_source_is_reported_and_nothing_is_written(
    project: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "llm_profiles.yaml").write_text("flash-json:\n  provider: nope\n  model: x\n")
    assert main(["seed", "--root", str(repo)]) == 2
    assert "is invalid" in capsys.readouterr().err
    assert _docs(project, "prompts") == {}
