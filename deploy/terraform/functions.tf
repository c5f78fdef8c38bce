# The two gen2 functions, built from the same archive with the same runtime identity and settings.
#
# Capacity: every instance has at most max_parallel_steps model calls in flight (the model gate is
# per instance, whatever the request concurrency), so the whole deploy has at most
#   (max_instance_count + sweeper_max_instance_count) x max_parallel_steps
# requests in flight; keep that at or below what the model quota sustains (model_concurrency_quota;
# docs/runbook.md, "Raising quota"). The precondition below refuses a plan that breaks it.

locals {
  build = {
    runtime           = "python311"
    docker_repository = google_artifact_registry_repository.functions.id
    service_account   = google_service_account.build.id
    bucket            = google_storage_bucket.source.name
    object            = google_storage_bucket_object.function_source.name
  }
}

resource "google_cloudfunctions2_function" "events" {
  name        = var.function_name
  location    = var.region
  description = "LLM_REPORT steps of flow_runs/{runId}, on every write (Eventarc, retried)."

  build_config {
    runtime           = local.build.runtime
    entry_point       = "handle_flow_run_event"
    docker_repository = local.build.docker_repository
    service_account   = local.build.service_account
    source {
      storage_source {
        bucket = local.build.bucket
        object = local.build.object
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.runtime.email
    timeout_seconds                  = var.function_timeout_seconds
    available_cpu                    = var.available_cpu
    available_memory                 = var.available_memory
    max_instance_count               = var.max_instance_count
    min_instance_count               = 0
    max_instance_request_concurrency = var.max_instance_request_concurrency
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true

    # THREADS: functions-framework's gunicorn threads; one per concurrent request, so that the
    # instance really handles max_instance_request_concurrency events at once (one process, so the
    # duplicate detection and the model gate see all of them).
    environment_variables = merge(local.executor_env, {
      THREADS = tostring(var.max_instance_request_concurrency)
    })

    secret_environment_variables {
      key        = "GEMINI_API_KEY"
      project_id = var.project_id
      secret     = google_secret_manager_secret.gemini_api_key.secret_id
      version    = var.gemini_api_key_version
    }

    dynamic "secret_environment_variables" {
      for_each = var.provider_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  event_trigger {
    trigger_region        = var.firestore_location # the database's location
    event_type            = "google.cloud.firestore.document.v1.written"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email

    event_filters {
      attribute = "database"
      value     = var.firestore_database
    }

    event_filters {
      attribute = "document"
      value     = "flow_runs/{runId}"
      operator  = "match-path-pattern"
    }
  }

  lifecycle {
    precondition {
      condition     = var.function_timeout_seconds < var.lease_seconds
      error_message = "function_timeout_seconds must stay below lease_seconds: a lease must not expire under a worker that is still allowed to run."
    }
    precondition {
      condition     = tonumber(var.available_cpu) >= 1 || var.max_instance_request_concurrency == 1
      error_message = "max_instance_request_concurrency > 1 needs available_cpu >= 1 (gen2)."
    }
    precondition {
      condition     = local.model_calls_ceiling <= var.model_concurrency_quota
      error_message = "(max_instance_count + sweeper_max_instance_count) x max_parallel_steps is above model_concurrency_quota: more parallelism than the quota only produces 429s."
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_storage_bucket_iam_member.build_reads_source,
    google_artifact_registry_repository_iam_member.build_pushes_images,
    google_secret_manager_secret_iam_member.runtime_gemini_key,
    google_secret_manager_secret_iam_member.runtime_provider_keys,
    google_project_iam_member.trigger_event_receiver,
    google_firestore_database.runs,
  ]
}

resource "google_cloudfunctions2_function" "sweeper" {
  name        = local.sweeper_name
  location    = var.region
  description = "Re-drives due retries and expired leases (executor.wakeAt); called by Cloud Scheduler."

  build_config {
    runtime           = local.build.runtime
    entry_point       = "sweep_flow_runs"
    docker_repository = local.build.docker_repository
    service_account   = local.build.service_account
    source {
      storage_source {
        bucket = local.build.bucket
        object = local.build.object
      }
    }
  }

  service_config {
    service_account_email = google_service_account.runtime.email
    timeout_seconds       = var.function_timeout_seconds
    available_cpu         = var.available_cpu
    available_memory      = var.available_memory
    max_instance_count    = var.sweeper_max_instance_count
    min_instance_count    = 0
    # One sweep per instance: a sweep already works on max_parallel_steps runs at once.
    max_instance_request_concurrency = 1
    ingress_settings                 = var.sweeper_ingress
    all_traffic_on_latest_revision   = true

    environment_variables = merge(local.executor_env, {
      THREADS = "1"
    })

    secret_environment_variables {
      key        = "GEMINI_API_KEY"
      project_id = var.project_id
      secret     = google_secret_manager_secret.gemini_api_key.secret_id
      version    = var.gemini_api_key_version
    }

    dynamic "secret_environment_variables" {
      for_each = var.provider_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_storage_bucket_iam_member.build_reads_source,
    google_artifact_registry_repository_iam_member.build_pushes_images,
    google_secret_manager_secret_iam_member.runtime_gemini_key,
    google_secret_manager_secret_iam_member.runtime_provider_keys,
    google_firestore_database.runs,
  ]
}
