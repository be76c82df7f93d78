"""Airflow adapter: hook, operators and the DAG factory. Thin: the logic is in automl_core."""
