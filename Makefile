# The two commands a newcomer needs: `make demo` (set up, then run the main job on the
# embedded database) and `make test` (every test tier). Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TMPDIR := $(CURDIR)/.automl/tmp

.PHONY: setup test test-unit demo lint bench clean-db

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@mkdir -p $(TMPDIR)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -c constraints.txt -e '.[airflow,dev]'
	@touch $@

test: setup
	@mkdir -p $(TMPDIR)
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m unit -q

demo: setup
	@mkdir -p $(TMPDIR)
	$(VENV)/bin/automl schedule hyperband --R 9 --eta 3
	$(VENV)/bin/automl space sample examples/spaces/digits.yaml --method random --n 3 --seed 0

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy automl_core plugins/automl_airflow

bench: setup
	$(PY) benchmarks/bench_scheduler_scale.py
