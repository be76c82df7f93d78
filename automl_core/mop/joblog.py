"""Checks of the MOP invariants on a job log (simulated, or read back from ``mop_jobs``).

A log row is ``(trial_id, epoch, partition, kind, worker, started_at, ended_at)``, one per
completed visit, optionally followed by ``attempt``: a ``JobRecord``, a plain tuple or a
database row all work. ``kind`` is a
``JobKind`` or its value (``"train"``/``"eval"``). Failed attempts and dropped jobs are not
visits: a log keeps only the attempt that counted (``mop_jobs`` is keyed by the visit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from automl_core.mop.types import JobKind, JobRecord, ModelAdded

__all__ = ["JobLogError", "check_job_log", "job_log_problems"]

_MAX_LISTED = 20
_KIND_RANK = {JobKind.TRAIN: 0, JobKind.EVAL: 1}


class JobLogError(AssertionError):
    """The job log breaks a MOP invariant; the message lists what is wrong."""


def _expected_epochs(models: Iterable[ModelAdded | Sequence[int]]) -> dict[int, set[int]]:
    """Model id -> the epochs it must train; a model added twice (promoted) gets the union."""
    expected: dict[int, set[int]] = defaultdict(set)
    for model in models:
        if isinstance(model, ModelAdded):
            m, start, target = model.model_id, model.start_epoch, model.target_epoch
        else:
            m, start, target = (int(v) for v in model)
        expected[m].update(range(start + 1, target + 1))
    return expected


def _shown(row: JobRecord) -> tuple[Any, ...]:
    """The visit as messages show it (without ``attempt``)."""
    return tuple(row)[:7]


def _overlaps(rows: list[JobRecord], what: str) -> list[str]:
    problems = []
    rows = sorted(rows, key=lambda r: (r.started_at, r.ended_at))
    for before, after in zip(rows, rows[1:], strict=False):
        if after.started_at < before.ended_at:
            problems.append(f"{what}: {_shown(before)} overlaps {_shown(after)}")
    return problems


TrainOrder = Callable[[int, int], Sequence[int]]


def job_log_problems(
    log: Iterable[Sequence[Any]],
    models: Iterable[ModelAdded | Sequence[int]],
    partitions: Iterable[int],
    evaluate: bool,
    train_order: TrainOrder | None = None,
) -> list[str]:
    """Every violation of the MOP invariants in ``log``, as sentences; empty when none.

    ``models`` are ``ModelAdded`` events or ``(model_id, start_epoch, target_epoch)``
    tuples. Checked: each model visits each partition exactly once per epoch and kind
    (no visit missing, repeated or unexpected); intervals are well formed; no two visits
    of one model and no two visits on one worker overlap in time; a model's visits run in
    order of (epoch, train before eval); with ``train_order(model, epoch)`` (the partition
    ids in order, e.g. ``visit_order.train_order`` with the run's seed), every TRAIN pass
    ran in that order. Raises ValueError for a row that is not 7 or 8 fields.
    """
    expected = _expected_epochs(models)
    part_set = set(partitions)
    kinds = [JobKind.TRAIN, JobKind.EVAL] if evaluate else [JobKind.TRAIN]
    problems: list[str] = []
    seen: set[tuple[int, int, int, JobKind]] = set()
    by_model: dict[int, list[JobRecord]] = defaultdict(list)
    by_worker: dict[str, list[JobRecord]] = defaultdict(list)

    for raw in log:
        if len(raw) not in (7, 8):
            raise ValueError(f"The log row {raw!r} has {len(raw)} fields, but must have 7 or 8.")
        row = JobRecord(*raw)
        kind = JobKind(row.kind)
        key = (int(row.trial_id), int(row.epoch), int(row.partition), kind)
        if key in seen:
            problems.append(f"visit repeated: {_shown(row)}")
        seen.add(key)
        if key[0] not in expected or key[1] not in expected[key[0]]:
            problems.append(f"unexpected model or epoch: {_shown(row)}")
        if key[2] not in part_set:
            problems.append(f"unknown partition: {_shown(row)}")
        if kind not in kinds:
            problems.append(f"evaluation although evaluate=False: {_shown(row)}")
        if not row.started_at <= row.ended_at:
            problems.append(f"ends before it starts: {_shown(row)}")
        by_model[key[0]].append(row)
        by_worker[str(row.worker)].append(row)

    for m in sorted(expected):
        for epoch in sorted(expected[m]):
            for kind in kinds:
                missing = [p for p in sorted(part_set) if (m, epoch, p, kind) not in seen]
                if missing:
                    problems.append(
                        f"model {m} epoch {epoch} {kind.value}: partitions {missing} missing"
                    )

    for m, rows in by_model.items():
        problems += _overlaps(rows, f"model {m} on two workers at once")
        # Ties in start time (zero-length jobs) are broken by the pass order itself.
        ordered = sorted(
            rows, key=lambda r: (r.started_at, r.ended_at, r.epoch, _KIND_RANK[JobKind(r.kind)])
        )
        for before, after in zip(ordered, ordered[1:], strict=False):
            rank_before = (before.epoch, _KIND_RANK[JobKind(before.kind)])
            if (after.epoch, _KIND_RANK[JobKind(after.kind)]) < rank_before:
                problems.append(
                    f"model {m} out of pass order: {_shown(before)} then {_shown(after)}"
                )
        if train_order is not None:
            problems += _order_problems(m, ordered, train_order)
    for worker, rows in by_worker.items():
        problems += _overlaps(rows, f"worker {worker} runs two jobs at once")
    return problems


def _order_problems(m: int, rows: list[JobRecord], train_order: TrainOrder) -> list[str]:
    """TRAIN passes of model ``m`` (``rows`` in time order) that left its seeded order."""
    ran: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        if JobKind(row.kind) is JobKind.TRAIN:
            ran[int(row.epoch)].append(int(row.partition))
    problems = []
    for epoch, visited in sorted(ran.items()):
        expected = [int(p) for p in train_order(m, epoch)]
        if visited != expected[: len(visited)]:
            problems.append(f"model {m} epoch {epoch} trained on {visited}, not in {expected}")
    return problems


def check_job_log(
    log: Iterable[Sequence[Any]],
    models: Iterable[ModelAdded | Sequence[int]],
    partitions: Iterable[int],
    evaluate: bool,
    train_order: TrainOrder | None = None,
) -> None:
    """Raise JobLogError listing the problems ``job_log_problems`` finds; None when clean."""
    problems = job_log_problems(log, models, partitions, evaluate, train_order)
    if problems:
        listed = "\n  ".join(problems[:_MAX_LISTED])
        more = len(problems) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise JobLogError(f"{len(problems)} problem(s) in the job log:\n  {listed}{tail}")
