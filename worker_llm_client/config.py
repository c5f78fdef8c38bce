"""Settings, read from the environment once. Nothing else in the package reads ``os.environ``.

Lookup order: the process environment (Cloud Functions sets it from the deployment, Secret Manager
mounts ``GEMINI_API_KEY``), then the defaults below. Required values are checked when the executor
is built (the first event with work), not at import time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from worker_llm_client.errors import ConfigurationError

DEFAULT_DATABASE = "(default)"
DEFAULT_LOCATION = "us-central1"
DEFAULT_LEASE_SECONDS = 600
DEFAULT_MAX_PARALLEL_STEPS = 8
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_CATALOG_CACHE_SECONDS = 30
DEFAULT_MODEL_RETRY_BUDGET_SECONDS = 120
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 540  # the deploy's --timeout; LEASE_SECONDS stays above it
FINALIZE_MARGIN_SECONDS = 60  # kept free at the end of an invocation for the upload and finalize
_API_KEY = "_API_KEY"  # pragma: allowlist secret (a suffix: what an endpoint's apiKeyEnv may name)
# the first-party providers' keys, by provider
PROVIDER_KEY_ENVS = {"gemini": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
TracesExporter = Literal["gcp_trace", "otlp", "console", "none"]
TRACES_EXPORTERS: tuple[TracesExporter, ...] = ("gcp_trace", "otlp", "console", "none")


@dataclass(frozen=True)
class Settings:
    project: str
    database: str = DEFAULT_DATABASE
    artifacts_bucket: str = ""
    allowed_llm_profiles: frozenset[str] = frozenset()
    allowed_models: frozenset[str] = frozenset()
    gemini_api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    location: str = DEFAULT_LOCATION
    gemini_base_url: str | None = None
    vertex_base_url: str | None = None  # Vertex AI endpoint override, for vertex and anthropic_vertex
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    endpoint_keys: Mapping[str, str] = field(default_factory=dict, repr=False)  # *_API_KEY: openai_compatible
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    max_parallel_steps: int = DEFAULT_MAX_PARALLEL_STEPS
    log_level: str = DEFAULT_LOG_LEVEL
    catalog_cache_seconds: int = DEFAULT_CATALOG_CACHE_SECONDS
    model_retry_budget_seconds: int = DEFAULT_MODEL_RETRY_BUDGET_SECONDS
    function_timeout_seconds: int = DEFAULT_FUNCTION_TIMEOUT_SECONDS
    worker_id: str = ""
    traces_exporter: TracesExporter = "none"  # OTEL_TRACES_EXPORTER, or chosen by where we run
    problems: tuple[str, ...] = ()  # malformed values, reported when the executor is built

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Never raises: a no-op event must not fail on configuration it does not use."""
        env = os.environ if env is None else env
        problems: list[str] = []
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT", "") or env.get("GCLOUD_PROJECT", ""),
            database=env.get("FIRESTORE_DATABASE") or DEFAULT_DATABASE,
            artifacts_bucket=env.get("ARTIFACTS_BUCKET", ""),
            allowed_llm_profiles=_csv(env.get("ALLOWED_LLM_PROFILES", "")),
            allowed_models=_csv(env.get("ALLOWED_MODELS", "")),
            gemini_api_key=env.get("GEMINI_API_KEY") or None,
            location=env.get("GOOGLE_CLOUD_LOCATION") or DEFAULT_LOCATION,
            gemini_base_url=env.get("GEMINI_BASE_URL") or None,
            vertex_base_url=env.get("VERTEX_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            endpoint_keys={k: v for k, v in env.items() if k.endswith(_API_KEY) and v},
            lease_seconds=_positive_int(env, "LEASE_SECONDS", DEFAULT_LEASE_SECONDS, problems),
            max_parallel_steps=_positive_int(env, "MAX_PARALLEL_STEPS", DEFAULT_MAX_PARALLEL_STEPS, problems),
            log_level=(env.get("LOG_LEVEL") or DEFAULT_LOG_LEVEL).upper(),
            catalog_cache_seconds=_non_negative_int(
                env, "CONFIG_CACHE_SECONDS", DEFAULT_CATALOG_CACHE_SECONDS, problems
            ),
            model_retry_budget_seconds=_non_negative_int(
                env, "MODEL_RETRY_BUDGET_SECONDS", DEFAULT_MODEL_RETRY_BUDGET_SECONDS, problems
            ),
            function_timeout_seconds=_positive_int(
                env, "FUNCTION_TIMEOUT_SECONDS", DEFAULT_FUNCTION_TIMEOUT_SECONDS, problems
            ),
            worker_id=_worker_id(env),
            traces_exporter=_traces_exporter(env, problems),
            problems=tuple(problems),
        )

    def require_executor_settings(self) -> None:
        required = (("GOOGLE_CLOUD_PROJECT", self.project), ("ARTIFACTS_BUCKET", self.artifacts_bucket))
        problems = [f"{name} is required" for name, value in required if not value] + list(self.problems)
        if problems:
            raise ConfigurationError("bad environment: " + "; ".join(problems))


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


def _csv(value: str) -> frozenset[str]:
    return frozenset(item.strip() for item in value.split(",") if item.strip())


def _positive_int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    return _bounded_int(env, name, default, problems, minimum=1)


def _non_negative_int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    return _bounded_int(env, name, default, problems, minimum=0)


def _bounded_int(env: Mapping[str, str], name: str, default: int, problems: list[str], minimum: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        problems.append(f"{name} must be an integer >= {minimum}, got {raw!r}")
        return default
    return value


def _traces_exporter(env: Mapping[str, str], problems: list[str]) -> TracesExporter:
    """``OTEL_TRACES_EXPORTER`` (the standard switch; the first of a list); unset: Cloud Trace on
    Cloud Run (``K_SERVICE``), OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else none."""
    raw = (env.get("OTEL_TRACES_EXPORTER") or "").split(",")[0].strip().lower()
    if not raw:
        if env.get("K_SERVICE"):
            return "gcp_trace"
        return "otlp" if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    if raw not in TRACES_EXPORTERS:
        problems.append(f"OTEL_TRACES_EXPORTER must be one of {', '.join(TRACES_EXPORTERS)}, got {raw!r}")
        return "none"
    return raw


def _worker_id(env: Mapping[str, str]) -> str:
    revision = env.get("K_REVISION", "local")
    return f"{revision}/{socket.gethostname()}/{os.getpid()}"
