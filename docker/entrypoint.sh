#!/usr/bin/env bash
# Entry point of every container of the image: check the settings that every role needs,
# then run the role's command (airflow ..., dask ..., automl ...).
set -euo pipefail

# Tasks and Dask workers write scratch files (dask-scratch-space, torch caches) here.
mkdir -p "${TMPDIR:-/tmp}" "${AUTOML_HOME:-/var/lib/automl}"

case "${1:-}" in
  airflow)
    # Airflow 3 components authenticate to each other with this secret; a missing or
    # differing one shows up later as 403s on task start, so fail now instead.
    : "${AIRFLOW__API_AUTH__JWT_SECRET:?set AIRFLOW__API_AUTH__JWT_SECRET (see docker/.env.example)}"
    ;;
esac

exec "$@"
