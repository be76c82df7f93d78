"""Model selection for deep nets on data in Greenplum/PostgreSQL.

The core never imports Airflow; torch is imported only in ``training`` and the
executors' worker code, so the search and scheduling logic stays cheap to import.
"""

__version__ = "0.1.0"
PACKAGE = "automl-greenplum"  # the distribution name in pyproject.toml


def package_version() -> str:
    """The installed version of this package (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return __version__
