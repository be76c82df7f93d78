"""Helpers shared by the repository modules: table names, transactions, checked text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

from psycopg2 import sql

from automl_core.errors import UserInputError
from automl_core.store.migrations import SCHEMA


def _t(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


@contextmanager
def _tx(conn: Any) -> Iterator[Any]:
    """A cursor inside one transaction that commits on success and rolls back on error."""
    with conn, conn.cursor() as cur:
        yield cur


def _text(value: Any) -> str:
    """A status or kind as text: str Enums are stored by value."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _checked(value: Any, allowed: tuple[str, ...], what: str) -> str:
    text = _text(value)
    if text not in allowed:
        raise ValueError(f"The value of {what} is {text!r}, but must be one of {allowed}.")
    return text


def _normalised_json(value: Any, what: str) -> Any:
    """``value`` as it will read back from jsonb (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserInputError(
            f"{what} cannot be stored as JSON: {exc}. Use plain "
            f"numbers, strings, booleans, lists and mappings."
        ) from None
