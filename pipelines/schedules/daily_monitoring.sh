#!/usr/bin/env bash
# The daily monitoring report: score the newest incoming transactions with the champion, check
# drift, performance (labels that arrived) and bias, write reports/monitoring/daily-<date>/,
# log to MLflow, post one alert per breach to monitor.webhook_url ($WEBHOOK overrides it).
# Exit 1 on a breach so schedulers alert.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
day="$(date -u +%F)"
exec inferloop monitor --incoming "${INCOMING:-data/incoming/*.parquet}" --batch "daily-${day}" --fail-on-breach \
  ${WEBHOOK:+--webhook "$WEBHOOK"}
