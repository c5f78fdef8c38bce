output "event_function" {
  description = "The event function (its Cloud Run service has the same name)."
  value       = google_cloudfunctions2_function.events.name
}

output "sweeper_url" {
  description = "The sweeper's URL (the Scheduler job's OIDC audience)."
  value       = google_cloudfunctions2_function.sweeper.service_config[0].uri
}

output "artifacts_bucket" {
  description = "ARTIFACTS_BUCKET."
  value       = google_storage_bucket.artifacts.name
}

output "runtime_service_account" {
  description = "The functions' runtime identity."
  value       = google_service_account.runtime.email
}

output "trigger_service_account" {
  description = "The Eventarc trigger's identity (docs/runbook.md, Draining)."
  value       = google_service_account.trigger.email
}

output "source_files" {
  description = "What the function source archive holds."
  value       = local.source_files
}

output "model_calls_ceiling" {
  description = "(max_instance_count + sweeper_max_instance_count) x max_parallel_steps: model requests in flight at most."
  value       = local.model_calls_ceiling
}
