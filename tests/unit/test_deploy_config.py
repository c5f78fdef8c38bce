"""What the deploy must carry for the executor's assumptions to hold."""

from __future__ import annotations

from typing import Any

import yaml

from tests.stacks import ROOT


def _steps() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["steps"]  # type: ignore[no-any-return]


def test_the_deploy_exempts_a_runs_steps_from_indexing() -> None:
    """A run document holds at most 40,000 index entries: ~39 fields a finished step, indexed twice,
    would reach it near 500 steps. Nothing queries inside ``steps``."""
    commands = [" ".join(step["args"]) for step in _steps() if step.get("entrypoint") == "gcloud"]
    assert any(
        command.startswith("firestore indexes fields update steps ")
        and "--collection-group=flow_runs" in command
        and "--disable-indexes" in command
        for command in commands
    )
