"""Whatever escapes an entry point reaches functions-framework (which answers 5xx and logs the
exception it sees, causes included) without the text of any foreign exception (issue 10, item 1)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from functions_framework import create_app

from devstack.cloudevents import document_event_bytes, event_headers
from tests.builders import step_data
from tests.stacks import ROOT
from worker_llm_client import bootstrap
from worker_llm_client.config import settings
from worker_llm_client.errors import RunStoreUnavailable

SECRET = "var-value-in-an-exception"


class Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def handle(self, snapshot: Any) -> list[Any]:
        raise self.error

    def sweep(self, limit: int) -> Any:
        raise self.error


def _caused(error: Exception) -> Exception:
    try:
        raise error from ValueError(SECRET)
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "status"),
    [(ValueError(SECRET), 500), (_caused(RunStoreUnavailable("reading run 'r' failed: Aborted")), 500)],
    ids=["foreign", "ours-with-a-foreign-cause"],
)
def test_an_event_that_fails_answers_5xx_and_no_log_carries_the_exceptions_text(
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo")
    settings.cache_clear()
    monkeypatch.setattr(bootstrap, "executor", lambda: Raising(error))
    app = create_app("handle_flow_run_event", str(ROOT / "main.py"), "cloudevent")
    body = document_event_bytes("demo", "r-fail", {"status": "RUNNING", "steps": {"s1": step_data()}})
    with caplog.at_level(logging.DEBUG):
        response = app.test_client().post("/", data=base64.b64encode(body), headers=event_headers("r-fail"))
    settings.cache_clear()
    assert response.status_code == status
    out, err = capfd.readouterr()
    everything = out + err + caplog.text + response.get_data(as_text=True)
    assert SECRET not in everything
    assert type(error).__name__ in everything


def test_a_sweep_that_fails_answers_5xx_without_the_exceptions_text(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bootstrap, "executor", lambda: Raising(KeyError(SECRET)))
    app = create_app("sweep_flow_runs", str(ROOT / "main.py"), "http")
    with caplog.at_level(logging.DEBUG):
        response = app.test_client().post("/")
    assert response.status_code == 500
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text + response.get_data(as_text=True)
