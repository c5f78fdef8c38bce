locals {
  repo_root      = "${path.module}/../.."
  monitoring_dir = "${path.module}/../monitoring"

  sweeper_name     = "${var.function_name}-sweeper"
  artifacts_bucket = var.artifacts_bucket_name != "" ? var.artifacts_bucket_name : "${var.project_id}-llm-artifacts"
  source_bucket    = "${var.project_id}-llm-function-source"

  # governance.yaml is the one allowlist (README "Governance"); llm_profiles.yaml says which
  # allowlisted profiles call Vertex AI, the only reason the runtime gets roles/aiplatform.user.
  governance         = yamldecode(file("${local.repo_root}/governance.yaml"))
  profiles           = yamldecode(file("${local.repo_root}/llm_profiles.yaml"))
  allowed_profiles   = local.governance.allowedLlmProfiles
  allowed_models     = local.governance.allowedModels
  vertex_allowlisted = anytrue([for id in local.allowed_profiles : contains(["vertex", "anthropic_vertex"], try(local.profiles[id].provider, ""))])

  # bootstrap.work_window / finalize_margin: the sweep's whole window, which the Scheduler's
  # attempt deadline must outlast (the sweeper answers only when its window is over).
  window          = min(var.function_timeout_seconds, var.lease_seconds)
  finalize_margin = min(60, local.window / 4)
  work_window     = local.window - local.finalize_margin
  sweep_window    = local.work_window + local.finalize_margin

  # Capacity: every instance of either function may have max_parallel_steps model calls in flight.
  model_calls_ceiling = (var.max_instance_count + var.sweeper_max_instance_count) * var.max_parallel_steps

  # What config.py reads (docs/contract.md, "Environment"). GEMINI_API_KEY comes from Secret
  # Manager; GCLOUD_PROJECT, GEMINI_BASE_URL, OTEL_EXPORTER_OTLP_ENDPOINT stay unset on purpose and
  # K_SERVICE / K_REVISION are Cloud Run's (tests/unit/test_terraform.py checks the list).
  executor_env = {
    GOOGLE_CLOUD_PROJECT       = var.project_id
    FIRESTORE_DATABASE         = var.firestore_database
    ARTIFACTS_BUCKET           = local.artifacts_bucket
    ALLOWED_LLM_PROFILES       = join(",", local.allowed_profiles)
    ALLOWED_MODELS             = join(",", local.allowed_models)
    GOOGLE_CLOUD_LOCATION      = var.vertex_location
    LEASE_SECONDS              = tostring(var.lease_seconds)
    MAX_PARALLEL_STEPS         = tostring(var.max_parallel_steps)
    LOG_LEVEL                  = var.log_level
    CONFIG_CACHE_SECONDS       = tostring(var.config_cache_seconds)
    MODEL_RETRY_BUDGET_SECONDS = tostring(var.model_retry_budget_seconds)
    FUNCTION_TIMEOUT_SECONDS   = tostring(var.function_timeout_seconds)
    OTEL_TRACES_EXPORTER       = var.traces_exporter
  }

  # The deployed source: exactly what functions-framework needs on gen2 (main.py at the root, the
  # package beside it, requirements.txt for the buildpack to install). No pyproject.toml, so that
  # nothing installs the project from its version ranges or extras instead of the pinned lock; no
  # tests, benchmarks, docs, devstack, prompts or deploy/ (tests/unit/test_terraform.py lists the
  # upload).
  source_patterns = ["main.py", "requirements.txt", "worker_llm_client/**/*.py"]
  source_files    = sort(distinct(flatten([for pattern in local.source_patterns : tolist(fileset(local.repo_root, pattern))])))
}
