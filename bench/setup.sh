#!/usr/bin/env bash
# Installs what the benchmarks need, once: plotting/profiling into .venv, and the two tools dagsync is
# compared with, each in its own venv under .bench-cache/ (git-ignored). Pinned; re-run when a pin changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
AWSCLI_PIN="awscli==1.46.2"
AIRFLOW_PINS="apache-airflow==3.3.2 apache-airflow-providers-amazon==9.39.0"
quiet() { grep -v '^WARNING: Location' || true; }

mkdir -p .bench-cache
stamp=.bench-cache/.setup-$(cat bench/requirements.txt bench/setup.sh | sha256sum | cut -c1-12)
[ -f "$stamp" ] && exit 0

.venv/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt 2>&1 | quiet
if ! .bench-cache/awscli/bin/python -c "import awscli" 2>/dev/null; then
  echo "bench: installing $AWSCLI_PIN into .bench-cache/awscli"
  "$PYTHON" -m venv .bench-cache/awscli
  .bench-cache/awscli/bin/pip install --quiet --disable-pip-version-check "$AWSCLI_PIN" 2>&1 | quiet
fi
if ! .bench-cache/airflow/bin/python -c "import airflow.providers.amazon.aws.bundles.s3" 2>/dev/null; then
  echo "bench: installing $AIRFLOW_PINS into .bench-cache/airflow (about 20 s, 290 MB)"
  "$PYTHON" -m venv .bench-cache/airflow
  # shellcheck disable=SC2086
  .bench-cache/airflow/bin/pip install --quiet --disable-pip-version-check $AIRFLOW_PINS 2>&1 | quiet
fi
rm -f .bench-cache/.setup-*
touch "$stamp"
