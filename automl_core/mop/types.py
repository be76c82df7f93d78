"""Events into and instructions out of the model hopper scheduler.

These small values are the whole vocabulary between the pure scheduler
(``automl_core.mop.scheduler``), the runner that carries its instructions out
(``automl_core.mop.runner``) and the executors (``automl_core.executors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    """Train ``model_id`` from ``start_epoch`` (epochs already done) up to ``target_epoch``."""

    model_id: int
    start_epoch: int
    target_epoch: int


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
