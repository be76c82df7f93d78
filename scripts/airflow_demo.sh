#!/usr/bin/env bash
# Run an example DAG once with `airflow dags test` (no scheduler, no web server): the
# Hyperband search on the digits data by default. Airflow's log goes to a file; the
# terminal shows one line per bracket as it advances, then the leaderboard.
#
#   scripts/airflow_demo.sh                                   # automl_hyperband_digits
#   scripts/airflow_demo.sh automl_hyperopt_digits '{"epochs": 2}'
#
# With AUTOML_DB_URL unset, the data and results go to the embedded PostgreSQL server in
# the project home (.automl/); the HTML report lands in .automl/reports/<experiment>/.
set -euo pipefail

dag_id="${1:-automl_hyperband_digits}"
experiment="demo-$(date -u +%Y%m%dT%H%M%S)"
default_conf='{"seed": 0}'
conf="${2:-${default_conf}}"

source "$(dirname "${BASH_SOURCE[0]}")/airflow_env.sh"
automl_airflow_setup

# The run's experiment: the conf's experiment_name, or a new demo name added to the conf,
# so that the progress lines and the leaderboard below can follow it whatever the conf.
read -r experiment conf < <(python - "${conf}" "${experiment}" <<'PY'
import json, sys
conf = json.loads(sys.argv[1])
if not isinstance(conf, dict):
    sys.exit(f"the conf must be a JSON object, not {sys.argv[1]!r}")
if not conf.get("experiment_name"):  # absent, null or empty: the default name
    conf["experiment_name"] = sys.argv[2]
print(conf["experiment_name"], json.dumps(conf))
PY
) || true
[ -n "${experiment}" ] || { echo "conf ${2:-} is not a JSON object" >&2; exit 2; }

log="${AIRFLOW_HOME}/${experiment}.log"
echo "Running ${dag_id} with conf ${conf}"
echo "Airflow's full log: ${log}"
airflow dags test "${dag_id}" --conf "${conf}" >"${log}" 2>&1 &
run_pid=$!
# One line per bracket (or batch) whenever it advances; the training itself is in the log.
automl watch "${experiment}" --pid "${run_pid}" || true
if ! wait "${run_pid}"; then
  # automl's own error (a refused conf, a missing table) says what to fix: show it first.
  reason=$(grep -E '^(automl_core|automl_airflow)\.[a-z_.]+\.[A-Za-z]*Error: ' "${log}" \
    | tail -n 1 | sed -E 's/^[A-Za-z_.]+: //')
  if [ -n "${reason}" ]; then
    echo "The DAG run failed: ${reason}" >&2
    echo "Airflow's full log: ${log}" >&2
  else
    echo "The DAG run failed; the end of its log (${log}):" >&2
    tail -n 40 "${log}" >&2
  fi
  exit 1
fi
if ! grep -q "DagRun Finished.*state=success" "${log}"; then
  echo "The DAG run did not succeed; see ${log}" >&2
  grep -E "ERROR|Task failed" "${log}" | tail -n 20 >&2
  exit 1
fi
echo
automl leaderboard "${experiment}" --limit 10
echo "experiment: ${experiment}"
echo "Reports: ${AUTOML_HOME:-$(dirname "${AIRFLOW__CORE__DAGS_FOLDER}")/.automl}/reports/"
