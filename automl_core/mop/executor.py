"""Where sub-epochs run: the contract every executor keeps.

An executor owns one worker slot per data partition. The runner hands it jobs that the
scheduler chose and collects their results; the executor never decides what runs next.
Model state moves as an opaque handle (``StateRef``): a Dask future on the real
executor, a token on the simulated one. Raw ``bytes`` (a checkpoint) are accepted
wherever a handle is.

What a job measured travels with the state, not back to the driver: each job appends
its ``Visit`` (worker, times, metric sums) to the visits of the model's epoch, and the
runner reads them once, with the state, when the epoch ends (``fetch_epoch``). A job
therefore costs one task and no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from automl_core.mop.types import Job

StateRef = Any


class StateLostError(RuntimeError):
    """A model state asked of ``fetch_epoch`` died with its worker (or never came)."""


@dataclass(frozen=True)
class Visit:
    """One sub-epoch as its worker ran it: one row of the job log.

    ``kind`` is ``"train"`` or ``"eval"``; times are ``time.time()`` seconds on the
    worker; ``metrics`` holds sums (``loss_sum``, ``correct``, ``samples``) so the runner
    can add them up over partitions.
    """

    partition: int
    epoch: int
    kind: str
    worker: str
    started_at: float
    ended_at: float
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass
class JobResult:
    """How one submitted job ended, as the executor saw it.

    ``state`` is the model's state after the job (None after a failure); the next job of
    the model reads it, and ``fetch_epoch`` reads it with the epoch's visits. ``error`` is
    set when the job did not finish; ``lost`` says why was the cluster's, not the job's
    (its worker, or the data it read, died; it was cancelled or timed out), so it is
    retried without counting as a training failure; ``state_lost`` says the input state
    died with it. ``started_at``/``ended_at`` are the executor's clock when the job was
    submitted and seen to end (the job log uses the worker's own times).
    """

    job: Job
    worker: str
    started_at: float
    ended_at: float
    state: StateRef | None = None
    error: str | None = None
    state_lost: bool = False
    lost: bool = False


class Executor(Protocol):
    """Runs jobs on the worker that holds the job's partition.

    Contract: ``submit`` never blocks on the job; at most one job per partition is in
    flight, or two with ``queues_jobs`` (the scheduler guarantees it, the executor checks
    it), and a partition's jobs run one at a time (usually in the order submitted; the
    scheduler accepts their ends in either order); ``wait``
    blocks until at least one job has ended (or its timeout passed) and returns every
    job that has ended since the last call.
    """

    @property
    def partitions(self) -> Sequence[int]: ...

    @property
    def evaluation_pass(self) -> bool:
        """True: evaluation is a pass of EVAL jobs after the TRAIN pass of each epoch.
        False: the last TRAIN visit of an epoch evaluates the whole validation set (its
        visit's metrics carry ``valid_loss_sum``, ``valid_correct``, ``valid_samples``)."""
        ...

    @property
    def queues_jobs(self) -> bool:
        """True: a job submitted to a partition that runs one waits on that worker and
        starts as soon as the running one ends (at most one waits), so the worker does not
        idle through the driver's round trip. False: one job per partition in flight."""
        ...

    def submit(self, job: Job, config: Mapping[str, Any], state: StateRef | bytes | None) -> None:
        """Start ``job`` for the model with ``config`` from ``state`` (None: fresh model)."""
        ...

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Block until a job ends, or at most ``timeout`` seconds (then it may return [])."""
        ...

    def fetch_epoch(self, state: StateRef | bytes) -> tuple[bytes, list[Visit]]:
        """The state as bytes on the driver (for the checkpoint) and the visits of the
        epoch that made it, in order (none for checkpoint bytes).

        Raises StateLostError when the state died with its worker.
        """
        ...

    def forget(self, model_id: int) -> None:
        """No job will read the model's latest state again (it is done, or reset to its
        checkpoint): free it; a job of it still running is dropped, and its output is not
        taken for the model's state."""
        ...

    def now(self) -> float:
        """The executor's clock in seconds (wall clock, or simulated)."""
        ...

    def close(self) -> None: ...
