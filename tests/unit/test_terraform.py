"""``deploy/terraform/`` deploys what the code assumes, checked offline.

The files are read with python-hcl2 (what ``scripts/check-terraform.sh`` parses with too); values
are the variables' defaults, and every relationship a non-default value could break is also a
``validation`` or ``precondition`` in the Terraform, which these tests require to exist. Checked:
the upload (only the function, and all of it, its imports pinned), timeouts against the lease and
the Scheduler deadline against the sweep window, every IAM grant against ``iam_roles.yaml``, every
environment variable ``config.py`` reads, the Eventarc trigger and the concurrency, the Firestore
field settings, the bucket's lifecycle, the pinned secret, and the monitoring bodies Terraform maps.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import yaml

from tests.stacks import ROOT
from tests.unit.test_contract_doc import env_vars_read_by_config
from worker_llm_client import config
from worker_llm_client.bootstrap import finalize_margin, work_window

TF = ROOT / "deploy" / "terraform"
MONITORING = ROOT / "deploy" / "monitoring"
REFERENCE = re.compile(r"^\$\{(.*)\}$")
SA_MEMBER = re.compile(r"^serviceAccount:\$\{google_service_account\.([a-z_]+)\.email\}$")
CHECKOV_SKIP = re.compile(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)$")

MOUNTED_WHEN_NEEDED = "mounted from provider_secrets when an allowlisted profile needs it (doctor checks)"
# What config.py reads that the deploy leaves unset, and why (everything else must be set).
UNSET_ON_PURPOSE = {
    "GCLOUD_PROJECT": "the fallback of GOOGLE_CLOUD_PROJECT, which is set",
    "GEMINI_BASE_URL": "production talks to the real endpoints; only the local stub overrides it",
    "VERTEX_BASE_URL": "production talks to the real endpoints; only the local stub overrides it",
    "OPENAI_BASE_URL": "production talks to the real endpoints; only the local stub overrides it",
    "ANTHROPIC_BASE_URL": "production talks to the real endpoints; only the local stub overrides it",
    "OPENAI_API_KEY": MOUNTED_WHEN_NEEDED,
    "ANTHROPIC_API_KEY": MOUNTED_WHEN_NEEDED,
    "OTEL_EXPORTER_OTLP_ENDPOINT": "OTEL_TRACES_EXPORTER is set explicitly (gcp_trace)",
    "K_SERVICE": "set by Cloud Run",
    "K_REVISION": "set by Cloud Run",
}
SECRET_ENV = {"GEMINI_API_KEY"}
# Read by the platform, not by config.py: functions-framework's gunicorn threads.
PLATFORM_ENV = {"THREADS"}


# --- reading the Terraform ------------------------------------------------------------------------


def unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of strings and labels: ``'"x"'`` -> ``'x'``."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def reference(value: Any) -> str:
    """``'${var.x}'`` -> ``'var.x'`` (an expression that is one interpolation)."""
    match = REFERENCE.match(unquote(value)) if isinstance(value, str) else None
    assert match, f"expected an expression, got {value!r}"
    return match.group(1)


@cache
def parsed() -> dict[str, dict[Any, Any]]:
    """Every ``.tf`` file: ``{"resource": {(type, name): body}, "variable": {...}, "locals": {...}}``."""
    merged: dict[str, dict[Any, Any]] = {"resource": {}, "data": {}, "variable": {}, "locals": {}, "import": {}}
    for path in sorted(TF.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            document = hcl2.load(handle)
        for block in document.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    merged["resource"][(unquote(kind), unquote(name))] = body
        for block in document.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    merged["data"][(unquote(kind), unquote(name))] = body
        for block in document.get("variable", []):
            for name, body in block.items():
                merged["variable"][unquote(name)] = body
        for block in document.get("locals", []):
            merged["locals"].update({k: v for k, v in block.items() if k != "__is_block__"})
        for index, block in enumerate(document.get("import", [])):
            merged["import"][(path.name, index)] = block
    return merged


def resource(kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] | None = parsed()["resource"].get((kind, name))
    assert found is not None, f"deploy/terraform has no {kind}.{name}"
    return found


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {key[1]: body for key, body in parsed()["resource"].items() if key[0] == kind}


def default(variable: str) -> Any:
    body = parsed()["variable"][variable]
    assert "default" in body, f"variable {variable} has no default"
    return unquote(body["default"])


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block"
    return blocks[0]  # type: ignore[no-any-return]


def conditions(body: dict[str, Any], kind: str) -> list[str]:
    """The ``condition`` expressions of a resource's preconditions or a variable's validations."""
    if kind == "precondition":
        found = [p for lifecycle in body.get("lifecycle", []) for p in lifecycle.get("precondition", [])]
    else:
        found = body.get("validation", [])
    return [reference(item["condition"]) for item in found]


def functions() -> dict[str, dict[str, Any]]:
    found = resources("google_cloudfunctions2_function")
    assert set(found) == {"events", "sweeper"}
    return found


def function_env(name: str) -> set[str]:
    """Names of the plain environment variables of a function (``merge(local.executor_env, {...})``)."""
    service = block(functions()[name], "service_config")
    expression = reference(service["environment_variables"])
    assert expression.startswith("merge(local.executor_env,"), expression
    extra = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", expression))
    return set(parsed()["locals"]["executor_env"]) | extra


# --- the files ------------------------------------------------------------------------------------


def test_every_terraform_file_parses_and_formats_with_two_space_indents() -> None:
    files = sorted(TF.glob("*.tf"))
    assert {path.name for path in files} >= {"versions.tf", "variables.tf", "functions.tf", "iam.tf", "monitoring.tf"}
    for path in files:
        with path.open(encoding="utf-8") as handle:
            hcl2.load(handle)
        assert "\t" not in path.read_text(encoding="utf-8"), f"{path.name}: tabs (terraform fmt uses spaces)"


def test_every_checkov_skip_is_justified_in_place() -> None:
    skips = [
        (path.name, match.group(1), match.group(2).strip())
        for path in sorted(TF.glob("*.tf"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if (match := CHECKOV_SKIP.search(line))
    ]
    assert skips, "expected the reviewed skips of storage.tf"
    for file, check, reason in skips:
        assert len(reason) >= 40, f"{file}: skip of {check} needs its reason, got {reason!r}"
    skip_lines = [
        line
        for path in TF.glob("*.tf")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "checkov:skip" in line
    ]
    assert len(skip_lines) == len(skips), "a checkov:skip without the CKV_...:reason form"


# --- the upload -----------------------------------------------------------------------------------


def source_patterns() -> list[str]:
    return [unquote(pattern) for pattern in parsed()["locals"]["source_patterns"]]


def uploaded() -> list[str]:
    """What ``fileset(repo_root, pattern)`` yields for each include pattern (``**`` = any depth)."""
    files: set[str] = set()
    for pattern in source_patterns():
        files.update(path.relative_to(ROOT).as_posix() for path in ROOT.glob(pattern) if path.is_file())
    return sorted(files)


def test_the_archive_is_built_from_the_include_list() -> None:
    archive = parsed()["data"][("archive_file", "function_source")]
    source = archive["dynamic"][0]['"source"' if '"source"' in archive["dynamic"][0] else "source"]
    assert reference(source["for_each"]) == "local.source_files"
    assert "fileset(local.repo_root, pattern)" in reference(parsed()["locals"]["source_files"])
    obj = resource("google_storage_bucket_object", "function_source")
    assert "output_sha256" in unquote(obj["name"]), "the object is named by its content: no change, no build"


def test_the_upload_is_the_function_and_nothing_else() -> None:
    files = uploaded()
    print("uploaded:", *files, sep="\n  ")  # the list, for a reviewer running pytest -s
    assert {"main.py", "requirements.txt", "worker_llm_client/__init__.py"} <= set(files)
    top_level = {name.split("/")[0] for name in files}
    assert top_level == {"main.py", "requirements.txt", "worker_llm_client"}, top_level
    assert "pyproject.toml" not in files, "the build installs requirements.txt, the lock, and nothing else"
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_the_upload_has_all_of_the_package() -> None:
    """A data file added to the package must be added to the include list too."""
    package = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "worker_llm_client").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert package - set(uploaded()) == set()


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _distribution_of(module: str) -> str | None:
    """The distribution that installed ``module``'s file (``google.*`` is shared by many)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    origin = spec.origin
    if origin is None and spec.submodule_search_locations:
        origin = next(iter(spec.submodule_search_locations), None)
    if origin is None or origin in {"built-in", "frozen"}:
        return None
    target = Path(origin).resolve()
    for name in _candidates().get(module.split(".")[0], []):
        if target in _files_of(name):
            return name
    return None


@cache
def _candidates() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@cache
def _files_of(distribution: str) -> frozenset[Path]:
    dist = importlib.metadata.distribution(distribution)
    return frozenset(Path(str(dist.locate_file(file))).resolve() for file in dist.files or [])


@cache
def _unpinned_imports() -> dict[str, set[str]]:
    """distribution -> modules, for third-party modules the uploaded files import that no line of
    requirements.txt pins (the build would not install them)."""
    pinned = {
        re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].strip().lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    missing: dict[str, set[str]] = {}
    for name in uploaded():
        if not name.endswith(".py"):
            continue
        for module in _imports(ROOT / name):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in {"worker_llm_client", "__future__"}:
                continue
            dist = _distribution_of(module)
            if dist is None:
                continue  # a name imported from a module (from x import name), not a module
            if dist.lower().replace("_", "-") not in pinned:
                missing.setdefault(dist, set()).add(module)
    return missing


def test_the_upload_imports_only_itself_and_the_standard_library_or_the_lock() -> None:
    """Nothing in the upload imports tests, devstack or benchmarks; every other third-party module
    it imports was installed by a distribution requirements.txt pins (so the build installs it)."""
    local_outside = {
        module
        for name in uploaded()
        if name.endswith(".py")
        for module in _imports(ROOT / name)
        if module.split(".")[0] in {"tests", "devstack", "benchmarks", "main"}
    }
    assert local_outside == set()
    assert _unpinned_imports() == {}
    assert _distribution_of("detect_secrets.plugins.base") == "detect-secrets", "the lookup itself works"


# --- timeouts -------------------------------------------------------------------------------------


def test_the_function_timeout_is_below_the_lease_and_is_what_the_code_is_told() -> None:
    timeout, lease = default("function_timeout_seconds"), default("lease_seconds")
    assert timeout < lease
    assert (timeout, lease) == (config.DEFAULT_FUNCTION_TIMEOUT_SECONDS, config.DEFAULT_LEASE_SECONDS)
    for body in functions().values():
        assert reference(block(body, "service_config")["timeout_seconds"]) == "var.function_timeout_seconds"
    env = parsed()["locals"]["executor_env"]
    assert reference(env["FUNCTION_TIMEOUT_SECONDS"]) == "tostring(var.function_timeout_seconds)"
    assert reference(env["LEASE_SECONDS"]) == "tostring(var.lease_seconds)"
    # for values other than the defaults: refused at plan time
    assert "var.lease_seconds > var.function_timeout_seconds" in conditions(parsed()["variable"]["lease_seconds"], "v")
    assert "var.function_timeout_seconds < var.lease_seconds" in conditions(functions()["events"], "precondition")


def test_the_scheduler_deadline_outlasts_the_sweep_window() -> None:
    timeout, lease = default("function_timeout_seconds"), default("lease_seconds")
    sweep_window = work_window(timeout, lease) + finalize_margin(timeout, lease)
    deadline = default("sweep_attempt_deadline_seconds")
    assert sweep_window < deadline <= 1800  # Cloud Scheduler's limit for HTTP targets
    job = resource("google_cloud_scheduler_job", "sweep")
    assert unquote(job["attempt_deadline"]) == "${var.sweep_attempt_deadline_seconds}s"
    assert "var.sweep_attempt_deadline_seconds > local.sweep_window" in conditions(job, "precondition")
    # Terraform's sweep_window is bootstrap's: the same two formulas
    local = parsed()["locals"]
    assert reference(local["window"]) == "min(var.function_timeout_seconds, var.lease_seconds)"
    assert reference(local["finalize_margin"]) == f"min({config.FINALIZE_MARGIN_SECONDS}, local.window / 4)"
    assert reference(local["work_window"]) == "local.window - local.finalize_margin"


def test_the_scheduler_calls_the_sweeper_with_an_oidc_token_for_its_url() -> None:
    target = block(resource("google_cloud_scheduler_job", "sweep"), "http_target")
    uri = "google_cloudfunctions2_function.sweeper.service_config[0].uri"
    assert unquote(target["uri"]) == "${" + uri + "}?limit=${var.sweep_limit}"
    oidc = block(target, "oidc_token")
    assert reference(oidc["audience"]) == uri, "an explicit audience: the URL without the query"
    assert reference(oidc["service_account_email"]) == "google_service_account.scheduler.email"


# --- IAM ------------------------------------------------------------------------------------------

GRANTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "google_project_iam_member": lambda body: "project",
    "google_storage_bucket_iam_member": lambda body: reference(body["bucket"]).removesuffix(".name"),
    "google_secret_manager_secret_iam_member": lambda body: (
        reference(body["for_each"]) if "for_each" in body else reference(body["secret_id"]).removesuffix(".id")
    ),
    "google_cloud_run_v2_service_iam_member": lambda body: reference(body["name"]).removesuffix(".name"),
    "google_artifact_registry_repository_iam_member": lambda body: reference(body["repository"]).removesuffix(".name"),
}


def granted() -> set[tuple[str, str, str]]:
    """(member, role, scope) of every IAM grant in the Terraform."""
    grants = set()
    for key, body in parsed()["resource"].items():
        kind, name = key
        if "iam" not in kind:
            continue
        assert kind in GRANTS, f"{kind}.{name}: an IAM resource kind this test does not read"
        member = SA_MEMBER.match(unquote(body["member"]))
        assert member, f"{kind}.{name}: grants only to this deploy's own service accounts"
        grants.add((member.group(1), unquote(body["role"]), GRANTS[kind](body)))
    return grants


def reviewed() -> dict[tuple[str, str, str], str]:
    entries = yaml.safe_load((TF / "iam_roles.yaml").read_text(encoding="utf-8"))["grants"]
    table = {(e["member"], e["role"], e["scope"]): e["reason"] for e in entries}
    assert len(table) == len(entries), "a grant listed twice in iam_roles.yaml"
    return table


def test_every_role_granted_is_reviewed_with_its_reason() -> None:
    table = reviewed()
    assert granted() - set(table) == set(), "grants missing from deploy/terraform/iam_roles.yaml"
    assert set(table) - granted() == set(), "iam_roles.yaml lists grants iam.tf no longer makes"
    for grant, reason in table.items():
        assert len(reason) > 30, f"{grant}: say why"
    assert not [g for g in granted() if g[1] in {"roles/owner", "roles/editor", "roles/viewer"}]


def test_each_identity_is_its_own_service_account() -> None:
    accounts = resources("google_service_account")
    assert set(accounts) == {"runtime", "trigger", "scheduler", "build"}
    by_member: dict[str, set[str]] = {}
    for member, role, scope in granted():
        by_member.setdefault(member, set()).add(f"{role}@{scope}")
    assert by_member["scheduler"] == {"roles/run.invoker@google_cloudfunctions2_function.sweeper"}
    assert by_member["trigger"] == {
        "roles/eventarc.eventReceiver@project",
        "roles/run.invoker@google_cloudfunctions2_function.events",
    }
    events, sweeper = functions()["events"], functions()["sweeper"]
    for body in (events, sweeper):
        service = block(body, "service_config")
        assert reference(service["service_account_email"]) == "google_service_account.runtime.email"
        assert reference(block(body, "build_config")["service_account"]) == "local.build.service_account"
    assert reference(parsed()["locals"]["build"]["service_account"]) == "google_service_account.build.id"
    trigger = block(events, "event_trigger")
    assert reference(trigger["service_account_email"]) == "google_service_account.trigger.email"


def test_vertex_ai_is_granted_only_when_a_vertex_profile_is_allowlisted() -> None:
    vertex = resource("google_project_iam_member", "runtime_vertex")
    assert reference(vertex["count"]) == "local.vertex_allowlisted ? 1 : 0"
    governance = yaml.safe_load((ROOT / "governance.yaml").read_text(encoding="utf-8"))
    profiles = yaml.safe_load((ROOT / "llm_profiles.yaml").read_text(encoding="utf-8"))
    local = parsed()["locals"]
    assert reference(local["allowed_profiles"]) == "local.governance.allowedLlmProfiles"
    assert reference(local["allowed_models"]) == "local.governance.allowedModels"
    assert governance["allowedLlmProfiles"] and governance["allowedModels"]
    expected = any(profiles.get(p, {}).get("provider") == "vertex" for p in governance["allowedLlmProfiles"])
    assert "try(local.profiles[id].provider" in reference(local["vertex_allowlisted"])
    assert expected, "today flash-json-vertex is allowlisted: the runtime gets roles/aiplatform.user"


# --- the environment ------------------------------------------------------------------------------


def test_every_variable_config_reads_is_set_or_left_to_its_default_on_purpose() -> None:
    read = env_vars_read_by_config()
    assert read, "the ast scan found nothing"
    for name in ("events", "sweeper"):
        env = function_env(name)
        secrets = {
            unquote(item["key"]) for item in block(functions()[name], "service_config")["secret_environment_variables"]
        }
        assert secrets == SECRET_ENV
        assert read - env - secrets - set(UNSET_ON_PURPOSE) == set(), f"{name}: set these or list them"
        assert env - read - PLATFORM_ENV == set(), f"{name}: sets variables nothing reads"
        assert not (env & set(UNSET_ON_PURPOSE))


def test_the_other_providers_keys_are_pinned_versions_of_their_own_secrets() -> None:
    for body in functions().values():
        (dynamic,) = block(body, "service_config")["dynamic"]
        mounted = dynamic['"secret_environment_variables"']  # python-hcl2 keeps a label's quotes
        assert reference(mounted["for_each"]) == "var.provider_secrets"
        (content,) = mounted["content"]
        assert reference(content["key"]) == "secret_environment_variables.key"
        assert reference(content["version"]) == "secret_environment_variables.value.version"
    grant = resource("google_secret_manager_secret_iam_member", "runtime_provider_keys")
    assert unquote(grant["secret_id"]) == "projects/${var.project_id}/secrets/${each.value.secret}"
    assert default("provider_secrets") == {}
    (condition,) = conditions(parsed()["variable"]["provider_secrets"], "v")
    assert "GEMINI_API_KEY" in condition and "_API_KEY$" in condition


def test_the_allowlists_come_from_governance_yaml() -> None:
    env = parsed()["locals"]["executor_env"]
    assert reference(env["ALLOWED_LLM_PROFILES"]) == 'join(",", local.allowed_profiles)'
    assert reference(env["ALLOWED_MODELS"]) == 'join(",", local.allowed_models)'
    assert reference(parsed()["locals"]["governance"]) == 'yamldecode(file("${local.repo_root}/governance.yaml"))'


def test_the_gemini_key_is_a_pinned_version_of_the_one_secret() -> None:
    for body in functions().values():
        (secret,) = block(body, "service_config")["secret_environment_variables"]
        assert reference(secret["version"]) == "var.gemini_api_key_version"
        assert reference(secret["secret"]) == "google_secret_manager_secret.gemini_api_key.secret_id"
    assert re.fullmatch(r"[1-9][0-9]*", default("gemini_api_key_version"))
    assert any("regex(" in c for c in conditions(parsed()["variable"]["gemini_api_key_version"], "v"))
    assert "google_secret_manager_secret_version" not in {key[0] for key in parsed()["resource"]}, (
        "the key's value never passes through Terraform state"
    )


# --- trigger and capacity -------------------------------------------------------------------------


def test_the_event_function_is_triggered_by_writes_to_flow_runs_with_retries() -> None:
    trigger = block(functions()["events"], "event_trigger")
    assert unquote(trigger["event_type"]) == "google.cloud.firestore.document.v1.written"
    assert unquote(trigger["retry_policy"]) == "RETRY_POLICY_RETRY"
    assert reference(trigger["trigger_region"]) == "var.firestore_location"
    filters = {
        unquote(f["attribute"]): (unquote(f["value"]), unquote(f.get("operator"))) for f in trigger["event_filters"]
    }
    assert filters == {
        "database": ("${var.firestore_database}", None),
        "document": ("flow_runs/{runId}", "match-path-pattern"),
    }
    assert unquote(block(functions()["events"], "build_config")["entry_point"]) == "handle_flow_run_event"
    assert unquote(block(functions()["sweeper"], "build_config")["entry_point"]) == "sweep_flow_runs"
    assert "event_trigger" not in functions()["sweeper"]


def test_instances_take_concurrent_events_so_the_queue_and_duplicate_detection_see_them() -> None:
    service = block(functions()["events"], "service_config")
    assert reference(service["max_instance_request_concurrency"]) == "var.max_instance_request_concurrency"
    assert default("max_instance_request_concurrency") > 1
    assert float(default("available_cpu")) >= 1, "gen2 needs a whole vCPU for concurrency above 1"
    threads = reference(service["environment_variables"])
    assert "THREADS = tostring(var.max_instance_request_concurrency)" in threads
    assert ".gunicorn" not in threads and "WORKERS" not in threads, "one process per instance"


def test_the_capacity_formula_holds_for_the_defaults_and_is_enforced() -> None:
    ceiling = (default("max_instance_count") + default("sweeper_max_instance_count")) * default("max_parallel_steps")
    assert ceiling <= default("model_concurrency_quota")
    assert default("max_parallel_steps") == config.DEFAULT_MAX_PARALLEL_STEPS
    assert reference(parsed()["locals"]["model_calls_ceiling"]) == (
        "(var.max_instance_count + var.sweeper_max_instance_count) * var.max_parallel_steps"
    )
    assert "local.model_calls_ceiling <= var.model_concurrency_quota" in conditions(
        functions()["events"], "precondition"
    )


# --- Firestore and the bucket ---------------------------------------------------------------------


def test_the_sweeper_query_is_indexed_and_a_runs_steps_are_not() -> None:
    wake = resource("google_firestore_field", "wake_at")
    assert (unquote(wake["collection"]), unquote(wake["field"])) == ("flow_runs", "executor.wakeAt")
    (index,) = block(wake, "index_config")["indexes"]
    assert unquote(index["order"]) == "ASCENDING"
    steps = resource("google_firestore_field", "steps_unindexed")
    assert (unquote(steps["collection"]), unquote(steps["field"])) == ("flow_runs", "steps")
    assert block(steps, "index_config") == {"__is_block__": True}, "an empty index_config exempts the field"


def test_the_artifacts_bucket_is_private_and_expires_reports_and_rejected_replies() -> None:
    bucket = resource("google_storage_bucket", "artifacts")
    assert bucket["uniform_bucket_level_access"] is True
    assert unquote(bucket["public_access_prevention"]) == "enforced"
    rules = {
        reference(block(rule, "condition")["age"]): [
            unquote(s) for s in block(rule, "condition").get("matches_suffix", [])
        ]
        for rule in bucket["lifecycle_rule"]
    }
    assert rules == {"var.report_retention_days": [], "var.invalid_reply_retention_days": [".invalid.json"]}
    assert all(unquote(block(rule, "action")["type"]) == "Delete" for rule in bucket["lifecycle_rule"])
    assert default("invalid_reply_retention_days") < default("report_retention_days")
    assert reference(parsed()["locals"]["executor_env"]["ARTIFACTS_BUCKET"]) == "local.artifacts_bucket"


# --- monitoring -----------------------------------------------------------------------------------


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def test_the_monitoring_bodies_terraform_reads_exist() -> None:
    local = parsed()["locals"]
    assert 'fileset("${local.monitoring_dir}/metrics", "*.yaml")' in reference(local["metric_bodies"])
    assert 'fileset("${local.monitoring_dir}/alerts", "*.yaml")' in reference(local["alert_bodies"])
    assert reference(local["dashboard_files"]) == 'fileset("${local.monitoring_dir}/dashboards", "*.json")'
    assert unquote(local["monitoring_dir"]) == "${path.module}/../monitoring"
    assert (TF / ".." / "monitoring").resolve() == MONITORING
    for folder, suffix in (("metrics", "yaml"), ("alerts", "yaml"), ("dashboards", "json")):
        assert list((MONITORING / folder).glob(f"*.{suffix}")), f"no {folder} bodies"
    for path in (MONITORING / "metrics").glob("*.yaml"):
        assert yaml.safe_load(path.read_text(encoding="utf-8"))["name"] == path.stem, "file name is the metric name"


def test_every_field_of_the_bodies_is_mapped_by_monitoring_tf() -> None:
    """A field Terraform does not map would be dropped silently: every key a metric or alert body
    uses must be read as ``.key`` in monitoring.tf (label extractor keys are data, not fields)."""
    text = (TF / "monitoring.tf").read_text(encoding="utf-8")
    for folder in ("metrics", "alerts"):
        for path in sorted((MONITORING / folder).glob("*.yaml")):
            body = yaml.safe_load(path.read_text(encoding="utf-8"))
            data = dict(body)
            data.pop("labelExtractors", None)
            unmapped = {key for key in _keys(data) if f".{key}" not in text}
            assert unmapped == set(), f"{path.relative_to(ROOT)}: fields monitoring.tf does not map"


def test_the_function_placeholder_is_replaced_in_what_uses_it() -> None:
    placeholders = set()
    for path in [*(MONITORING / "alerts").glob("*.yaml"), *(MONITORING / "dashboards").glob("*.json")]:
        placeholders |= set(re.findall(r"\$\{(_[A-Z_]+)\}", path.read_text(encoding="utf-8")))
    assert placeholders == {"_FUNCTION"}
    local = parsed()["locals"]
    assert 'replace(file("${local.monitoring_dir}/alerts/${file}"), "$${_FUNCTION}", var.function_name)' in reference(
        local["alert_bodies"]
    )
    dashboard = resource("google_monitoring_dashboard", "this")
    assert '"$${_FUNCTION}", var.function_name)' in reference(dashboard["dashboard_json"])
    for metric in (MONITORING / "metrics").glob("*.yaml"):
        assert "${_" not in metric.read_text(encoding="utf-8"), "metrics are read without substitution"


def test_alerts_notify_the_configured_channels() -> None:
    policy = resource("google_monitoring_alert_policy", "this")
    assert reference(policy["notification_channels"]) == "var.notification_channels"
    assert default("notification_channels") == []
