#!/usr/bin/env bash
# Start Airflow (api-server, scheduler, dag-processor, triggerer) for this repository on
# http://127.0.0.1:${AIRFLOW__API__PORT:-8080}, with the training pool created.
# Log in as "admin" with the password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated.
# Stop it with Ctrl-C (standalone then stops its components).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/airflow_env.sh"
automl_airflow_setup

export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW__API__PORT}/execution/"
exec airflow standalone
