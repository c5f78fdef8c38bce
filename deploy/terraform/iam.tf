# One service account per identity, each with only what it needs. Every role granted here is in
# iam_roles.yaml with its reason; tests/unit/test_terraform.py keeps the two equal.

resource "google_service_account" "runtime" {
  account_id   = "wlc-runtime"
  display_name = "worker_llm_client functions (runtime)"
  description  = "Runs ${var.function_name} and ${local.sweeper_name}: Firestore runs and catalog, artifacts, the Gemini key."
  depends_on   = [google_project_service.this]
}

resource "google_service_account" "trigger" {
  account_id   = "wlc-trigger"
  display_name = "worker_llm_client Eventarc trigger"
  description  = "Identity Eventarc delivers flow_runs events to ${var.function_name} with."
  depends_on   = [google_project_service.this]
}

resource "google_service_account" "scheduler" {
  account_id   = "wlc-scheduler"
  display_name = "worker_llm_client sweeper schedule"
  description  = "OIDC identity of the Cloud Scheduler job that calls ${local.sweeper_name}."
  depends_on   = [google_project_service.this]
}

resource "google_service_account" "build" {
  account_id   = "wlc-build"
  display_name = "worker_llm_client function builds"
  description  = "Cloud Build identity that turns the source archive into the functions' images."
  depends_on   = [google_project_service.this]
}

# --- runtime ----------------------------------------------------------------------------------------

resource "google_project_iam_member" "runtime_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_project_iam_member" "runtime_trace" {
  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_project_iam_member" "runtime_metrics" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_project_iam_member" "runtime_vertex" {
  count = local.vertex_allowlisted ? 1 : 0

  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_storage_bucket_iam_member" "runtime_artifacts_create" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_storage_bucket_iam_member" "runtime_artifacts_read" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_secret_manager_secret_iam_member" "runtime_gemini_key" {
  secret_id = google_secret_manager_secret.gemini_api_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_secret_manager_secret_iam_member" "runtime_provider_keys" {
  for_each  = var.provider_secrets
  secret_id = "projects/${var.project_id}/secrets/${each.value.secret}"
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

# --- Eventarc trigger -------------------------------------------------------------------------------

resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invokes_events" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.events.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# --- Scheduler --------------------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_sweeper" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.sweeper.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- build ------------------------------------------------------------------------------------------

resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}
