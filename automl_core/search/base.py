"""What every sequential search shares: the ask/tell bookkeeping and trial ranking.

A search proposes configurations with ``ask()`` (``None``: nothing left to propose) and
learns results with ``tell(config_id, metric)``. Config ids are 0-based, in ask order.
The metric is validation accuracy unless a ``mode`` says otherwise; ``None`` or NaN
marks a failed trial, which ranks last. Searches never train, store or print anything:
the runner carries their decisions out.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from automl_core.errors import UserInputError

MODES = ("max", "min")


def check_mode(mode: str) -> str:
    """``mode`` itself if it is ``"max"`` or ``"min"``; else ``UserInputError``."""
    if mode not in MODES:
        raise UserInputError(f"The value of mode is {mode!r}, but must be 'max' or 'min'.")
    return mode


def is_missing(metric: float | None) -> bool:
    """True for a metric that cannot be ranked: ``None`` or NaN (a failed trial), NaN of
    any real type (a numpy ``float32`` NaN is not a Python ``float``)."""
    return metric is None or (isinstance(metric, numbers.Real) and math.isnan(metric))


def rank(results: Sequence[tuple[int, float | None]], mode: str = "max") -> list[int]:
    """Trial ids of ``results`` from best to worst.

    Better metric first (larger for ``"max"``, smaller for ``"min"``); ties go to the
    smaller trial id so the order never depends on input order; ``None``/NaN metrics
    rank last (among themselves by trial id). Raises ``ValueError`` for a repeated id
    and ``UserInputError`` for an unknown mode.
    """
    check_mode(mode)
    sign = -1.0 if mode == "max" else 1.0
    ids = [trial_id for trial_id, _ in results]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Trial ids must be unique, but got {sorted(ids)}.")

    def key(item: tuple[int, float | None]) -> tuple[bool, float, int]:
        trial_id, metric = item
        if is_missing(metric):
            return (True, 0.0, trial_id)
        return (False, sign * float(metric), trial_id)  # type: ignore[arg-type]

    return [trial_id for trial_id, _ in sorted(results, key=key)]


class Searcher(ABC):
    """Base of the sequential searches: records what was asked and told."""

    def __init__(self) -> None:
        self._configs: list[dict[str, Any]] = []
        self._metrics: dict[int, float | None] = {}

    @abstractmethod
    def _propose(self) -> dict[str, Any] | None:
        """The next configuration, or ``None`` when the search is exhausted."""

    def ask(self) -> dict[str, Any] | None:
        """The next configuration (its id is ``asked - 1`` afterwards), or ``None``."""
        config = self._propose()
        if config is None:
            return None
        self._configs.append(config)
        return dict(config)

    @property
    def asked(self) -> int:
        """How many configurations ``ask`` has returned."""
        return len(self._configs)

    def config(self, config_id: int) -> dict[str, Any]:
        """The configuration returned with id ``config_id``; ``KeyError`` if never asked."""
        if not 0 <= config_id < len(self._configs):
            raise KeyError(f"No configuration with id {config_id} was asked.")
        return dict(self._configs[config_id])

    def tell(self, config_id: int, metric: float | None) -> None:
        """Record the result of configuration ``config_id``; a later tell replaces it.

        ``None`` or NaN records a failed trial. Raises ``KeyError`` for an id never asked.
        """
        self.config(config_id)
        self._metrics[config_id] = None if is_missing(metric) else float(metric)  # type: ignore[arg-type]

    @property
    def results(self) -> dict[int, float | None]:
        """Told metrics by config id."""
        return dict(self._metrics)

    def best(self, mode: str = "max") -> tuple[int, float] | None:
        """``(config_id, metric)`` of the best told trial, or ``None`` if none succeeded."""
        ranked = rank(list(self._metrics.items()), mode)
        if not ranked or is_missing(self._metrics[ranked[0]]):
            return None
        metric = self._metrics[ranked[0]]
        assert metric is not None
        return ranked[0], metric
