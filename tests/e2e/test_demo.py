"""``python -m devstack demo`` (what ``make demo`` runs), as a newcomer runs it: a subprocess
from the repository root on the embedded default (the local Gemini stub)."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from devstack.services import accepts_tcp
from tests.stacks import ROOT

pytestmark = pytest.mark.e2e

REPORT_STEPS = ("report-payments", "report-search", "digest")
NOT_INHERITED = ("GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
SERVICE_ADDRESSES = re.compile(r"^  (?:firestore emulator|fake gcs|function)\s+(?:http://)?(127\.0\.0\.1):(\d+)", re.M)
PHASES = ("claim", "config", "model", "artifact", "finalize")
BAR = re.compile(r"^    (?P<phase>\w+)\s+▕(?P<bar>[ █]{40})▏\s+(?P<ms>\d+\.\d) ms$")


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "devstack", "demo", *args]
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM, not run()'s SIGKILL: the demo stops its services on the way out
            stdout, stderr = proc.communicate(timeout=30)
            pytest.fail(f"the demo took over 180 s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _stub_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}


def _artifact(output: str, step_id: str) -> object:
    """The pretty-printed JSON report printed under ``<step_id>  gs://...``."""
    header = re.search(
        rf"^{re.escape(step_id)}  gs://demo-artifacts/flow_runs/demo-\w+/{step_id}/\w+\.json$", output, re.M
    )
    assert header is not None, f"no artifact header for {step_id}"
    block = re.search(r"^  \{$.*?^  \}$", output[header.end() :], re.M | re.S)
    assert block is not None, f"no JSON report printed for {step_id}"
    return json.loads(textwrap.dedent(block.group(0)))


def _waterfall(output: str, step_id: str) -> list[re.Match[str]]:
    """The bar lines printed under ``<step_id>  total N ms`` in the waterfall section."""
    section = output.split("\nwaterfall per step", 1)
    assert len(section) == 2, f"no waterfall in the output:\n{output}"
    block = re.search(rf"^  {re.escape(step_id)}\s+total \d+\.\d ms\n((?:    .*\n)+)", section[1], re.M)
    assert block is not None, f"no waterfall for {step_id}:\n{section[1]}"
    bars = [BAR.match(line) for line in block.group(1).splitlines()]
    assert all(bars), block.group(1)
    return [bar for bar in bars if bar is not None]


def test_demo_runs_the_three_reports_to_succeeded_and_leaves_nothing_running() -> None:
    result = _demo(_stub_env(), "--latency", "0.05")

    output = result.stdout
    assert result.returncode == 0, f"stdout:\n{output}\nstderr:\n{result.stderr}"
    assert "model backend: local Gemini stub" in output
    for step_id in REPORT_STEPS:
        assert re.search(rf"^\s+\+\d+\.\d\ds  {step_id}\s+READY -> RUNNING  \(attempt 1\)$", output, re.M), step_id
        assert re.search(
            rf"^\s+\+\d+\.\d\ds  {step_id}\s+RUNNING -> SUCCEEDED  \(1 model call, \d+ ms\)$", output, re.M
        )
    changes = output.split("step state changes", 1)[1].split("\n\n", 1)[0]
    assert " notify " not in changes  # the HTTP_CALL step is never touched
    for step_id in REPORT_STEPS:
        name = "weekly_digest" if step_id == "digest" else "weekly_report"
        schema = json.loads((ROOT / "schemas" / f"{name}.json").read_text(encoding="utf-8"))
        Draft202012Validator(schema).validate(_artifact(output, step_id))
    for step_id in REPORT_STEPS:  # the summary under each artifact ends with the step's cost
        summary = (
            rf"^{re.escape(step_id)}  gs://\S+\n  \d+ bytes, 1 model call, \d+ ms, \d+ tokens, cost \$\d+\.\d{{6}}$"
        )
        assert re.search(summary, output, re.M), f"no cost for {step_id}"
    assert re.search(r"^  trace receiver\s+http://127\.0\.0\.1:\d+", output, re.M)
    for step_id in REPORT_STEPS:
        bars = _waterfall(output, step_id)
        phases = [phase for phase, _ in itertools.groupby(bar["phase"] for bar in bars)]  # repairs: model twice
        assert phases == list(PHASES), f"{step_id}: {[bar.group(0) for bar in bars]}"
        assert all("█" in bar["bar"] for bar in bars)
        starts = [bar["bar"].index("█") for bar in bars]
        assert starts == sorted(starts), f"{step_id}: the phases are not in time order"
    assert "model calls received by the stub: 3" in output
    assert "DEMO OK" in output and output.rstrip().endswith("all services stopped")
    addresses = SERVICE_ADDRESSES.findall(output)
    assert len(addresses) == 3, output
    assert [f"{host}:{port}" for host, port in addresses if accepts_tcp(host, int(port))] == []
    if shutil.which("pgrep"):
        for _, port in addresses:
            leftover = subprocess.run(
                ["pgrep", "-f", f"port[= ]{port}( |$)"], capture_output=True, text=True, check=False
            )
            assert leftover.stdout == "", f"a process still uses port {port}: {leftover.stdout}"


def test_demo_without_gcloud_names_the_fix_and_starts_nothing(tmp_path: Path) -> None:
    result = _demo(_stub_env() | {"PATH": str(tmp_path)})

    assert result.returncode == 2, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "missing prerequisite: gcloud is not on PATH" in result.stderr
    assert "https://cloud.google.com/sdk/docs/install" in result.stderr
    assert result.stdout == ""
