"""The embedded PostgreSQL server the project uses when no ``AUTOML_DB_URL`` is set.

``server`` starts, finds and stops it; ``state`` knows its files, ``account`` the system
account it runs as (never root), ``start`` initdb and the first start. ``store`` reaches it
only through ``automl_core.store.connection``.
"""
