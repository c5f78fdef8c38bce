"""``doctor --network``: one cheap authenticated call per allowlisted profile, through the real SDKs.

    gemini                     google-genai ``models.get(model)``: GET {base}/v1beta/models/{model}
    openai, openai_compatible  openai ``models.list()``: GET {base}/models, and is the model listed?
    anthropic                  anthropic ``models.retrieve(model)``: GET {base}/v1/models/{model}
    vertex, anthropic_vertex   ADC resolved (``google.auth.default``) and a token obtained

None of them costs a token. Each goes where the adapter would (the same base URL settings and API
version), with SDK retries off and a ``PROBE_TIMEOUT_SECONDS`` timeout; profiles are probed in
parallel. A line names the host (scheme, host and port: never a path's userinfo or a key) and what
came back: the HTTP status with the error's class and type, never the error's message (OpenAI's 401
message quotes part of the rejected key). 429 is a warn (the key was accepted); every other
failure is a FAIL. Nothing here raises: an unforeseen exception is a FAIL naming its class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import urlsplit

from worker_llm_client.config import Settings
from worker_llm_client.core.bounds import clip
from worker_llm_client.execution_models import Profile
from worker_llm_client.operations.doctor import Check, Level

PROBE_TIMEOUT_SECONDS = 5.0
MAX_PARALLEL = 8
GEMINI_URL = "https://generativelanguage.googleapis.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_MAX_TYPE = 64  # an error body's type/code, e.g. invalid_api_key
Outcome = tuple[Level, str, str]  # level, what, fix
Adc = Callable[[], Any]  # resolves ADC and refreshes a token; returns the credentials


def probe_all(profiles: Sequence[Profile], settings: Settings, adc: Adc | None = None) -> dict[str, Check]:
    """Profile id -> its ``endpoint`` check; ``adc`` replaces ``google.auth.default`` (tests)."""
    if not profiles:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(profiles))) as pool:
        checks = list(pool.map(lambda profile: probe(profile, settings, adc), profiles))
    return {check.profile: check for check in checks}


def probe(profile: Profile, settings: Settings, adc: Adc | None = None) -> Check:
    try:
        if profile.provider in ("vertex", "anthropic_vertex"):
            level, what, fix = _vertex(adc or default_adc)
        elif profile.provider in ("openai", "openai_compatible"):
            level, what, fix = _openai(profile, settings)
        elif profile.provider == "anthropic":
            level, what, fix = _anthropic(profile, settings)
        else:
            level, what, fix = _gemini(profile, settings)
    except Exception as exc:  # a finding, not a crash; the class only (its text may quote a reply)
        level, what, fix = "FAIL", f"the probe failed: {type(exc).__name__}", "run it again; report it if it persists"
    return Check(level, profile.profile_id, "endpoint", what, fix)


def _gemini(profile: Profile, settings: Settings) -> Outcome:
    if not settings.gemini_api_key:
        return _no_key("GEMINI_API_KEY")
    from google.genai import Client, errors, types

    from worker_llm_client.adapters.gemini_client import GEMINI_API_VERSION

    where, call = host(settings.gemini_base_url or GEMINI_URL), f"models.get({profile.model})"
    options = types.HttpOptions(
        api_version=GEMINI_API_VERSION, base_url=settings.gemini_base_url, timeout=int(PROBE_TIMEOUT_SECONDS * 1000)
    )
    client = Client(vertexai=False, api_key=settings.gemini_api_key, http_options=options)
    timeouts, transport = _transport_errors()
    try:
        client.models.get(model=profile.model)
    except errors.APIError as exc:
        return status_outcome(call, where, exc.code, type(exc).__name__, exc.status)
    except timeouts:
        return _timed_out(call, where)
    except transport as exc:
        return _unreachable(call, where, exc)
    finally:
        client.close()
    return "ok", f"{call} at {where}: answered", ""


def _openai(profile: Profile, settings: Settings) -> Outcome:
    import openai

    from worker_llm_client.adapters.openai_client import OPENAI_BASE_URL, OPENAI_KEY_ENV, UNUSED_KEY

    if profile.provider == "openai":
        key, base_url = settings.openai_api_key, settings.openai_base_url or OPENAI_BASE_URL
        if not key:
            return _no_key(OPENAI_KEY_ENV)
    else:
        endpoint = profile.endpoint
        if endpoint is None:  # ProfileDoc requires one for openai_compatible
            return "FAIL", "not probed: the profile has no endpoint", "give it an endpoint"
        key, base_url = UNUSED_KEY, endpoint.base_url
        if endpoint.api_key_env is not None:
            key = settings.endpoint_keys.get(endpoint.api_key_env) or ""
            if not key:
                return _no_key(endpoint.api_key_env)
    where, call = host(base_url), "GET /models"
    no_account = cast(dict[str, str], {"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit})
    client = openai.OpenAI(
        api_key=key, base_url=base_url, max_retries=0, timeout=PROBE_TIMEOUT_SECONDS, default_headers=no_account
    )
    try:
        body = json.loads(client.models.with_raw_response.list().http_response.content)
    except openai.APIStatusError as exc:
        return status_outcome(call, where, exc.status_code, type(exc).__name__, exc.code or exc.type)
    except openai.APITimeoutError:
        return _timed_out(call, where)
    except openai.APIConnectionError as exc:
        return _unreachable(call, where, exc.__cause__ or exc)
    except (ValueError, RecursionError):
        return "FAIL", f"{call} at {where}: answered with something that is not JSON", _CHECK_URL
    finally:
        client.close()
    return _listed(profile.model, body, call, where)


def _listed(model: str, body: Any, call: str, where: str) -> Outcome:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return "warn", f"{call} at {where}: answered, but not with a list of models", _CHECK_URL
    ids = {item.get("id") for item in data if isinstance(item, dict)}
    if model in ids:
        return "ok", f"{call} at {where}: lists {model}", ""
    what = f"{call} at {where}: answered with {len(ids)} model(s), not {model}"
    return "warn", what, "check the profile's model id (some endpoints serve models they do not list)"


def _anthropic(profile: Profile, settings: Settings) -> Outcome:
    if not settings.anthropic_api_key:
        return _no_key("ANTHROPIC_API_KEY")
    from anthropic import Anthropic, APIConnectionError, APIStatusError, APITimeoutError

    from worker_llm_client.adapters.anthropic_client import ANTHROPIC_API_URL

    base_url = settings.anthropic_base_url or ANTHROPIC_API_URL
    where, call = host(base_url), f"models.retrieve({profile.model})"
    client = Anthropic(
        api_key=settings.anthropic_api_key,
        base_url=base_url,
        max_retries=0,
        timeout=PROBE_TIMEOUT_SECONDS,
        open_telemetry=False,
    )
    try:
        client.models.with_raw_response.retrieve(profile.model)
    except APIStatusError as exc:
        return status_outcome(call, where, exc.status_code, type(exc).__name__, exc.type)
    except APITimeoutError:
        return _timed_out(call, where)
    except APIConnectionError as exc:
        return _unreachable(call, where, exc.__cause__ or exc)
    finally:
        client.close()
    return "ok", f"{call} at {where}: answered", ""


def default_adc() -> Any:
    """ADC with a fresh token, each request bounded by ``PROBE_TIMEOUT_SECONDS``."""
    import google.auth
    from google.auth.transport.requests import Request

    class _Bounded(Request):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", PROBE_TIMEOUT_SECONDS)
            return super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
    credentials.refresh(_Bounded())  # type: ignore[no-untyped-call]
    return credentials


def _vertex(adc: Adc) -> Outcome:
    from google.auth import exceptions

    try:
        credentials = adc()
    except exceptions.DefaultCredentialsError:
        fix = "gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS (deployed: the runtime account)"
        return "FAIL", "no Application Default Credentials found", fix
    except exceptions.GoogleAuthError as exc:
        return "FAIL", f"ADC found, but no token: {type(exc).__name__}", "check the credentials and the network to them"
    return "ok", f"ADC ({type(credentials).__name__}) gave a token", ""


# --- outcomes -------------------------------------------------------------------------------------

_CHECK_URL = "check the base URL: it should be the API's root (OpenAI's ends in /v1)"


def status_outcome(call: str, where: str, status: int | None, error_class: str, error_type: Any) -> Outcome:
    kind = f", {clip(str(error_type), _MAX_TYPE)}" if error_type else ""
    what = f"{call} at {where}: HTTP {status} {error_class}{kind}"
    if status == 429:
        return "warn", what + " (the key was accepted)", "rate-limited now: check the quota if it lasts"
    if status in (401, 403):
        return "FAIL", what, "the key was refused: check its value and its permissions"
    if status == 404:
        return "FAIL", what, "check the profile's model id and the endpoint's base URL"
    return "FAIL", what, "the endpoint answered with an error: check its status page and the base URL"


def _timed_out(call: str, where: str) -> Outcome:
    return "FAIL", f"{call} at {where}: no answer within {PROBE_TIMEOUT_SECONDS:g} s", "check the network path to it"


def _unreachable(call: str, where: str, exc: BaseException) -> Outcome:
    what = f"{call} at {where}: unreachable ({type(exc).__name__})"
    return "FAIL", what, "check the base URL and that the endpoint is up (DNS, proxy, firewall)"


def _no_key(name: str) -> Outcome:
    return "warn", f"not probed: {name} is not set here", f"set {name} to probe it"


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    import httpx2

    return (TimeoutError, httpx2.TimeoutException), (ConnectionError, httpx2.TransportError)


def host(url: str) -> str:
    """``scheme://host[:port]``: no userinfo, path or query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def as_network(adc: Adc | None = None) -> Callable[[Sequence[Profile], Settings], Mapping[str, Check]]:
    """``doctor.diagnose``'s ``network`` argument."""
    return lambda profiles, settings: probe_all(profiles, settings, adc)
