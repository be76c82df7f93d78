#!/usr/bin/env bash
# One-off setup of a deployment (the airflow-init service): migrate the metadata database
# and create the training pool. Idempotent: run it again after an upgrade.
set -euo pipefail

airflow db migrate

# Each search's engine task takes one slot (training and promotion tasks are deferred to
# the triggerer and take none). Size the pool to the number of searches that may train at
# the same time: they share the Dask workers, so more slots than the cluster can keep
# busy only makes every search slower. `automl_training` is a spec's default `pool`.
airflow pools set automl_training "${AUTOML_TRAINING_SLOTS:-1}" \
  "AutoML training engines (each search's engine task holds one slot while it trains)"

airflow pools list
