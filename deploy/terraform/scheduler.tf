# Cloud Scheduler calls the sweeper every few minutes with an OIDC token for the sweeper's URL.
# Its attempt deadline outlasts the sweep's window (work window + finalize margin): the sweeper
# answers only when its work is done, and an attempt cut short is recorded as a failure.

resource "google_cloud_scheduler_job" "sweep" {
  name             = "sweep-flow-runs"
  region           = var.region
  description      = "Calls ${local.sweeper_name}: due retries, expired leases, READY steps whose event was lost."
  schedule         = var.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.sweep_attempt_deadline_seconds}s"

  retry_config {
    retry_count = 0 # the next sweep is the retry; sweeps that overlap are safe but pointless
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.sweeper.service_config[0].uri}?limit=${var.sweep_limit}"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.sweeper.service_config[0].uri
    }
  }

  lifecycle {
    precondition {
      condition     = var.sweep_attempt_deadline_seconds > local.sweep_window
      error_message = "sweep_attempt_deadline_seconds must be above the sweep window (work window + finalize margin)."
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes_sweeper]
}
