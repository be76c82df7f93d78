"""Make sure a table is packed, loading it first if asked (the data step of a DAG).

Composes ``read_source``, ``load_source``, ``dataset_info`` and ``prepare_dataset``; it
decides only what is already done.

Idempotent: a table that is already packed into the requested number of partitions, and
has not changed since (``source_change``), is left alone. That matters beyond speed:
several DAGs share one table, and re-packing it while another search is training on it
would change its partitions under that search (``prepare_dataset`` refuses that). A table
replaced (``automl data load --replace``) or grown (a nightly search's table) since it
was packed is packed again, so that a search never trains on rows that are gone.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def ensure_prepared(
    table: str,
    *,
    partitions: int,
    load_if_missing: str | None = None,
    db_url: str | None = None,
) -> dict[str, Any]:
    """Load (if missing and asked) and pack ``table``; returns what was done.

    Raises ``UserInputError`` when the table is missing and no data set was named, or
    for anything ``prepare_dataset`` refuses (all before writing).
    """
    from automl_core.data.prepare import prepare_dataset
    from automl_core.data.reader import dataset_info
    from automl_core.data.tables import find_table
    from automl_core.data.validate import packed_table_name
    from automl_core.errors import UserInputError
    from automl_core.store.connection import connect, database_url
    from automl_core.store.migrations import migrate

    packed_table_name(table)  # its packed table must fit too: checked before loading
    conn = connect(db_url or database_url())
    try:
        migrate(conn)
        loaded = False
        if find_table(conn, table) is None:
            if not load_if_missing:
                raise UserInputError(
                    f"The table {table!r} does not exist: load it (`automl data load SOURCE "
                    f"--table {table}`) or set load_if_missing (e.g. digits)."
                )
            from automl_core.data.load import load_source
            from automl_core.data.sources import read_source

            result = load_source(conn, read_source(load_if_missing), table)
            log.info("loaded %s into %s: %s rows", load_if_missing, table, result.n_rows)
            loaded = True
        if not loaded:
            try:
                info = dataset_info(conn, table)
            except UserInputError:
                info = None
            change = None if info is None else source_change(conn, info)
            if info is not None and info.partitions == partitions and change is None:
                log.info("%s is already packed into %d partitions", table, partitions)
                return _summary(info, loaded=False, packed=False)
            if change is not None:
                log.info("%s %s: packing it again", table, change)
        info = prepare_dataset(conn, table, partitions=partitions)
        return _summary(info, loaded=loaded, packed=True)
    finally:
        conn.close()


def source_change(conn: Any, info: Any) -> str | None:
    """How the source table of data set ``info`` (a ``DatasetInfo``) changed since it was
    packed ("was replaced since it was packed", "has 120 rows more than when it was
    packed"), or that it was packed before its state was recorded (schema 9): it may have
    changed; None when unchanged (or gone). Counts the table's rows (one scan)."""
    from automl_core.data.tables import source_state

    before = info.source_state
    now = source_state(conn, info.source_table or info.name)
    conn.rollback()  # end the count's transaction
    if now is None or now == before:
        return None
    if before is None:
        return "was packed before automl recorded its source's state (it may have changed)"
    if now["oid"] != before["oid"]:
        return "was replaced since it was packed"
    more = now["rows"] - before["rows"]
    return f"has {abs(more)} rows {'more' if more > 0 else 'fewer'} than when it was packed"


def _summary(info: Any, *, loaded: bool, packed: bool) -> dict[str, Any]:
    return {
        "table": info.name,
        "partitions": info.partitions,
        "n_train": info.n_train,
        "n_valid": info.n_valid,
        "loaded": loaded,
        "packed": packed,
    }
