"""Batches: the groups of the methods that train every trial once, for ``epochs``.

Trial ids are fixed by position: batch ``b`` holds ids ``b * batch_size`` up to the
total, so batches can be proposed in any order, concurrently, and again after a crash.
"""

from __future__ import annotations

import math

from automl_core.search.groups import PlanGroup, RungStep


def batch_ids(batch: int, batch_size: int, total: int) -> range:
    """The trial ids of ``batch`` among ``total`` trials in batches of ``batch_size``."""
    start = batch * batch_size
    return range(start, min(start + batch_size, total))


def batch_groups(
    total: int, batch_size: int, epochs: int, *, sequential: bool = False
) -> tuple[PlanGroup, ...]:
    """``ceil(total / batch_size)`` batches of one rung each; with ``sequential`` each
    waits for the one before it."""
    count = math.ceil(total / batch_size)
    return tuple(
        PlanGroup(
            "batch",
            b,
            (RungStep(0, len(batch_ids(b, batch_size, total)), epochs),),
            after=b - 1 if sequential and b > 0 else None,
        )
        for b in range(count)
    )
