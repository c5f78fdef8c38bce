# Every input of the deploy. terraform.tfvars.example lists the ones a project must set; the rest
# have defaults that match the code's own (worker_llm_client/config.py).

# --- where ------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Project that runs the executor: Firestore, the functions, the bucket, the secret."
  type        = string
}

variable "region" {
  description = "Region of the two functions, the artifacts bucket, the Scheduler job and the image repository."
  type        = string
  default     = "us-central1"
}

variable "firestore_database" {
  description = "Firestore database id the runs live in (FIRESTORE_DATABASE)."
  type        = string
  default     = "(default)"
}

variable "firestore_location" {
  description = "Location of that database (nam5, eur3 or a region). The Eventarc trigger must be in the database's location."
  type        = string
  default     = "nam5"
}

variable "create_firestore_database" {
  description = "Create the Firestore database (an empty project has none). false when it exists already and is managed elsewhere."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = { app = "worker-llm-client" }
}

# --- names ------------------------------------------------------------------------------------------

variable "function_name" {
  description = "Name of the event function; the sweeper is \"<name>-sweeper\". Also the $${_FUNCTION} of deploy/monitoring/."
  type        = string
  default     = "worker-llm-client"
}

variable "artifacts_bucket_name" {
  description = "GCS bucket for reports and kept replies (ARTIFACTS_BUCKET). Empty: \"<project_id>-llm-artifacts\"."
  type        = string
  default     = ""
}

variable "gemini_secret_id" {
  description = "Secret Manager secret holding the Gemini API key (GEMINI_API_KEY). Created before the first apply (deploy/README.md) and adopted by the import block in secret.tf."
  type        = string
  default     = "gemini-api-key"
}

variable "provider_secrets" {
  description = "Keys of the other providers and of openai_compatible endpoints, by the env var that carries each (OPENAI_API_KEY, ANTHROPIC_API_KEY, or an endpoint's apiKeyEnv such as DEEPSEEK_API_KEY): the Secret Manager secret id, created with gcloud beforehand, and its pinned version. Only the providers of allowlisted profiles need one (`python -m worker_llm_client doctor`)."
  type = map(object({
    secret  = string
    version = string
  }))
  default = {}

  validation {
    condition     = alltrue([for name, s in var.provider_secrets : can(regex("^[A-Z][A-Z0-9_]*_API_KEY$", name)) && name != "GEMINI_API_KEY" && can(regex("^[1-9][0-9]*$", s.version))])
    error_message = "provider_secrets keys must be *_API_KEY variables other than GEMINI_API_KEY (gemini_secret_id carries that one), each with a pinned version number."
  }
}

variable "gemini_api_key_version" {
  description = "The pinned version of that secret the functions read (a number, never \"latest\": a new key is a reviewed change and a new revision)."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^[1-9][0-9]*$", var.gemini_api_key_version))
    error_message = "gemini_api_key_version must be a version number such as \"3\"; \"latest\" would change the key under running revisions without a deploy."
  }
}

# --- artifacts --------------------------------------------------------------------------------------

variable "report_retention_days" {
  description = "Days a report (and anything else in the artifacts bucket) is kept. A replay of a deleted report calls the model again."
  type        = number
  default     = 90

  validation {
    condition     = var.report_retention_days >= 1
    error_message = "report_retention_days must be at least 1."
  }
}

variable "invalid_reply_retention_days" {
  description = "Days the rejected model replies (*.invalid.json, named in a FAILED step's error) are kept."
  type        = number
  default     = 7

  validation {
    condition     = var.invalid_reply_retention_days >= 1 && var.invalid_reply_retention_days <= var.report_retention_days
    error_message = "invalid_reply_retention_days must be between 1 and report_retention_days."
  }
}

# --- the executor's settings (config.py) ------------------------------------------------------------

variable "function_timeout_seconds" {
  description = "Timeout of both functions, also passed as FUNCTION_TIMEOUT_SECONDS (the code's work window is computed from it). Must stay below lease_seconds."
  type        = number
  default     = 540

  validation {
    condition     = var.function_timeout_seconds >= 60 && var.function_timeout_seconds <= 540
    error_message = "function_timeout_seconds must be between 60 and 540 (the most a gen2 event-driven function may run)."
  }
}

variable "lease_seconds" {
  description = "LEASE_SECONDS: how long a claimed step is ours. Above function_timeout_seconds, so a lease never expires under a worker that may still run."
  type        = number
  default     = 600

  validation {
    condition     = var.lease_seconds > var.function_timeout_seconds
    error_message = "lease_seconds must be above function_timeout_seconds."
  }
}

variable "max_parallel_steps" {
  description = "MAX_PARALLEL_STEPS: steps one invocation executes at once, and each instance's cap on concurrent model calls."
  type        = number
  default     = 8
}

variable "log_level" {
  description = "LOG_LEVEL."
  type        = string
  default     = "INFO"
}

variable "config_cache_seconds" {
  description = "CONFIG_CACHE_SECONDS: how long an instance caches a current prompt/profile."
  type        = number
  default     = 30
}

variable "model_retry_budget_seconds" {
  description = "MODEL_RETRY_BUDGET_SECONDS: waiting allowed across one model call's in-invocation retries."
  type        = number
  default     = 120
}

variable "traces_exporter" {
  description = "OTEL_TRACES_EXPORTER: gcp_trace (Cloud Trace, needs roles/cloudtrace.agent), otlp, console or none."
  type        = string
  default     = "gcp_trace"

  validation {
    condition     = contains(["gcp_trace", "otlp", "console", "none"], var.traces_exporter)
    error_message = "traces_exporter must be gcp_trace, otlp, console or none."
  }
}

variable "vertex_location" {
  description = "GOOGLE_CLOUD_LOCATION: region of provider: vertex profiles."
  type        = string
  default     = "us-central1"
}

# --- capacity ---------------------------------------------------------------------------------------

variable "available_cpu" {
  description = "vCPUs per instance. At least 1: gen2 refuses max_instance_request_concurrency > 1 below one vCPU."
  type        = string
  default     = "1"
}

variable "available_memory" {
  description = "Memory per instance."
  type        = string
  default     = "1Gi"
}

variable "max_instance_request_concurrency" {
  description = "Events one instance of the event function takes at once (also THREADS, gunicorn's threads). Above 1 so copies of an event reach the instance that handles the first (duplicate detection) and queue behind its step slots and model gate."
  type        = number
  default     = 8

  validation {
    condition     = var.max_instance_request_concurrency >= 1 && var.max_instance_request_concurrency <= 1000
    error_message = "max_instance_request_concurrency must be between 1 and 1000."
  }
}

variable "max_instance_count" {
  description = "Most instances of the event function."
  type        = number
  default     = 10
}

variable "sweeper_max_instance_count" {
  description = "Most instances of the sweeper (overlapping sweeps are safe; more than a few is waste)."
  type        = number
  default     = 2
}

variable "model_concurrency_quota" {
  description = "Model requests in flight the quota sustains, about requests-per-minute quota x typical request seconds / 60. The deploy refuses (max_instance_count + sweeper_max_instance_count) x max_parallel_steps above it."
  type        = number
  default     = 100
}

# --- the sweeper's schedule -------------------------------------------------------------------------

variable "sweep_schedule" {
  description = "Cron schedule of the Scheduler job (the sweeper-not-running alert assumes every 2 minutes)."
  type        = string
  default     = "*/2 * * * *"
}

variable "sweep_limit" {
  description = "Due runs per sweep (?limit=, at most 1000)."
  type        = number
  default     = 200

  validation {
    condition     = var.sweep_limit >= 1 && var.sweep_limit <= 1000
    error_message = "sweep_limit must be between 1 and 1000."
  }
}

variable "sweep_attempt_deadline_seconds" {
  description = "Scheduler attempt deadline: above the sweep window (work window + finalize margin, at most the function timeout), at most 1800."
  type        = number
  default     = 600

  validation {
    condition     = var.sweep_attempt_deadline_seconds > var.function_timeout_seconds && var.sweep_attempt_deadline_seconds <= 1800
    error_message = "sweep_attempt_deadline_seconds must be above function_timeout_seconds and at most 1800."
  }
}

variable "sweeper_ingress" {
  description = "Ingress of the sweeper. ALLOW_INTERNAL_ONLY admits Cloud Scheduler (an internal source in the same project) and the VPC; run a sweep by hand with gcloud scheduler jobs run. ALLOW_ALL (still behind roles/run.invoker) only to curl it from outside."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.sweeper_ingress)
    error_message = "sweeper_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

# --- monitoring -------------------------------------------------------------------------------------

variable "notification_channels" {
  description = "Monitoring notification channel ids (projects/P/notificationChannels/N) every alert policy notifies."
  type        = list(string)
  default     = []
}
