"""Helpers shared by the repository modules: table names, transactions, checked text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum, StrEnum
from typing import Any, TypeVar

from psycopg2 import sql

from automl_core.errors import UserInputError
from automl_core.store.migrations import SCHEMA


def _t(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


@contextmanager
def read_cursor(conn: Any) -> Iterator[Any]:
    """A cursor for reads that leaves the connection's transaction state as it found it.

    If no transaction was open, the one these reads open is ended (rolled back: nothing
    was written), so no snapshot or lock lingers (a worker holding its connection for
    hours would otherwise make a re-run of ``prepare`` wait). A transaction the caller
    already had open is left as it was. A write made through it would be rolled back.
    """
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    owns = not conn.autocommit and conn.info.transaction_status == TRANSACTION_STATUS_IDLE
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        if owns:
            conn.rollback()


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


_S = TypeVar("_S", bound=StrEnum)


class TransitionError(ValueError):
    """A status change that its transition table does not allow; nothing was written."""


def _sources(target: _S, transitions: Mapping[_S, frozenset[_S]]) -> tuple[str, ...]:
    """The states that may move to ``target``, sorted, for ``status IN %s``."""
    return tuple(sorted(s.value for s, to in transitions.items() if target in to))


def _check_transitions(
    current: Iterable[tuple[Any, str]],
    target: _S,
    transitions: Mapping[_S, frozenset[_S]],
    what: str,
) -> None:
    """Raise TransitionError naming every ``(key, status)`` that may not move to ``target``."""
    state = type(target)
    bad = [(key, status) for key, status in current if target not in transitions[state(status)]]
    if bad:
        listed = ", ".join(f"{what} {key} ({status})" for key, status in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise TransitionError(
            f"{listed}{more} cannot become {target.value!r}: only a {what} that is one of "
            f"{list(_sources(target, transitions))} can."
        )


def _normalised_json(value: Any, what: str) -> Any:
    """``value`` as it will read back from jsonb (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserInputError(
            f"{what} cannot be stored as JSON: {exc}. Use plain "
            f"numbers, strings, booleans, lists and mappings."
        ) from None
