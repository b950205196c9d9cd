#!/usr/bin/env bash
# Publish a DAG project from any CI system (or a laptop) and fail with the validator's answer.
#
#   examples/ci/publish.sh PROJECT VERSION DAGS_DIR
#
# Needs DAGSYNC_BUCKET (and AWS credentials), or DAGSYNC_ENDPOINT_URL for the embedded stack:
#   eval "$(dagsync local up --json | jq -r '"export DAGSYNC_ENDPOINT_URL=\(.endpoint_url) DAGSYNC_BUCKET=\(.bucket)"')"
#
# Exit codes are dagsync's (docs/validation.md): 0 live on every host, 1 refused/failed, 3 rejected,
# 4 timed out (lagging hosts named), 5 superseded by a later publish.
set -euo pipefail

project=${1:?project}
version=${2:?version}
dags=${3:?dags folder}
timeout=${DAGSYNC_TIMEOUT:-300}

echo "== validate $dags (offline, the validator's rules)"
dagsync validate "$dags"

echo "== publish $project $version, promote, wait for the validator and every host"
set +e
dagsync publish "$project" "$version" "$dags" --promote --wait-hosts --timeout "$timeout"
code=$?
set -e

case $code in
  0) echo "== $project $version is live" ;;
  3) echo "== REJECTED: the reason is above; release.json is unchanged, hosts keep the last good state" >&2 ;;
  4) echo "== timed out; the lagging hosts are named above (dagsync diff shows more)" >&2 ;;
  5) echo "== superseded: another publish of $project won; publish again if yours should be live" >&2 ;;
  *) echo "== failed (exit $code)" >&2 ;;
esac
dagsync diff || true
exit $code
