# Terraform 1.11+ (import blocks with expressions, cross-variable validation); the google provider
# 6.x/7.x (cloudfunctions2 available_cpu, event_filters operator, firestore_field). State lives in a
# GCS bucket created once by hand (deploy/README.md): terraform init -backend-config=bucket=...
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.40.0, < 8.0.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.7.0, < 3.0.0"
    }
  }

  backend "gcs" {
    prefix = "worker-llm-client"
  }
}

provider "google" {
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
  default_labels        = var.labels
}
