# The database (an empty project has none) and the two field settings the executor relies on.

resource "google_firestore_database" "runs" {
  count = var.create_firestore_database ? 1 : 0

  name                    = var.firestore_database
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.this]
}

# The sweeper's one query: flow_runs where executor.wakeAt <= now order by executor.wakeAt.
resource "google_firestore_field" "wake_at" {
  project    = var.project_id
  database   = var.firestore_database
  collection = "flow_runs"
  field      = "executor.wakeAt"

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION"
    }
  }

  depends_on = [google_firestore_database.runs]
}

# Nothing queries inside a run's steps: without this exemption a run reaches Firestore's 40,000
# index entries per document long before its 1 MiB (docs/reliability.md, "Run size").
resource "google_firestore_field" "steps_unindexed" {
  project    = var.project_id
  database   = var.firestore_database
  collection = "flow_runs"
  field      = "steps"

  index_config {}

  depends_on = [google_firestore_database.runs]
}

# firestore.rules (repository root): no client-SDK access to anything. The executor and the
# orchestrators use server credentials, which rules do not apply to; a leaked web API key or a
# signed-in Firebase user can then read or write nothing (tests/integration/test_firestore_rules.py).
resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file("${local.repo_root}/firestore.rules")
    }
  }

  depends_on = [google_project_service.this, google_firestore_database.runs]
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = var.firestore_database == "(default)" ? "cloud.firestore" : "cloud.firestore/${var.firestore_database}"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}
