"""The hopper runner: carries the scheduler's instructions out on an executor.

It is the only place where the pure scheduler meets the world: it submits jobs, feeds
their results back as events, adds up per-epoch metrics, and writes the job log, the
per-epoch metrics and a checkpoint after every epoch through a ``ResultSink``.

Two ways to drive it. ``run()`` trains a fixed set of targets (plus whatever
``on_model_done`` returns) to completion. The training engine instead calls ``add()``
whenever new work arrives and ``step()`` in its own loop, so work from every bracket and
batch of a search shares the workers while the runner keeps going.

``simulate`` (``executors/simulated.py``) drives it too, on a simulated clock, with its
own scheduler and an ``on_instruction`` hook: one result-handling path for both.

A trial that completed a target stays *held*: its latest state stays on its worker, so a
promoted trial continues from it without a trip through the database. ``release()`` drops
held trials that no rung needs again. A held state that died with a worker is forgotten,
and the trial restarts from its checkpoint when it is added again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from automl_core.mop.executor import Executor, JobResult, StateLostError
from automl_core.mop.results import (
    EpochMetrics,
    ResultSink,
    epoch_metrics,
    epoch_visits,
    job_records,
)
from automl_core.mop.scheduler import MopScheduler
from automl_core.mop.types import (
    EpochCompleted,
    Event,
    Instruction,
    Job,
    JobFailed,
    JobFinished,
    ModelAdded,
    ModelCompleted,
    ModelRemoved,
    ModelReset,
    RunJob,
)

__all__ = ["EpochMetrics", "HopperRunner", "ResultSink", "RunSummary", "TrainingError"]
__all__ += ["TrainingTarget", "DoneCallback", "FailedCallback", "InstructionHook"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingTarget:
    """Train ``trial_id`` from ``start_epoch`` (with ``state``, None when 0) to ``target_epoch``.

    ``priority``: the scheduler's (``ModelAdded.priority``): higher trains first.
    """

    trial_id: int
    config: Mapping[str, Any]
    start_epoch: int
    target_epoch: int
    state: bytes | None = None
    priority: int = 0


@dataclass
class _ModelRun:
    config: Mapping[str, Any]
    state: Any  # StateRef, checkpoint bytes or None


@dataclass
class RunSummary:
    epochs_trained: int = 0
    jobs: int = 0
    failed_jobs: int = 0
    resets: int = 0
    dropped_jobs: int = 0  # results of jobs that no longer counted (their model was reset)
    scheduler_seconds: float = 0.0  # real seconds spent inside the scheduler
    completed: list[int] = field(default_factory=list)


class TrainingError(RuntimeError):
    """A job kept failing for a reason other than a lost worker."""


DoneCallback = Callable[[int, int], Iterable[TrainingTarget]]
FailedCallback = Callable[[int, str], None]
# Sees every instruction once it is carried out; what it returns is added (a target) or
# reset (``ModelReset``) right away. The simulation's hook (``executors/simulated.py``).
InstructionHook = Callable[[Instruction], Iterable["TrainingTarget | ModelReset"] | None]


class HopperRunner:
    """Runs targets to completion with model hopper parallelism."""

    def __init__(
        self,
        executor: Executor,
        sink: ResultSink,
        *,
        seed: int = 0,
        seeded_order: bool = True,
        evaluate: bool | None = None,
        progress: Any = None,
        max_failures: int = 3,
        on_model_done: DoneCallback | None = None,
        on_model_failed: FailedCallback | None = None,
        scheduler: MopScheduler | None = None,
        on_instruction: InstructionHook | None = None,
    ) -> None:
        """``seeded_order``: each model visits the partitions in its own seeded order, so
        its metrics depend on ``seed`` alone (see ``MopScheduler``).

        ``on_model_failed(trial, error)``: a trial whose job failed more than
        ``max_failures`` times (not counting lost workers) leaves the run, and the others
        go on; without it, the run stops with TrainingError.

        ``scheduler``: drive this one (over ``executor.partitions``) instead of a new one;
        its own seed, order and ``evaluate`` then apply."""
        self._executor = executor
        self._sink = sink
        # An EVAL pass after each TRAIN pass, unless the executor evaluates at an epoch's
        # last visit (or ``evaluate=False``: no evaluation at all).
        self._evaluate = executor.evaluation_pass if evaluate is None else evaluate
        if scheduler is None:
            scheduler = MopScheduler(
                executor.partitions,
                seed=seed,
                evaluate=self._evaluate,
                seeded_order=seeded_order,
                queue_jobs=executor.queues_jobs,
            )
        elif scheduler.queue_jobs and not executor.queues_jobs:
            raise ValueError(
                "The scheduler queues jobs, but the executor runs one job per partition: "
                "build the scheduler with queue_jobs=executor.queues_jobs."
            )
        self._evaluate = scheduler.evaluate
        self._scheduler = scheduler
        self._on_instruction = on_instruction
        self._models: dict[int, _ModelRun] = {}
        self._failures: defaultdict[Job, int] = defaultdict(int)
        self._max_failures = max_failures
        self._progress = progress
        self._on_model_done = on_model_done
        self._on_model_failed = on_model_failed
        self.summary = RunSummary()

    @property
    def busy(self) -> bool:
        """True while a model is training or a dropped job is still draining on a worker."""
        return not self._scheduler.done or self._scheduler.n_draining > 0

    def is_training(self, trial_id: int) -> bool:
        """True while the trial has not reached its current target."""
        return trial_id in self._scheduler.active_models

    def run(
        self, targets: Iterable[TrainingTarget], on_model_done: DoneCallback | None = None
    ) -> RunSummary:
        """Train every target (and whatever ``on_model_done`` adds) to its target epoch."""
        if on_model_done is not None:
            self._on_model_done = on_model_done
        self.add(targets)
        while self.busy:
            self.step()
        return self.summary

    def add(self, targets: Iterable[TrainingTarget]) -> None:
        """Start training ``targets`` now, beside whatever is already running.

        A target with ``state=None`` and ``start_epoch > 0`` continues from the state the
        runner holds for that trial, else from the sink's checkpoint.
        """
        self._carry_out(self._add(targets))

    def step(self, timeout: float | None = None) -> int:
        """Wait for jobs to end (at most ``timeout`` seconds) and act on them.

        Returns how many job results were handled (0 when the wait timed out or nothing
        runs). Raises TrainingError when a job keeps failing for a reason other than a
        lost worker.
        """
        if not self.busy:
            return 0
        results = self._executor.wait() if timeout is None else self._executor.wait(timeout)
        for result in results:
            self._on_result(result)
        return len(results)

    def release(self, trial_ids: Iterable[int]) -> None:
        """Forget held trials that no rung will train again, so their states can be freed."""
        active = self._scheduler.active_models
        for trial_id in trial_ids:
            if trial_id not in active:
                self._models.pop(trial_id, None)
                self._executor.forget(trial_id)

    # --- events in ------------------------------------------------------------------------

    def _add(self, targets: Iterable[TrainingTarget]) -> list[Instruction]:
        """Register targets with the scheduler; returns the instructions that follow.

        A trial the runner already holds (a promoted Hyperband model) continues from the
        state in hand, so it does not travel through the driver. Targets are handed over
        highest priority first (stable: equal ones keep their order), since a model added
        while a worker is idle (or can queue) goes there at once.
        """
        instructions: list[Instruction] = []
        for t in sorted(targets, key=lambda t: -t.priority):
            self._models[t.trial_id] = _ModelRun(t.config, self._start_state(t))
            if self._progress is not None:
                per_epoch = len(self._executor.partitions) * (2 if self._evaluate else 1)
                self._progress.added(max(0, t.target_epoch - t.start_epoch), per_epoch)
            added = ModelAdded(t.trial_id, t.start_epoch, t.target_epoch, t.priority)
            instructions.extend(self._handle(added))
        return instructions

    def _on_result(self, result: JobResult) -> None:
        job = result.job
        current = self._scheduler.is_current(job)
        self.summary.dropped_jobs += not current
        model = self._models.get(job.model_id)
        if model is None:
            # A removed model's dropped job ended: it frees its partition, nothing more.
            if self._scheduler.is_draining(job):
                self._feed(JobFinished(job) if result.error is None else JobFailed(job))
            return
        if result.error is not None:
            self.summary.failed_jobs += 1
            # A job lost with its worker is retried without counting against the job.
            self._failures[job] += 0 if result.lost else 1
            if self._failures[job] > self._max_failures:
                error = (
                    f"trial {job.model_id}: {job.kind.value} job of epoch {job.epoch} on "
                    f"partition {job.partition} failed {self._failures[job]} times; last "
                    f"error: {result.error}"
                )
                if self._on_model_failed is None or not current:
                    raise TrainingError(error)
                self._remove(job, error)
                return
            # The scheduler wants the reset before the failure, so the failed visit is
            # not retried from the lost state (see MopScheduler's notes).
            if result.state_lost and job.model_id in self._scheduler.active_models:
                self._carry_out(self._reset(job.model_id))
            elif result.state_lost:
                # A held trial (waiting for its promotion) lost its state: it restarts from
                # its checkpoint if it is added again.
                model.state = None
            if current or self._scheduler.is_draining(job):
                self._feed(JobFailed(job))
            return
        if not current:
            # A dropped job (its model was reset) ended: it frees the partition, nothing more.
            if self._scheduler.is_draining(job):
                self._feed(JobFinished(job))
            return
        model.state = result.state
        self.summary.jobs += 1
        if self._progress is not None:
            self._progress.job_done()
        self._feed(JobFinished(job))

    def _start_state(self, target: TrainingTarget) -> Any:
        """The state a target starts from: given, held on a worker, or the checkpoint."""
        if target.state is not None or target.start_epoch == 0:
            return target.state
        held = self._models.get(target.trial_id)
        if held is not None and held.state is not None:
            return held.state
        epoch, state = self._sink.load_checkpoint(target.trial_id)
        if epoch != target.start_epoch or state is None:
            raise TrainingError(
                f"trial {target.trial_id}: no state at epoch {target.start_epoch} to continue "
                f"from (its checkpoint is at epoch {epoch})"
            )
        return state

    def _remove(self, job: Job, error: str) -> None:
        """Take the failing job's model out of the run; the others go on."""
        model_id = job.model_id
        log.warning("%s; the trial is marked failed and the search goes on", error)
        self._feed(ModelRemoved(model_id))
        self._feed(JobFailed(job))  # the failed job was the model's: it drained, now ended
        del self._models[model_id]
        self._executor.forget(model_id)
        for key in [k for k in self._failures if k.model_id == model_id]:
            del self._failures[key]
        assert self._on_model_failed is not None
        self._on_model_failed(model_id, error)

    def _reset(self, model_id: int) -> list[Instruction]:
        """Redo the model's current epoch from its last checkpoint; returns what follows."""
        model = self._models[model_id]
        _, state = self._sink.load_checkpoint(model_id)
        model.state = state
        # What the executor holds of the model is obsolete, and a job of it still running
        # is dropped: its output must not come back as the model's state.
        self._executor.forget(model_id)
        self.summary.resets += 1
        log.warning(
            "trial %d: state lost with a worker; redoing the epoch from its checkpoint", model_id
        )
        return self._handle(ModelReset(model_id))

    # --- instructions out -----------------------------------------------------------------

    def _handle(self, event: Event) -> list[Instruction]:
        started = time.perf_counter()
        instructions = self._scheduler.handle(event)
        self.summary.scheduler_seconds += time.perf_counter() - started
        return instructions

    def _feed(self, event: Event) -> None:
        self._carry_out(self._handle(event))

    def _carry_out(self, instructions: Iterable[Instruction]) -> None:
        pending = list(instructions)
        hook = self._on_instruction
        while pending:
            follow_ups: list[TrainingTarget | ModelReset] = []
            notifications: list[Instruction] = []
            # Start jobs before bookkeeping (checkpoints, database writes, promotions), so
            # no worker waits on the driver.
            for instruction in pending:
                if isinstance(instruction, RunJob):
                    job = instruction.job
                    model = self._models[job.model_id]
                    self._executor.submit(job, model.config, model.state)
                    if hook is not None:
                        follow_ups.extend(hook(instruction) or ())
                else:
                    notifications.append(instruction)
            pending = []
            for instruction in notifications:
                if isinstance(instruction, EpochCompleted):
                    self._finish_epoch(instruction.model_id, instruction.epoch)
                elif isinstance(instruction, ModelCompleted):
                    self.summary.completed.append(instruction.model_id)
                    if self._on_model_done is not None:
                        done = self._on_model_done(instruction.model_id, instruction.epoch)
                        pending.extend(self._add(done))
                if hook is not None:
                    follow_ups.extend(hook(instruction) or ())
            for follow_up in follow_ups:
                if isinstance(follow_up, ModelReset):
                    pending.extend(self._reset(follow_up.model_id))
                else:
                    pending.extend(self._add([follow_up]))

    def _finish_epoch(self, model_id: int, epoch: int) -> None:
        model = self._models[model_id]
        try:
            state, visits = self._executor.fetch_epoch(model.state)
        except StateLostError as exc:
            # Rare: the executor pulls an epoch's last state as soon as it exists. The
            # scheduler has moved on, so the epoch cannot be redone here; a rerun resumes
            # from the checkpoint before it.
            raise TrainingError(
                f"trial {model_id}: the state after epoch {epoch} was lost with its worker "
                "before it was saved; run the search again to resume from its checkpoint"
            ) from exc
        visits = epoch_visits(visits, epoch)
        metrics = epoch_metrics(visits)
        # The visits' failures are counted no more (rare: skip the lookups when none failed).
        failures = (lambda job: self._failures.pop(job, 0)) if self._failures else None
        jobs = job_records(model_id, epoch, visits, failures)
        self._sink.record_jobs(jobs)
        self._sink.record_epoch(model_id, epoch, metrics, state)
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
