# deploy/monitoring/ applied as code: the bodies are read as they are (the API's JSON/YAML, checked
# by tests/unit/test_monitoring_bodies.py) and mapped field by field; ${_FUNCTION} is replaced by
# the function name. tests/unit/test_terraform.py fails when a body uses a field not mapped here.

locals {
  metric_bodies = {
    for file in fileset("${local.monitoring_dir}/metrics", "*.yaml") :
    trimsuffix(file, ".yaml") => yamldecode(file("${local.monitoring_dir}/metrics/${file}"))
  }
  alert_bodies = {
    for file in fileset("${local.monitoring_dir}/alerts", "*.yaml") :
    trimsuffix(file, ".yaml") => yamldecode(replace(file("${local.monitoring_dir}/alerts/${file}"), "$${_FUNCTION}", var.function_name))
  }
  dashboard_files = fileset("${local.monitoring_dir}/dashboards", "*.json")
}

resource "google_logging_metric" "this" {
  for_each = local.metric_bodies

  name             = each.value.name
  description      = try(each.value.description, null)
  filter           = each.value.filter
  label_extractors = try(each.value.labelExtractors, null)
  value_extractor  = try(each.value.valueExtractor, null)

  metric_descriptor {
    metric_kind = each.value.metricDescriptor.metricKind
    value_type  = each.value.metricDescriptor.valueType
    unit        = try(each.value.metricDescriptor.unit, null)

    dynamic "labels" {
      for_each = try(each.value.metricDescriptor.labels, [])
      content {
        key         = labels.value.key
        value_type  = try(labels.value.valueType, "STRING")
        description = try(labels.value.description, null)
      }
    }
  }

  dynamic "bucket_options" {
    for_each = can(each.value.bucketOptions) ? [each.value.bucketOptions] : []
    content {
      dynamic "exponential_buckets" {
        for_each = can(bucket_options.value.exponentialBuckets) ? [bucket_options.value.exponentialBuckets] : []
        content {
          num_finite_buckets = exponential_buckets.value.numFiniteBuckets
          growth_factor      = exponential_buckets.value.growthFactor
          scale              = exponential_buckets.value.scale
        }
      }
      dynamic "explicit_buckets" {
        for_each = can(bucket_options.value.explicitBuckets) ? [bucket_options.value.explicitBuckets] : []
        content {
          bounds = explicit_buckets.value.bounds
        }
      }
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_dashboard" "this" {
  for_each = local.dashboard_files

  dashboard_json = replace(file("${local.monitoring_dir}/dashboards/${each.value}"), "$${_FUNCTION}", var.function_name)

  depends_on = [google_logging_metric.this]
}

resource "google_monitoring_alert_policy" "this" {
  for_each = local.alert_bodies

  display_name          = each.value.displayName
  combiner              = each.value.combiner
  severity              = try(each.value.severity, null)
  notification_channels = var.notification_channels

  documentation {
    content   = each.value.documentation.content
    mime_type = try(each.value.documentation.mimeType, "text/markdown")
  }

  dynamic "alert_strategy" {
    for_each = can(each.value.alertStrategy) ? [each.value.alertStrategy] : []
    content {
      auto_close = try(alert_strategy.value.autoClose, null)
    }
  }

  dynamic "conditions" {
    for_each = each.value.conditions
    content {
      display_name = conditions.value.displayName

      dynamic "condition_threshold" {
        for_each = can(conditions.value.conditionThreshold) ? [conditions.value.conditionThreshold] : []
        content {
          filter             = condition_threshold.value.filter
          comparison         = condition_threshold.value.comparison
          threshold_value    = try(condition_threshold.value.thresholdValue, null)
          duration           = condition_threshold.value.duration
          denominator_filter = try(condition_threshold.value.denominatorFilter, null)

          dynamic "aggregations" {
            for_each = try(condition_threshold.value.aggregations, [])
            content {
              alignment_period     = try(aggregations.value.alignmentPeriod, null)
              per_series_aligner   = try(aggregations.value.perSeriesAligner, null)
              cross_series_reducer = try(aggregations.value.crossSeriesReducer, null)
              group_by_fields      = try(aggregations.value.groupByFields, null)
            }
          }

          dynamic "denominator_aggregations" {
            for_each = try(condition_threshold.value.denominatorAggregations, [])
            content {
              alignment_period     = try(denominator_aggregations.value.alignmentPeriod, null)
              per_series_aligner   = try(denominator_aggregations.value.perSeriesAligner, null)
              cross_series_reducer = try(denominator_aggregations.value.crossSeriesReducer, null)
              group_by_fields      = try(denominator_aggregations.value.groupByFields, null)
            }
          }

          dynamic "trigger" {
            for_each = can(condition_threshold.value.trigger) ? [condition_threshold.value.trigger] : []
            content {
              count   = try(trigger.value.count, null)
              percent = try(trigger.value.percent, null)
            }
          }
        }
      }

      dynamic "condition_absent" {
        for_each = can(conditions.value.conditionAbsent) ? [conditions.value.conditionAbsent] : []
        content {
          filter   = condition_absent.value.filter
          duration = condition_absent.value.duration

          dynamic "aggregations" {
            for_each = try(condition_absent.value.aggregations, [])
            content {
              alignment_period     = try(aggregations.value.alignmentPeriod, null)
              per_series_aligner   = try(aggregations.value.perSeriesAligner, null)
              cross_series_reducer = try(aggregations.value.crossSeriesReducer, null)
              group_by_fields      = try(aggregations.value.groupByFields, null)
            }
          }

          dynamic "trigger" {
            for_each = can(condition_absent.value.trigger) ? [condition_absent.value.trigger] : []
            content {
              count   = try(trigger.value.count, null)
              percent = try(trigger.value.percent, null)
            }
          }
        }
      }

      dynamic "condition_prometheus_query_language" {
        for_each = can(conditions.value.conditionPrometheusQueryLanguage) ? [conditions.value.conditionPrometheusQueryLanguage] : []
        content {
          query               = condition_prometheus_query_language.value.query
          duration            = try(condition_prometheus_query_language.value.duration, null)
          evaluation_interval = try(condition_prometheus_query_language.value.evaluationInterval, null)
        }
      }
    }
  }

  depends_on = [google_logging_metric.this]
}
