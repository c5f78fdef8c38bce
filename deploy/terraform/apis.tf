# The APIs the executor uses. serviceusage and cloudresourcemanager are enabled by hand before the
# first plan (deploy/README.md): Terraform needs them to enable the rest.
locals {
  services = toset(concat([
    "artifactregistry.googleapis.com", # the functions' images (build_config.docker_repository)
    "cloudbuild.googleapis.com",       # gen2 builds
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtrace.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "firebaserules.googleapis.com", # firestore.rules (deploy/terraform/firestore.tf)
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com", # Eventarc's transport
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "generativelanguage.googleapis.com", # provider: gemini (when the key belongs to this project)
  ], local.vertex_allowlisted ? ["aiplatform.googleapis.com"] : []))
}

resource "google_project_service" "this" {
  for_each = local.services

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}
