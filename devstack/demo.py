"""``make demo``: the product's main job on the local stack, end to end, in seconds.

Starts the Firestore emulator (delivering Eventarc triggers), fake-gcs-server, the Gemini stub
(or real Gemini when ``GEMINI_API_KEY`` / ``GOOGLE_GENAI_USE_VERTEXAI=true`` is set; or, with
``--model local``, SmolLM2-135M on llama.cpp's OpenAI-compatible server: ``devstack/local_model.py``) and
functions-framework serving ``main.handle_flow_run_event``; pushes prompts and profiles; writes
one run with three ``LLM_REPORT`` steps (two team reports and a digest that depends on them) and
one step of another type; prints every step state change as it happens, then the artifacts with
their cost, and each step's waterfall from the spans the function exported to a local OTLP receiver
(``devstack/otlp_receiver.py``, ``devstack/waterfall.py``). Service logs go to ``.devstack/logs/``.
Everything started is stopped on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from devstack import services, waterfall
from devstack.gemini_stub import GeminiStub
from devstack.local_model import (
    BOUNDED_SUFFIX,
    LOCAL_PROFILE,
    LocalModelServer,
    allow_local_model,
    bounded_prompts,
    profile_body,
)
from devstack.otlp_receiver import OtlpReceiver
from devstack.services import (
    FakeGcs,
    FirestoreEmulator,
    FunctionsFramework,
    PrerequisiteMissing,
    scoped_environ,
)

Service = services.ManagedProcess

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".devstack" / "logs"
PROJECT = "demo-project"
BUCKET = "demo-artifacts"
RUN_TIMEOUT_SECONDS = 60.0
LOCAL_RUN_TIMEOUT_SECONDS = 300.0  # a 135M model on 2 cores: seconds per report, one request at a time
POLL_SECONDS = 0.05  # a stub reply of 0.05 s still shows RUNNING
SPANS_WAIT_SECONDS = 5.0  # the function flushes its spans before each invocation returns
SERVICE_NAME = "worker-llm-client"
REPORT_STEPS = ("report-payments", "report-search", "digest")
OTHER_STEP = "notify"
SETTLED = frozenset({"SUCCEEDED", "FAILED", "RETRY_WAIT"})  # RETRY_WAIT: only the sweeper (not run here) resumes it
WIDTH = 17  # step id column
LOOPBACK = "127.0.0.1,localhost"
HOOK = "https://chat.example.com/hooks/weekly"
NOTES = {
    "payments": ["moved card vaulting to the new PSP", "refund latency p95 down to 1.2s", "PCI audit next week"],
    "search": ["reindex finished two days late", "query cache hit rate up to 71%", "paged twice for timeouts"],
}


@dataclass(frozen=True)
class Backend:
    name: Literal["stub", "gemini", "vertex", "local"]
    profile: str  # the llm_profiles id the demo steps use
    project: str  # of the emulator and the function (Vertex AI bills this project)
    label: str
    run_timeout: float = RUN_TIMEOUT_SECONDS  # for the run's report steps to settle
    prompt_suffix: str = ""  # the steps use prompts/<id><suffix>: the local model's bounded copies


@dataclass(frozen=True)
class Stack:
    emulator: FirestoreEmulator
    gcs: FakeGcs
    function: FunctionsFramework
    stub: GeminiStub | None
    traces: OtlpReceiver
    local_model: LocalModelServer | None = None


def choose_backend(env: Mapping[str, str], model: str | None = None) -> Backend:
    """The local model when ``model`` is "local"; else the local stub unless real Gemini is
    configured (the switches google-genai itself reads)."""
    if model == "local":
        label = "SmolLM2-135M-Instruct on llama.cpp's OpenAI-compatible server (local, offline; bounded schemas)"
        return Backend("local", LOCAL_PROFILE, PROJECT, label, LOCAL_RUN_TIMEOUT_SECONDS, BOUNDED_SUFFIX)
    if env.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("true", "1"):
        project = env.get("GOOGLE_CLOUD_PROJECT", "")
        if not project:
            fix = "export GOOGLE_CLOUD_PROJECT=<your project> and run gcloud auth application-default login"
            raise PrerequisiteMissing(f"GOOGLE_GENAI_USE_VERTEXAI is set but GOOGLE_CLOUD_PROJECT is not; {fix}")
        return Backend("vertex", "flash-json-vertex", project, f"Vertex AI (project {project}, ADC credentials)")
    if env.get("GEMINI_API_KEY"):
        return Backend("gemini", "flash-json", PROJECT, "real Gemini Developer API (GEMINI_API_KEY)")
    return Backend("stub", "flash-json", PROJECT, "local Gemini stub (set GEMINI_API_KEY to use real Gemini)")


def run_demo(
    out: TextIO = sys.stdout, latency: float = 0.3, keep_running: bool = False, model: str | None = None
) -> int:
    """0 when the demo run succeeded, 1 when it did not, 2 for a missing prerequisite, 130 on Ctrl-C."""
    try:
        backend = choose_backend(os.environ, model)
        _check_prerequisites(backend)
    except PrerequisiteMissing as exc:
        print(f"missing prerequisite: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    code = 1
    with _sigterm_as_interrupt(), scoped_environ(), contextlib.ExitStack() as cleanup:
        cleanup.callback(_say, out, "all services stopped")
        try:
            stack, code = _demo(cleanup, out, backend, latency)
            code = _linger(stack, out, code) if keep_running else code
        except KeyboardInterrupt:
            _say(out, "\ninterrupted, shutting down")
            code = 130
        except RuntimeError as exc:  # a service died or was not ready; the message has its log tail
            print(f"demo failed: {exc}", file=sys.stderr)
    return code


def _check_prerequisites(backend: Backend) -> None:
    """Everything the stack cannot run without, checked before anything starts."""
    FirestoreEmulator(backend.project, LOG_DIR).check_prerequisites()
    services._fake_gcs_binary()
    services._functions_framework_argv(Path(sys.executable))
    if backend.name == "local":
        LocalModelServer(LOG_DIR).check_prerequisites()
    if backend.name == "vertex":
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            google.auth.default()
        except DefaultCredentialsError as exc:
            fix = "run gcloud auth application-default login"
            raise PrerequisiteMissing(f"Vertex AI needs Application Default Credentials; {fix}") from exc


def _demo(cleanup: contextlib.ExitStack, out: TextIO, backend: Backend, latency: float) -> tuple[Stack, int]:
    from google.cloud import firestore

    from worker_llm_client.catalog.documents import PROFILES, PROMPTS
    from worker_llm_client.catalog.push import push, push_all

    shown = LOG_DIR.relative_to(Path.cwd()) if LOG_DIR.is_relative_to(Path.cwd()) else LOG_DIR
    _say(out, f"model backend: {backend.label}\nservice logs:  {shown}/\n\nstarting the local stack")
    started = time.monotonic()
    stack = _start_services(cleanup, out, backend, latency)
    db = firestore.Client(project=backend.project)
    cleanup.callback(db.close)
    results = push_all(db, ROOT)
    if stack.local_model is not None:  # its profile names the server's port: pushed, not in llm_profiles.yaml
        results.append(push(db, PROFILES, LOCAL_PROFILE, profile_body(stack.local_model.base_url)))
        results += [push(db, PROMPTS, prompt_id, body) for prompt_id, body in bounded_prompts(ROOT).items()]
    pushed = ", ".join(f"{r.collection}/{r.doc_id} v{r.version}" for r in results)
    _say(out, f"ready in {time.monotonic() - started:.1f}s; pushed {pushed}")
    run_id, written = f"demo-{uuid.uuid4().hex[:8]}", demo_steps(backend.profile, backend.prompt_suffix)
    ref = db.collection("flow_runs").document(run_id)
    ref.set({"status": "RUNNING", "steps": written})
    _print_run(run_id, written, out)
    steps = _watch(ref, written, out, backend.run_timeout)
    if steps is None:
        _say(out, f"\ntimed out after {backend.run_timeout:g}s; {stack.function.log_path} ends with:")
        _say(out, textwrap.indent(stack.function.log_tail(15), "  "))
        return stack, 1
    _print_artifacts(steps, out)
    _print_waterfall(stack.traces, run_id, steps, out)
    calls = None if stack.stub is None else stack.stub.calls()
    return stack, _verdict(run_id, steps, written, calls, out)


def _start_services(cleanup: contextlib.ExitStack, out: TextIO, backend: Backend, latency: float) -> Stack:
    started: list[Service] = []
    cleanup.callback(_stop_together, started)
    function_port = services.free_port()
    emulator = FirestoreEmulator(backend.project, LOG_DIR, functions_emulator=f"127.0.0.1:{function_port}")
    _start(started, out, "firestore emulator", emulator, emulator.host_port)
    gcs = FakeGcs(LOG_DIR)
    _start(started, out, "fake gcs", gcs, gcs.url)
    gcs.create_bucket(BUCKET, backend.project)
    stub = None
    if backend.name == "stub":
        stub = GeminiStub(latency=latency)
        cleanup.callback(stub.stop)
        _say(out, f"  {'gemini stub':<20}{stub.start().base_url}  (in-process, replies after {latency:g}s)")
    traces = OtlpReceiver()
    cleanup.callback(traces.stop)
    _say(out, f"  {'trace receiver':<20}{traces.start().endpoint}  (in-process, OTLP/HTTP)")
    local = None
    if backend.name == "local":
        local = LocalModelServer(LOG_DIR)
        _start(started, out, "local model", local, f"{local.base_url}  (llama.cpp, SmolLM2-135M)")
    stub_url = None if stub is None else stub.base_url
    env = function_env(backend.project, emulator.host_port, gcs.url, stub_url, otlp_endpoint=traces.endpoint)
    env = env if local is None else allow_local_model(env)
    main_py = ROOT / "main.py"
    function = FunctionsFramework("handle_flow_run_event", main_py, "cloudevent", env, LOG_DIR, port=function_port)
    _start(started, out, "function", function, function.url)
    emulator.register_trigger("flow-runs")  # writes to flow_runs/{runId} now reach the function
    os.environ.update(FIRESTORE_EMULATOR_HOST=emulator.host_port, STORAGE_EMULATOR_HOST=gcs.url)
    os.environ.update(NO_PROXY=LOOPBACK, no_proxy=LOOPBACK)
    return Stack(emulator, gcs, function, stub, traces, local)


def _start(started: list[Service], out: TextIO, label: str, service: Service, address: str) -> None:
    started.append(service)  # before start(): one interrupted half-way is stopped too
    began = time.monotonic()
    service.start()
    _say(out, f"  {label:<20}{address}  ({time.monotonic() - began:.1f}s)")


def _stop_together(started: list[Service]) -> None:
    """Stop the services in parallel: the emulator alone takes about 2 s to exit."""
    with ThreadPoolExecutor(max(len(started), 1), thread_name_prefix="stop") as pool:
        list(pool.map(lambda service: service.stop(), started))


def function_env(
    project: str,
    firestore_host: str,
    gcs_url: str,
    stub_url: str | None,
    bucket: str = BUCKET,
    otlp_endpoint: str | None = None,
) -> dict[str, str]:
    """A function process's environment on the local stack: the governance allowlists, the
    emulators, the stub (``stub_url``) or real Gemini (None), and its traces exported over OTLP/HTTP
    to ``otlp_endpoint`` (None: not exported, whatever the environment inherited says)."""
    from worker_llm_client.catalog.sources import load_governance

    governance = load_governance(ROOT / "governance.yaml")
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "ARTIFACTS_BUCKET": bucket,
        "ALLOWED_LLM_PROFILES": ",".join(sorted(governance["allowedLlmProfiles"])),
        "ALLOWED_MODELS": ",".join(sorted(governance["allowedModels"])),
        "GEMINI_BASE_URL": "",  # an inherited override must not redirect real Gemini
        "LOG_LEVEL": "INFO",
        "NO_PROXY": LOOPBACK,
        "no_proxy": LOOPBACK,
    }
    if stub_url is not None:
        env |= {"GEMINI_API_KEY": "stub-key", "GEMINI_BASE_URL": stub_url}
    if otlp_endpoint is None:
        return env | {"OTEL_TRACES_EXPORTER": "none"}
    return env | {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": SERVICE_NAME,
    }


def demo_steps(profile: str, prompt_suffix: str = "") -> dict[str, Any]:
    """Two team reports, a digest that waits for both, and a step of another type nobody claims."""
    year, week_number, _ = datetime.now(UTC).isocalendar()
    week = f"{year}-W{week_number:02d}"

    def report(prompt_id: str, variables: dict[str, Any], **extra: Any) -> dict[str, Any]:
        inputs = {"promptId": prompt_id + prompt_suffix, "llm": {"llmProfile": profile}, "vars": variables}
        return {"type": "LLM_REPORT", "status": "READY", "inputs": inputs, **extra}

    return {
        "report-payments": report("weekly_report", {"team": "payments", "week": week, "notes": NOTES["payments"]}),
        "report-search": report("weekly_report", {"team": "search", "week": week, "notes": NOTES["search"]}),
        "digest": report("weekly_digest", {"week": week, "teams": list(NOTES)}, dependsOn=list(REPORT_STEPS[:2])),
        OTHER_STEP: {"type": "HTTP_CALL", "status": "PENDING", "dependsOn": ["digest"], "inputs": {"url": HOOK}},
    }


def _print_run(run_id: str, written: Mapping[str, Any], out: TextIO) -> None:
    _say(out, f"\nwrote flow_runs/{run_id}")
    for step_id, step in written.items():
        after = f"  after {' + '.join(step['dependsOn'])}" if step.get("dependsOn") else ""
        _say(out, f"  {step_id:<{WIDTH}}{step['type']:<12}{step['status']}{after}")
    _say(out, "\nstep state changes (seconds since the write)")


def _watch(ref: Any, written: Mapping[str, Any], out: TextIO, timeout: float) -> dict[str, Any] | None:
    """Print a line per step state change until every LLM_REPORT step settled; None on timeout."""
    seen = {step_id: _state(step) for step_id, step in written.items()}
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        steps: dict[str, Any] = (ref.get().to_dict() or {}).get("steps", {})
        for step_id, step in steps.items():
            if _state(step) != seen.get(step_id):
                elapsed, before = f"+{time.monotonic() - started:.2f}s", seen.get(step_id, ("?", 0))[0]
                change = f"{step_id:<{WIDTH}}{before} -> {step.get('status')}  {_detail(step)}"
                _say(out, f"  {elapsed:>7}  {change}".rstrip())
                seen[step_id] = _state(step)
        if _settled(steps):
            return steps
        time.sleep(POLL_SECONDS)
    return None


def _state(step: Mapping[str, Any]) -> tuple[str, int]:
    return str(step.get("status")), int(step.get("attempt") or 0)


def _detail(step: Mapping[str, Any]) -> str:
    status, outputs, error = step.get("status"), step.get("outputs") or {}, step.get("error") or {}
    if status == "RUNNING":
        return f"(attempt {step.get('attempt')})"
    if status == "SUCCEEDED":
        return f"({_plural(outputs.get('llmCalls', 0), 'model call')}, {outputs.get('latencyMs')} ms)"
    if status in ("FAILED", "RETRY_WAIT"):
        return f"({error.get('code')}: {error.get('message')})"
    return ""


def _settled(steps: Mapping[str, Any]) -> bool:
    """No LLM_REPORT step will move any more in this demo (a stuck dependency blocks its dependents)."""
    stuck = {step_id for step_id, step in steps.items() if step.get("status") in SETTLED - {"SUCCEEDED"}}
    reports = [step for step in steps.values() if step.get("type") == "LLM_REPORT"]
    return all(step.get("status") in SETTLED or stuck & set(step.get("dependsOn") or ()) for step in reports)


def _print_artifacts(steps: Mapping[str, Any], out: TextIO) -> None:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials

    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    with contextlib.closing(client):
        for step_id in (s for s in REPORT_STEPS if steps[s].get("status") == "SUCCEEDED"):
            outputs = steps[step_id]["outputs"]
            bucket, _, name = str(outputs["gcs_uri"]).removeprefix("gs://").partition("/")
            report = json.loads(client.bucket(bucket).blob(name).download_as_bytes())
            calls, tokens = _plural(outputs["llmCalls"], "model call"), outputs["usage"]["totalTokens"]
            took, cost = f"{outputs['latencyMs']} ms", _usd(outputs.get("costUsd"))
            _say(out, f"\n{step_id}  {outputs['gcs_uri']}")
            _say(out, f"  {outputs['sizeBytes']} bytes, {calls}, {took}, {tokens} tokens, cost {cost}")
            _say(out, textwrap.indent(json.dumps(report, indent=2, ensure_ascii=False), "  "))


def _print_waterfall(traces: OtlpReceiver, run_id: str, steps: Mapping[str, Any], out: TextIO) -> None:
    """Each LLM_REPORT step's phases from its trace; one line when no span arrived."""
    ran = [s for s in REPORT_STEPS if steps[s].get("status") in SETTLED]
    traces.wait_for(lambda spans: waterfall.complete(spans, run_id, ran), SPANS_WAIT_SECONDS)
    spans = traces.spans()
    if not spans:
        _say(out, f"\nno spans reached the trace receiver within {SPANS_WAIT_SECONDS:g}s: no waterfall to draw")
        return
    _say(out, "\nwaterfall per step (from its trace: claim, config, model, artifact, finalize)")
    _say(out, textwrap.indent("\n".join(waterfall.render(spans, run_id, ran)), "  "))


def _verdict(run_id: str, steps: Mapping[str, Any], written: Mapping[str, Any], calls: int | None, out: TextIO) -> int:
    problems = [f"{s} is {steps[s].get('status')}" for s in REPORT_STEPS if steps[s].get("status") != "SUCCEEDED"]
    other = f"{OTHER_STEP} ({written[OTHER_STEP]['type']})"
    if steps.get(OTHER_STEP) != written[OTHER_STEP]:
        problems.append(f"{other} was modified")
    if calls is not None:
        _say(out, f"\nmodel calls received by the stub: {calls}")
        if calls != len(REPORT_STEPS):
            problems.append(f"the stub got {calls} model calls, expected {len(REPORT_STEPS)}")
    if any(step.get("status") == "RETRY_WAIT" for step in steps.values()):
        problems.append("RETRY_WAIT steps resume only when sweep_flow_runs runs, which the local stack does not do")
    if problems:
        _say(out, f"\nDEMO FAILED ({run_id}): {'; '.join(problems)}; service logs in {LOG_DIR}")
        return 1
    _say(out, f"\nDEMO OK: {len(REPORT_STEPS)} LLM_REPORT steps SUCCEEDED, {other} untouched")
    return 0


def _linger(stack: Stack, out: TextIO, code: int) -> int:
    _say(out, "\nthe stack keeps running (Ctrl-C stops it); write flow_runs/* documents to trigger the function")
    _say(out, f"  export GOOGLE_CLOUD_PROJECT={stack.emulator.project}")
    _say(out, f"  export FIRESTORE_EMULATOR_HOST={stack.emulator.host_port}")
    _say(out, f"  export STORAGE_EMULATOR_HOST={stack.gcs.url}  # bucket {BUCKET}")
    _say(out, f"  function     {stack.function.url}  (log: {stack.function.log_path})")
    if stack.stub is not None:
        _say(out, f"  gemini stub  {stack.stub.base_url}")
    if stack.local_model is not None:
        _say(out, f"  local model  {stack.local_model.base_url}  (log: {stack.local_model.log_path})")
    _say(out, f"  traces       {stack.traces.endpoint}  (OTLP/HTTP receiver, in this process)")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    _say(out, "\nshutting down")
    return code


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so ``kill`` shuts the stack down like Ctrl-C does."""
    main = threading.current_thread() is threading.main_thread()  # only it may install handlers
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _usd(cost: object) -> str:
    """``outputs.costUsd``: dollars, or "—" when the model's price is not known; a zero-priced
    profile (the local model) says so."""
    if not isinstance(cost, int | float) or isinstance(cost, bool):
        return "—"
    return f"${cost:.6f}" + (" (the profile's prices are 0: a local model)" if cost == 0 else "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _say(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)
