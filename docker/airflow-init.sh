#!/usr/bin/env bash
# One-off setup of a deployment (the airflow-init service): migrate the metadata database
# and create the training pool. Idempotent: run it again after an upgrade.
set -euo pipefail

airflow db migrate

# Each training task takes one slot. Size the pool to the number of searches that may
# train at the same time: they share the Dask workers, so more slots than the cluster
# can keep busy only makes every search slower.
airflow pools set automl_training "${AUTOML_TRAINING_SLOTS:-1}" \
  "AutoML training tasks (each holds one slot while it drives the Dask workers)"

airflow pools list
