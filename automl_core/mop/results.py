"""What the runner writes when an epoch ends: the sink it writes to, and the epoch's
metrics and job-log rows made from the visits that made the epoch.

A visit's metrics are sums (``loss_sum``, ``correct``, ``samples``; an epoch's last
training visit may add ``valid_``-prefixed sums), so an epoch's means are sums over its
visits divided by the rows. The visits are summed in a fixed order (train before eval,
then by partition), not the order they ran, so the float sums repeat bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from automl_core.mop.executor import Visit
from automl_core.mop.types import Job, JobKind, JobRecord

__all__ = ["EpochMetrics", "ResultSink", "epoch_metrics", "epoch_visits", "job_records"]

_TRAIN = JobKind.TRAIN.value
_SUMS = ("loss_sum", "correct", "samples")
_VALID_SUMS = ("valid_loss_sum", "valid_correct", "valid_samples")


@dataclass(frozen=True)
class EpochMetrics:
    """Means over an epoch's rows; ``valid_*`` None when nothing was evaluated;
    ``seconds`` sums the visits' worker seconds."""

    train_loss: float
    train_accuracy: float
    valid_loss: float | None
    valid_accuracy: float | None
    seconds: float
    samples: int


class ResultSink(Protocol):
    """Where the runner writes; the database in production, memory in tests."""

    def record_jobs(self, rows: Sequence[JobRecord]) -> None: ...

    def record_epoch(self, trial_id: int, epoch: int, metrics: EpochMetrics, state: bytes) -> None:
        """Persist an epoch's metrics and the state after it (one transaction if possible)."""
        ...

    def load_checkpoint(self, trial_id: int) -> tuple[int, bytes | None]:
        """The last saved (epoch, state); (0, None) when the trial has none."""
        ...


@dataclass
class _Sums:
    loss: float = 0.0
    correct: float = 0.0
    samples: float = 0.0

    def add(self, metrics: Mapping[str, float], keys: tuple[str, str, str] = _SUMS) -> None:
        loss, correct, samples = keys
        self.loss += metrics.get(loss, 0.0)
        self.correct += metrics.get(correct, 0.0)
        self.samples += metrics.get(samples, 0.0)


def epoch_visits(visits: Iterable[Visit], epoch: int) -> list[Visit]:
    """The visits of ``epoch``, train before eval, then by partition."""
    mine = [v for v in visits if v.epoch == epoch]
    return sorted(mine, key=lambda v: (v.kind != _TRAIN, v.partition))


def epoch_metrics(visits: Iterable[Visit]) -> EpochMetrics:
    """The metrics of one epoch's ``visits``, summed in the order given (see
    :func:`epoch_visits`)."""
    train, valid, seconds = _Sums(), _Sums(), 0.0
    for v in visits:
        if v.kind == _TRAIN:
            train.add(v.metrics)
            valid.add(v.metrics, _VALID_SUMS)  # the epoch's last visit may evaluate too
        else:
            valid.add(v.metrics)
        seconds += v.ended_at - v.started_at
    return EpochMetrics(
        train_loss=train.loss / max(train.samples, 1),
        train_accuracy=train.correct / max(train.samples, 1),
        valid_loss=valid.loss / valid.samples if valid.samples else None,
        valid_accuracy=valid.correct / valid.samples if valid.samples else None,
        seconds=seconds,
        samples=int(train.samples),
    )


def job_records(
    model_id: int, epoch: int, visits: Iterable[Visit], failures: Callable[[Job], int] | None
) -> list[JobRecord]:
    """The job-log rows of one epoch's ``visits``; ``failures(job)`` says how often the
    visit failed before (None: never)."""
    rows = []
    for v in visits:
        attempt = 1
        if failures is not None:
            attempt += failures(Job(model_id, v.partition, epoch, JobKind(v.kind)))
        rows.append(
            JobRecord(
                model_id, epoch, v.partition, v.kind, v.worker, v.started_at, v.ended_at, attempt
            )
        )
    return rows
