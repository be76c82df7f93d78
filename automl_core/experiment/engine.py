"""The training engine of one search: one pool of workers trains every request.

Implementation notes
====================

Work arrives as rows in ``automl.training_requests`` (trial, target epoch, and the rung of
a bracket or the batch it belongs to), put there by the engine's own driver, an Airflow
training task, or any other process. ``claim()`` moves queued requests to *running* and
adds them to the one ``HopperRunner`` of the search, beside whatever already trains, so
brackets and batches share every worker. When a trial reaches a target, its requests up
to that epoch become *done* and ``step()`` returns them, so the driver can promote or
propose at once.

Where a trial starts. From the state the runner still holds on a worker when it trained
the rung before (a promoted trial does not travel through the database); otherwise from
its checkpoint; otherwise fresh. After a crash, a new engine puts every *running* request
back in the queue (``requeue_running``) and each trial resumes from its checkpoint, so at
most the epochs in flight or not yet written (the sink writes from a thread; a request is
marked done only after its epochs are written) are trained again, with keyed upserts
overwriting their rows.
Every database call goes through ``RetryingConnection.run``, so a server restart is
waited out and the call repeated: each is guarded by the states it may start from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from automl_core.errors import UserInputError
from automl_core.experiment.sink import DatabaseSink, retrying
from automl_core.mop.runner import HopperRunner, TrainingTarget
from automl_core.search.groups import SearchPlan
from automl_core.store import repository as repo

log = logging.getLogger(__name__)


class TrainingEngine:
    """Trains the requests of experiment ``experiment_id`` on ``executor``'s workers."""

    def __init__(
        self,
        conn: Any,
        experiment_id: int,
        executor: Any,
        *,
        seed: int,
        seeded_order: bool = True,
        progress: Any = None,
        check_config: Callable[[Mapping[str, Any]], None] | None = None,
        priority_plan: SearchPlan | None = None,
    ) -> None:
        """``seeded_order``: the same seed repeats the same metrics (``MopScheduler``).
        ``check_config`` raises ``UserInputError`` for a configuration the trainer would
        reject; such a trial fails with that error when it is claimed, before it trains,
        and the search goes on.

        ``conn``: a connection or a ``RetryingConnection`` (every write here is guarded
        by the states it may start from, so a retried one changes nothing twice).

        ``priority_plan``: the search's plan, for a DAG run (``run_engine``'s
        ``deep_brackets_first``), whose every rung is two Airflow tasks of ~2-3 s each in
        the triggerer: the bracket with the most rungs is then the run's critical path
        (benchmarks/RESULTS.md), so a rung with more rungs of its bracket after it trains
        first (its trials' scheduler priority, ``SearchPlan.rungs_to_go``). ``automl run``
        promotes at once and leaves it out: there the uniform pick ends sooner (the
        27-epoch trials start at once).
        """
        self._plan = priority_plan
        self._db = retrying(conn)
        self._experiment_id = experiment_id
        self._check_config = check_config
        self._finished: list[repo.TrainingRequest] = []
        self._deferred: list[repo.TrainingRequest] = []  # its trial is still training
        self._sink = DatabaseSink(self._db, experiment_id)
        self._runner = HopperRunner(
            executor,
            self._sink,
            seed=seed,
            seeded_order=seeded_order,
            progress=progress,
            on_model_done=self._on_model_done,
            on_model_failed=self._on_model_failed,
        )

    @property
    def busy(self) -> bool:
        """True while any job runs or drains on a worker."""
        return self._runner.busy

    @property
    def summary(self) -> Any:
        return self._runner.summary

    def claim(self) -> int:
        """Take every queued request and start training it; returns how many started."""
        exp_id = self._experiment_id
        taken = self._db.run(lambda c: repo.claim_requests(c, exp_id)) + self._deferred
        self._deferred = []
        if not taken:
            return 0
        # One target per trial at a time: the lowest first, the rest wait for it.
        taken.sort(key=lambda r: (r.trial_id, r.target_epoch))
        first: dict[int, repo.TrainingRequest] = {}
        for request in taken:
            if request.trial_id in first or self._runner.is_training(request.trial_id):
                self._deferred.append(request)
            else:
                first[request.trial_id] = request
        if not first:
            return 0
        ids = sorted(first)
        trials = self._db.run(lambda c: repo.get_trials(c, exp_id, trial_ids=ids))
        configs = {t.trial_id: t.config for t in trials}
        self._sink.flush()  # where each trial stands is read from its checkpoint
        done_epochs = self._db.run(lambda c: repo.checkpoint_epochs(c, exp_id, ids))
        targets = []
        for trial_id in ids:
            request, start = first[trial_id], done_epochs.get(trial_id, 0)
            if start >= request.target_epoch:
                self._finish(trial_id, start)
                continue
            if start == 0 and not self._config_ok(trial_id, configs[trial_id]):
                continue
            targets.append(
                TrainingTarget(
                    trial_id,
                    configs[trial_id],
                    start,
                    request.target_epoch,
                    priority=self._priority(request),
                )
            )
        if targets:
            running = [t.trial_id for t in targets]
            self._db.run(
                lambda c: repo.set_trial_status(c, exp_id, running, repo.TrialState.RUNNING)
            )
            self._runner.add(targets)
        return len(targets)

    def step(self, timeout: float) -> list[repo.TrainingRequest]:
        """Wait up to ``timeout`` seconds for jobs to end; return the requests now done.

        With nothing to train it just waits for new requests to be queued.
        """
        if not self._finished:
            if self._runner.busy:
                self._runner.step(timeout)
            else:
                time.sleep(timeout)
        finished, self._finished = self._finished, []
        return finished

    def close(self) -> None:
        """Write what is still queued for the database; raises as ``DatabaseSink.flush``."""
        self._sink.close()

    def release(self, trial_ids: list[int]) -> None:
        """Drop the states of trials that no rung will train again."""
        self._runner.release(trial_ids)

    def _priority(self, request: repo.TrainingRequest) -> int:
        if self._plan is None or request.bracket is None or request.rung is None:
            return 0
        return self._plan.rungs_to_go(request.bracket, request.rung)

    def _config_ok(self, trial_id: int, config: Mapping[str, Any]) -> bool:
        """False (and the trial failed) when the trainer would reject ``config``."""
        if self._check_config is None:
            return True
        try:
            self._check_config(config)
        except UserInputError as exc:
            log.warning("trial %d failed: %s", trial_id, exc)
            self._on_model_failed(trial_id, str(exc))
            return False
        return True

    def _on_model_failed(self, trial_id: int, error: str) -> None:
        """A trial that cannot train fails with its error; the search goes on without it.

        The trial's status goes first and its requests last: a failed request is final,
        so cut short between the two the other way round (a crash, a lost database), the
        trial would stay ``running`` for good, and be promoted, completed and told to TPE
        as if it had trained. This way its requests are still unfinished; a restarted
        engine takes them again and fails the trial again (or trains it, if it can now).
        """
        exp_id = self._experiment_id
        self._db.run(
            lambda c: repo.set_trial_status(
                c, exp_id, [trial_id], repo.TrialState.FAILED, error=error
            )
        )
        self._finished += self._db.run(lambda c: repo.fail_requests(c, exp_id, [trial_id], error))

    def _on_model_done(self, trial_id: int, epoch: int) -> list[TrainingTarget]:
        self._finish(trial_id, epoch)
        return []

    def _finish(self, trial_id: int, epoch: int) -> None:
        exp_id = self._experiment_id
        self._sink.flush()  # a done request's epochs are in the database for its readers
        self._finished += self._db.run(lambda c: repo.finish_requests(c, exp_id, trial_id, epoch))
