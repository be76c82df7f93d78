"""Events into and instructions out of the model hopper scheduler.

These small values are the whole vocabulary between the pure scheduler
(``automl_core.mop.scheduler``), the runner that carries its instructions out
(``automl_core.mop.runner``) and the executors (``automl_core.executors``). ``JobRecord``,
one row of the job log, is shared with the store (``mop_jobs``), which may import this
module but nothing else of ``mop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class JobKind(StrEnum):
    TRAIN = "train"  # one pass over the partition's training rows
    EVAL = "eval"  # forward pass over the partition's validation rows


@dataclass(frozen=True, order=True)
class Job:
    """One sub-epoch: a model visits one partition for one pass of one epoch (1-based)."""

    model_id: int
    partition: int
    epoch: int
    kind: JobKind


# --- events in -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelAdded:
    """Train ``model_id`` from ``start_epoch`` (epochs already done) up to ``target_epoch``.

    ``priority``: a partition picks among the free models that need it those of the
    highest priority (uniformly among them); equal priorities are Cerebro's uniform pick.
    """

    model_id: int
    start_epoch: int
    target_epoch: int
    priority: int = 0


@dataclass(frozen=True)
class JobFinished:
    job: Job


@dataclass(frozen=True)
class JobFailed:
    """The job did not finish (its worker died); the same visit must run again."""

    job: Job


@dataclass(frozen=True)
class ModelReset:
    """The model's in-flight state was lost: redo its current epoch from the last checkpoint."""

    model_id: int


@dataclass(frozen=True)
class ModelRemoved:
    """The model leaves unfinished (it cannot train); a job it runs is dropped."""

    model_id: int


Event = ModelAdded | JobFinished | JobFailed | ModelReset | ModelRemoved


# --- instructions out ----------------------------------------------------------------


@dataclass(frozen=True)
class RunJob:
    job: Job


@dataclass(frozen=True)
class EpochCompleted:
    """Every partition has trained (and, if enabled, evaluated) the model for ``epoch``."""

    model_id: int
    epoch: int


@dataclass(frozen=True)
class ModelCompleted:
    model_id: int
    epoch: int


Instruction = RunJob | EpochCompleted | ModelCompleted


# --- the job log ---------------------------------------------------------------------


class JobRecord(NamedTuple):
    """One completed visit: a row of the job log and of ``mop_jobs``.

    Times are ``time.time()`` seconds; ``kind`` is a ``JobKind`` or its value; ``attempt``
    counts the tries of the visit (1 when it never failed). A tuple, so that a database
    row or a plain 7-tuple (without ``attempt``) reads as one.
    """

    trial_id: int
    epoch: int
    partition: int
    kind: str
    worker: str
    started_at: float
    ended_at: float
    attempt: int = 1
