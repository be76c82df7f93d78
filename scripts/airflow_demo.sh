#!/usr/bin/env bash
# Run an example DAG once, in this process, with `airflow dags test` (no scheduler, no
# web server): the Hyperband search on the digits data by default.
#
#   scripts/airflow_demo.sh                                   # automl_hyperband_digits
#   scripts/airflow_demo.sh automl_hyperopt_digits '{"epochs": 2}'
#
# With AUTOML_DB_URL unset, the data and results go to the embedded PostgreSQL server in
# the project home (.automl/); the HTML report lands in .automl/reports/<experiment>/.
set -euo pipefail

dag_id="${1:-automl_hyperband_digits}"
experiment="demo-$(date -u +%Y%m%dT%H%M%S)"
default_conf="{\"seed\": 0, \"experiment_name\": \"${experiment}\"}"
conf="${2:-${default_conf}}"

source "$(dirname "${BASH_SOURCE[0]}")/airflow_env.sh"
automl_airflow_setup

echo "Running ${dag_id} with conf ${conf} (AIRFLOW_HOME=${AIRFLOW_HOME})"
airflow dags test "${dag_id}" --conf "${conf}"
if [ "${conf}" = "${default_conf}" ]; then
  echo
  automl leaderboard "${experiment}" --limit 10
  echo "experiment: ${experiment}"
fi
echo "Reports: ${AUTOML_HOME:-$(dirname "${AIRFLOW__CORE__DAGS_FOLDER}")/.automl}/reports/"
