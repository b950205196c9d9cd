"""Resource names and environment variable names shared by the CDK stack, the local stack,
the Lambda, the CLI and the agent. Tests import these instead of repeating strings."""

from __future__ import annotations

# Environment variables (explicit argument > environment > default).
ENV_BUCKET = "DAGSYNC_BUCKET"
ENV_ENDPOINT_URL = "DAGSYNC_ENDPOINT_URL"
ENV_TOPIC_ARN = "DAGSYNC_TOPIC_ARN"
ENV_ALERT_TOPIC_ARN = "DAGSYNC_ALERT_TOPIC_ARN"
ENV_REGION = "AWS_REGION"
# The publisher's Airflow interpreter, for parsing DAG files with Airflow's DagBag (`--airflow-python`).
ENV_AIRFLOW_PYTHON = "DAGSYNC_AIRFLOW_PYTHON"
# The validator's release signing key (KMS id or ARN), and the other KMS keys whose roots it builds on (a rotation).
ENV_SIGNING_KEY = "DAGSYNC_SIGNING_KEY_ID"
ENV_TRUSTED_KEY_IDS = "DAGSYNC_TRUSTED_KEY_IDS"
# The agent's settings that a deployment (the CDK outputs, deploy/ examples) hands to every host.
ENV_QUEUE_URL = "DAGSYNC_QUEUE_URL"
ENV_HOST = "DAGSYNC_HOST"
ENV_DAGS_DIR = "DAGSYNC_DAGS_DIR"
ENV_RECONCILE_INTERVAL = "DAGSYNC_RECONCILE_INTERVAL"
ENV_TRUSTED_KEYS = "DAGSYNC_TRUSTED_KEYS"
DEFAULT_REGION = "us-east-1"

# Resource names. `prefix` is "dagsync" locally and "dagsync-<env>" in a deployed environment.
LOCAL_PREFIX = "dagsync"
LOCAL_BUCKET = "dagsync-artifacts"


# Deliveries before a message goes to its queue's dead-letter queue (CDK stack and local stack alike).
MAX_RECEIVE_COUNT = 5


def manifest_events_queue_name(prefix: str) -> str:
    return f"{prefix}-manifest-events"


def manifest_events_dlq_name(prefix: str) -> str:
    return f"{prefix}-manifest-events-dlq"


def changes_topic_name(prefix: str) -> str:
    return f"{prefix}-changes"


def alerts_topic_name(prefix: str) -> str:
    return f"{prefix}-alerts"


# Release signing keys (KMS, ECC_NIST_P256): named per environment; the first is "1", a rotation adds the next.
DEFAULT_SIGNING_KEY = "1"


def signing_key_alias(prefix: str, name: str) -> str:
    return f"alias/{prefix}-release-signing-{name}"


# Where the deployment examples and the CDK outputs put a signing key's public half on a host (DAGSYNC_TRUSTED_KEYS).
TRUSTED_KEYS_DIR = "/etc/dagsync/keys"


def trusted_key_path(name: str) -> str:
    return f"{TRUSTED_KEYS_DIR}/release-signing-{name}.pem"


def host_queue_name(prefix: str, host: str) -> str:
    return f"{prefix}-host-{host}"


def host_dlq_name(prefix: str, host: str) -> str:
    return f"{prefix}-host-{host}-dlq"


# The S3 notification that feeds the validator: object-created events on the manifest key only.
MANIFEST_EVENT_TYPES = ("s3:ObjectCreated:*",)

# The agent's reconcile interval, which a deployment (cdk.json) may also set per environment.
DEFAULT_RECONCILE_INTERVAL_S = 60.0

# Validator schedule (the safety net).
SCHEDULE_RATE_MINUTES = 1

# Metrics namespace for the Lambda (CloudWatch EMF).
METRICS_NAMESPACE = "DagSync"
SERVICE_NAME = "dagsync-validator"
