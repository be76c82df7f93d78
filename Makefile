# The two commands a newcomer needs: `make demo` (set up, then run the Hyperband example
# DAG on the embedded database and print its leaderboard) and `make test` (every tier).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Dask's scratch space and torch's caches stay inside the project folder.
export TMPDIR := $(CURDIR)/.automl/tmp

.PHONY: setup setup-browser test test-unit demo lint bench bench-small

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@mkdir -p $(TMPDIR)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -c constraints.txt -e '.[airflow,dev]'
	@touch $@

# The UI test drives Debian's Chromium (never a downloaded browser).
setup-browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for tests/e2e"; exit 1; fi; }

test: setup setup-browser
	@mkdir -p $(TMPDIR)
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m unit -q

demo: setup
	@mkdir -p $(TMPDIR)
	scripts/airflow_demo.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy automl_core plugins/automl_airflow dags
	# The pure core (search methods, the hopper, spaces) is held to strict typing.
	$(VENV)/bin/mypy --strict automl_core/search automl_core/mop automl_core/space

bench: setup
	$(PY) benchmarks/bench_scheduler_scale.py
	$(PY) benchmarks/bench_hop.py
	$(PY) benchmarks/bench_mop.py
	$(PY) benchmarks/bench_data.py

# Many small models (Hyperband R=27 on the built-in signals) against the physical limit and
# the Optuna peer; needs the bench extra: $(PY) -m pip install -c constraints.txt optuna==5.0.0
# BENCH_SMALL_ARGS=--airflow also runs the search through airflow standalone + REST.
bench-small: setup
	@mkdir -p $(TMPDIR)
	$(PY) benchmarks/bench_small_models.py $(BENCH_SMALL_ARGS)
