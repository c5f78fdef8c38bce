"""``cloudbuild.yaml`` is one correct pipeline: the checks, on files its upload really holds, then
Terraform. The deploy itself (functions, trigger, IAM, Firestore fields) is checked in
``test_terraform.py``."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import yaml

from tests.stacks import ROOT

# What the checks step reads: the install (pyproject, the lock), the tools' inputs, the tests and
# everything the tests open (docs, deploy bodies and Terraform, the catalog).
NEEDED_BY_THE_CHECKS = (
    "requirements.txt",
    "pyproject.toml",
    "README.md",
    "main.py",
    "scripts/check-terraform.sh",
    "tests/unit",
    "tests/service",
    "tests/stacks.py",
    "docs/contract.md",
    "docs/runbook.md",
    "deploy/monitoring",
    "deploy/terraform/functions.tf",
    "deploy/terraform/iam_roles.yaml",
    "governance.yaml",
    "llm_profiles.yaml",
    "prompts",
    "schemas",
    "worker_llm_client",
    "devstack",
    "benchmarks",
)


def _build() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cloudbuild.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _steps() -> list[dict[str, Any]]:
    return _build()["steps"]  # type: ignore[no-any-return]


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".gcloudignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!") or p.startswith("#!include")], "keep it simple: no negation"
    return patterns


def _ignored(relative: str, patterns: list[str]) -> bool:
    """gcloudignore (gitignore) semantics for the patterns used here: ``dir/`` matches a directory
    at any depth (or at the given path when it has a slash), ``glob`` any path component, a
    pattern with a slash the path from the root."""
    parts = relative.split("/")
    for pattern in patterns:
        directory = pattern.endswith("/")
        core = pattern.rstrip("/")
        if "/" in core:
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            candidates = prefixes[:-1] if directory else prefixes
            if any(fnmatch.fnmatchcase(prefix, core) for prefix in candidates):
                return True
        else:
            candidates = parts[:-1] if directory else parts
            if any(fnmatch.fnmatchcase(part, core) for part in candidates):
                return True
    return False


def uploaded() -> set[str]:
    """The files ``gcloud builds submit`` would upload from this checkout."""
    patterns = _ignore_patterns()
    files = set()
    for directory, dirs, names in os.walk(ROOT):
        relative_dir = Path(directory).relative_to(ROOT).as_posix()
        dirs[:] = [d for d in dirs if not _ignored(f"{relative_dir}/{d}/x".removeprefix("./"), patterns)]
        for name in names:
            relative = f"{relative_dir}/{name}".removeprefix("./")
            if not _ignored(relative, patterns):
                files.add(relative)
    return files


def test_the_checks_run_on_files_the_upload_holds() -> None:
    files = uploaded()
    for needed in NEEDED_BY_THE_CHECKS:
        assert needed in files or any(f.startswith(needed + "/") for f in files), f"{needed} is not uploaded"
    checks = next(step for step in _steps() if step["id"] == "checks")
    script = checks["args"][-1]
    for command in ("pytest tests/unit tests/service", "scripts/check-terraform.sh", "ruff check .", "mypy"):
        assert command in script


def test_the_upload_leaves_out_local_state_and_secrets() -> None:
    files = uploaded()
    for local in (".venv/", ".devstack/", ".git/", "deploy/terraform/.terraform/", "__pycache__/"):
        assert not [f for f in files if f.startswith(local) or f"/{local}" in f], f"{local} would be uploaded"
    assert "deploy/terraform/terraform.tfvars" not in files
    assert not [f for f in files if f.endswith(".tfstate")]


def test_the_pipeline_checks_then_applies_the_plan_it_made() -> None:
    steps = _steps()
    ids = [step["id"] for step in steps]
    assert (
        ids.index("checks") < ids.index("terraform-init") < ids.index("terraform-plan") < ids.index("terraform-apply")
    )
    by_id = {step["id"]: step for step in steps}
    assert by_id["terraform-init"]["args"][:1] == ["init"]
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in by_id["terraform-init"]["args"]
    assert "-out=tfplan" in by_id["terraform-plan"]["args"]
    assert by_id["terraform-apply"]["args"][-1] == "tfplan", "apply exactly what was planned"
    for step_id in ("terraform-init", "terraform-validate", "terraform-plan", "terraform-apply"):
        assert by_id[step_id]["dir"] == "deploy/terraform"
        assert by_id[step_id]["name"].startswith("hashicorp/terraform:")


def test_terraform_is_the_only_deploy_path() -> None:
    text = (ROOT / "cloudbuild.yaml").read_text(encoding="utf-8")
    assert "functions deploy" not in text and "--set-secrets" not in text, "one path: Terraform"
    assert "firestore indexes" not in text, "the Firestore field settings are Terraform's (firestore.tf)"
    assert set(_build()["substitutions"]) == {"_TF_STATE_BUCKET", "_TF_VERSION"}
