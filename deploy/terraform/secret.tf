# The Gemini API key. Its value never passes through Terraform (no state, no plan, no CI variable):
# the secret and its first version are created with gcloud before the first apply
# (deploy/README.md), this import block adopts the secret, and the functions read the version
# pinned by var.gemini_api_key_version. Rotation: docs/runbook.md, "Rotating the Gemini API key".

import {
  to = google_secret_manager_secret.gemini_api_key
  id = "projects/${var.project_id}/secrets/${var.gemini_secret_id}"
}

resource "google_secret_manager_secret" "gemini_api_key" {
  secret_id = var.gemini_secret_id

  replication {
    auto {}
  }

  lifecycle {
    prevent_destroy = true # holds the only copy of the key's versions
  }

  depends_on = [google_project_service.this]
}
