"""Model selection for deep nets on data in Greenplum/PostgreSQL.

The core never imports Airflow; torch is imported only in ``training`` and the
executors' worker code, so the search and scheduling logic stays cheap to import.
"""

__version__ = "0.1.0"
