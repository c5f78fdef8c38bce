# The artifacts bucket (reports and kept replies) and the bucket the function source is uploaded to.

resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Access logs would be a second bucket of logs per object read; Cloud Audit Logs (Data Access for GCS) are the place to turn on object-level auditing if it is needed.
  #checkov:skip=CKV_GCP_78:Versioning adds nothing: every object is written once with ifGenerationMatch=0 and never overwritten; deletion is only the lifecycle rules below.
  name                        = local.artifacts_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Reports: kept report_retention_days (a replay after that calls the model again).
  lifecycle_rule {
    condition {
      age = var.report_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Rejected replies (…attempt-N.invalid.json): evidence for a FAILED step, kept a few days.
  lifecycle_rule {
    condition {
      age            = var.invalid_reply_retention_days
      matches_suffix = [".invalid.json"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the function's source archives, written by the deploy and read by the build; audit logs cover it.
  #checkov:skip=CKV_GCP_78:Objects are named by their content hash and never overwritten; versioning would only keep identical copies.
  name                        = local.source_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  # Old archives are never read again once their build is done.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

# The upload: an explicit include list (locals.source_patterns), one zip, named by its hash so that
# a code change is a new object and a new build, and no change is no build.
data "archive_file" "function_source" {
  type        = "zip"
  output_path = "${path.module}/build/function-source.zip"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket_object" "function_source" {
  name         = "function-source/${data.archive_file.function_source.output_sha256}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.function_source.output_path
  content_type = "application/zip"
}

# The functions' images, in a repository the build service account may write to and nothing else.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption is the project's standard; the images contain only the public dependencies and this repository's code, no data.
  location      = var.region
  repository_id = "${var.function_name}-images"
  description   = "Images of the ${var.function_name} functions (gen2 builds)."
  format        = "DOCKER"

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.this]
}
