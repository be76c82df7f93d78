"""Where sub-epochs run: the contract every executor keeps.

An executor owns one worker slot per data partition. The runner hands it jobs that the
scheduler chose and collects their results; the executor never decides what runs next.
Model state moves as an opaque handle (``StateRef``): a Dask future on the real
executor, nothing on the simulated one. Raw ``bytes`` (a checkpoint) are accepted
wherever a handle is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from automl_core.mop.types import Job

StateRef = Any


class StateLostError(RuntimeError):
    """A model state asked of ``fetch_state`` died with its worker (or never came)."""


@dataclass
class JobResult:
    """How one submitted job ended.

    ``state`` is the model's new state after a TRAIN job (None after EVAL or a failure).
    ``metrics`` holds sums (``loss_sum``, ``correct``, ``samples``) so that the runner can
    add them up over partitions. ``error`` is set when the job did not finish;
    ``lost`` says why was the cluster's, not the job's (its worker, or the data it read,
    died; it was cancelled or timed out), so it is retried without counting as a training
    failure; ``state_lost`` says the input state died with it.
    """

    job: Job
    worker: str
    started_at: float
    ended_at: float
    state: StateRef | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    state_lost: bool = False
    lost: bool = False


class Executor(Protocol):
    """Runs jobs on the worker that holds the job's partition.

    Contract: ``submit`` never blocks on the job; at most one job per partition is in
    flight (the scheduler guarantees it, the executor checks it); ``wait`` blocks until at
    least one job has ended (or its timeout passed) and returns every job that has ended
    since the last call.
    """

    @property
    def partitions(self) -> Sequence[int]: ...

    def submit(self, job: Job, config: Mapping[str, Any], state: StateRef | bytes | None) -> None:
        """Start ``job`` for the model with ``config`` from ``state`` (None: fresh model)."""
        ...

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Block until a job ends, or at most ``timeout`` seconds (then it may return [])."""
        ...

    def fetch_state(self, state: StateRef | bytes) -> bytes:
        """The state as bytes on the driver, e.g. to write a checkpoint.

        Raises StateLostError when the state died with its worker.
        """
        ...

    def forget(self, model_id: int) -> None:
        """No job will read the model's latest state again: free it."""
        ...

    def now(self) -> float:
        """The executor's clock in seconds (wall clock, or simulated)."""
        ...

    def close(self) -> None: ...
