"""Test-wide hygiene: no real AWS credentials, profile or endpoint can leak into any test."""

from __future__ import annotations

import os

for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "DAGSYNC_ENDPOINT_URL", "DAGSYNC_BUCKET",
             "DAGSYNC_QUEUE_URL", "DAGSYNC_HOST", "DAGSYNC_DAGS_DIR", "DAGSYNC_TOPIC_ARN", "DAGSYNC_AIRFLOW_PYTHON"):
    os.environ.pop(_var, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
