#!/usr/bin/env bash
# The prepared GPU check: run on a lent GPU machine (no network there) from the repo root,
# with the wheels the device lacks carried in .whl/ (see benchmarks/RESULTS.md). It runs
# the MOP efficiency benchmark and the hop benchmark on the GPU, in under 5 minutes.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" AUTOML_HOME=/tmp/automl_home TMPDIR=/tmp/automl_tmp \
  PYTHONUNBUFFERED=1
mkdir -p "$TMPDIR"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 benchmarks/bench_mop.py --embedded --models 8 --epochs 2 --rows 40000 --features 256 \
  --repeats 2 --json "${OUT:-/tmp}/bench_mop_gpu.json"
python3 benchmarks/bench_hop.py --repeats 5
