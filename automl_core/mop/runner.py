"""The hopper runner: carries the scheduler's instructions out on an executor.

It is the only place where the pure scheduler meets the world: it submits jobs, feeds
their results back as events, adds up per-epoch metrics, and writes the job log, the
per-epoch metrics and a checkpoint after every epoch through a ``ResultSink``. New work
can arrive while it runs (``on_model_done`` returns more targets), which is how Hyperband
rungs of different brackets share the workers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from automl_core.executors.base import Executor, JobResult
from automl_core.mop.scheduler import MopScheduler
from automl_core.mop.types import (
    EpochCompleted,
    Event,
    Instruction,
    Job,
    JobFailed,
    JobFinished,
    JobKind,
    ModelAdded,
    ModelCompleted,
    ModelReset,
    RunJob,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingTarget:
    """Train ``trial_id`` from ``start_epoch`` (with ``state``, None when 0) to ``target_epoch``."""

    trial_id: int
    config: Mapping[str, Any]
    start_epoch: int
    target_epoch: int
    state: bytes | None = None


@dataclass(frozen=True)
class JobRecord:
    trial_id: int
    epoch: int
    partition: int
    kind: str
    worker: str
    started_at: float
    ended_at: float
    attempt: int


@dataclass(frozen=True)
class EpochMetrics:
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
    seconds: float = 0.0

    def add(self, metrics: Mapping[str, float], seconds: float) -> None:
        self.loss += metrics.get("loss_sum", 0.0)
        self.correct += metrics.get("correct", 0.0)
        self.samples += metrics.get("samples", 0.0)
        self.seconds += seconds


@dataclass
class _ModelRun:
    config: Mapping[str, Any]
    state: Any  # StateRef, checkpoint bytes or None
    train: _Sums = field(default_factory=_Sums)
    valid: _Sums = field(default_factory=_Sums)
    jobs: list[JobRecord] = field(default_factory=list)


@dataclass
class RunSummary:
    epochs_trained: int = 0
    jobs: int = 0
    failed_jobs: int = 0
    resets: int = 0
    completed: list[int] = field(default_factory=list)


class TrainingError(RuntimeError):
    """A job kept failing for a reason other than a lost worker."""


DoneCallback = Callable[[int, int], Iterable[TrainingTarget]]


class HopperRunner:
    """Runs targets to completion with model hopper parallelism."""

    def __init__(
        self,
        executor: Executor,
        sink: ResultSink,
        *,
        seed: int = 0,
        evaluate: bool = True,
        progress: Any = None,
        max_failures: int = 3,
    ) -> None:
        self._executor = executor
        self._sink = sink
        self._evaluate = evaluate
        self._scheduler = MopScheduler(executor.partitions, seed=seed, evaluate=evaluate)
        self._models: dict[int, _ModelRun] = {}
        self._failures: defaultdict[Job, int] = defaultdict(int)
        self._max_failures = max_failures
        self._progress = progress
        self._on_model_done: DoneCallback | None = None
        self.summary = RunSummary()

    def run(
        self, targets: Iterable[TrainingTarget], on_model_done: DoneCallback | None = None
    ) -> RunSummary:
        """Train every target (and whatever ``on_model_done`` adds) to its target epoch."""
        self._on_model_done = on_model_done
        self._carry_out(self._add(targets))
        while not self._scheduler.done:
            for result in self._executor.wait():
                self._on_result(result)
        return self.summary

    # --- events in ------------------------------------------------------------------------

    def _add(self, targets: Iterable[TrainingTarget]) -> list[Instruction]:
        """Register targets with the scheduler; returns the instructions that follow.

        A trial the runner already holds (a promoted Hyperband model) continues from the
        state in hand, so it does not travel through the driver.
        """
        instructions: list[Instruction] = []
        for t in targets:
            held = self._models.get(t.trial_id)
            state = t.state if t.state is not None or held is None else held.state
            self._models[t.trial_id] = _ModelRun(t.config, state)
            if self._progress is not None:
                per_epoch = len(self._executor.partitions) * (2 if self._evaluate else 1)
                self._progress.total = (self._progress.total or 0) + per_epoch * max(
                    0, t.target_epoch - t.start_epoch
                )
                self._progress.refresh()
            instructions.extend(
                self._scheduler.handle(ModelAdded(t.trial_id, t.start_epoch, t.target_epoch))
            )
        return instructions

    def _on_result(self, result: JobResult) -> None:
        job = result.job
        model = self._models.get(job.model_id)
        if model is None:
            return
        current = self._scheduler.is_current(job)
        if result.error is not None:
            self.summary.failed_jobs += 1
            self._failures[job] += 1
            if self._failures[job] > self._max_failures:
                raise TrainingError(
                    f"trial {job.model_id}: {job.kind.value} job of epoch {job.epoch} on "
                    f"partition {job.partition} failed {self._failures[job]} times; last "
                    f"error: {result.error}"
                )
            # The scheduler wants the reset before the failure, so the failed visit is
            # not retried from the lost state (see MopScheduler's notes).
            if result.state_lost and job.model_id in self._scheduler.active_models:
                self._reset(job.model_id)
            if current or self._scheduler.draining.get(job.partition) == job:
                self._feed(JobFailed(job))
            return
        if not current:
            # A dropped job (its model was reset) ended: it frees the partition, nothing more.
            if self._scheduler.draining.get(job.partition) == job:
                self._feed(JobFinished(job))
            return
        model.jobs.append(
            JobRecord(
                job.model_id,
                job.epoch,
                job.partition,
                job.kind.value,
                result.worker,
                result.started_at,
                result.ended_at,
                self._failures[job] + 1,
            )
        )
        sums = model.train if job.kind is JobKind.TRAIN else model.valid
        sums.add(result.metrics, result.ended_at - result.started_at)
        if job.kind is JobKind.TRAIN:
            model.state = result.state
        self.summary.jobs += 1
        if self._progress is not None:
            self._progress.update(1)
        self._feed(JobFinished(job))

    def _reset(self, model_id: int) -> None:
        """Redo the model's current epoch from its last checkpoint."""
        model = self._models[model_id]
        _, state = self._sink.load_checkpoint(model_id)
        model.state = state
        model.train, model.valid, model.jobs = _Sums(), _Sums(), []
        self.summary.resets += 1
        log.warning(
            "trial %d: state lost with a worker; redoing the epoch from its checkpoint", model_id
        )
        self._feed(ModelReset(model_id))

    # --- instructions out -----------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        self._carry_out(self._scheduler.handle(event))

    def _carry_out(self, instructions: Iterable[Instruction]) -> None:
        pending = list(instructions)
        while pending:
            # Start jobs before bookkeeping (checkpoints, database writes, promotions), so
            # no worker waits on the driver.
            for instruction in pending:
                if isinstance(instruction, RunJob):
                    job = instruction.job
                    model = self._models[job.model_id]
                    self._executor.submit(job, model.config, model.state)
            notifications = [i for i in pending if not isinstance(i, RunJob)]
            pending = []
            for instruction in notifications:
                if isinstance(instruction, EpochCompleted):
                    self._finish_epoch(instruction.model_id, instruction.epoch)
                elif isinstance(instruction, ModelCompleted):
                    self.summary.completed.append(instruction.model_id)
                    if self._on_model_done is not None:
                        done = self._on_model_done(instruction.model_id, instruction.epoch)
                        pending.extend(self._add(done))

    def _finish_epoch(self, model_id: int, epoch: int) -> None:
        model = self._models[model_id]
        state = self._executor.fetch_state(model.state)
        train, valid = model.train, model.valid
        metrics = EpochMetrics(
            train_loss=train.loss / max(train.samples, 1),
            train_accuracy=train.correct / max(train.samples, 1),
            valid_loss=valid.loss / valid.samples if valid.samples else None,
            valid_accuracy=valid.correct / valid.samples if valid.samples else None,
            seconds=train.seconds + valid.seconds,
            samples=int(train.samples),
        )
        self._sink.record_jobs(model.jobs)
        self._sink.record_epoch(model_id, epoch, metrics, state)
        # The next job keeps reading the state handle on its worker; the bytes fetched here
        # are only for the checkpoint.
        model.train, model.valid, model.jobs = _Sums(), _Sums(), []
        self.summary.epochs_trained += 1
        log.info(
            "trial %d epoch %d: train loss %.4f acc %.4f | valid loss %s acc %s | %.2fs",
            model_id,
            epoch,
            metrics.train_loss,
            metrics.train_accuracy,
            "-" if metrics.valid_loss is None else f"{metrics.valid_loss:.4f}",
            "-" if metrics.valid_accuracy is None else f"{metrics.valid_accuracy:.4f}",
            metrics.seconds,
        )
