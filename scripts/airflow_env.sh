#!/usr/bin/env bash
# Source this file to point the `airflow` command at this repository:
#   source scripts/airflow_env.sh
# AIRFLOW_HOME stays inside the project (airflow_home/, git-ignored) unless already set,
# so nothing appears in ~/airflow. Settings suit a small machine: two task slots.

_automl_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

export AIRFLOW_HOME="${AIRFLOW_HOME:-${_automl_repo}/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="${_automl_repo}/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="${_automl_repo}/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-2}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export PATH="${_automl_repo}/.venv/bin:${PATH}"

# Slots of the automl_training pool: each search's engine task takes one (training and
# promotion tasks are deferred to the triggerer and take none; see docs/airflow.md).
export AUTOML_TRAINING_SLOTS="${AUTOML_TRAINING_SLOTS:-1}"

automl_airflow_setup() {
  # Create or upgrade the metadata database and the training pool (both idempotent).
  mkdir -p "${AIRFLOW_HOME}"
  airflow db migrate >"${AIRFLOW_HOME}/db-migrate.log" 2>&1 \
    || { cat "${AIRFLOW_HOME}/db-migrate.log" >&2; return 1; }
  # The pool name is a spec's `pool` default; a spec that names another needs it too.
  airflow pools set automl_training "${AUTOML_TRAINING_SLOTS}" \
    "AutoML training engines (each search's engine task holds one slot while it trains)" \
    >/dev/null
}

unset _automl_repo
