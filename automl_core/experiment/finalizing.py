"""The end of a search: mark it done, pick the best model, write the report, export it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from automl_core.errors import UserInputError
from automl_core.experiment.api import open_experiment
from automl_core.store import repository as repo

log = logging.getLogger(__name__)


def finalize(
    name: str,
    *,
    export_to: str | None = None,
    report_dir: str | Path | None = None,
    s3_client: Any = None,
    db_url: str | None = None,
) -> dict[str, Any]:
    """Best trial, leaderboard size, and where the export and the report went.

    The experiment is marked completed and its report written before the export, so an
    export that fails (a missing bucket, say) leaves both done, and the experiment no
    longer ``running`` (which would hold its data set). A retry after a failed export
    does it all again: the status stays completed (``finished_at`` moves to the retry),
    the report is rewritten in place and the export replaces its own earlier one.

    Raises UserInputError when no trial trained (the experiment is marked failed), for a
    report folder that ``check_report_dir`` refuses, or an export that fails for a reason
    a user can fix (``export_best``), naming the target.
    """
    from automl_core.report.leaderboard import leaderboard

    with open_experiment(name, db_url) as ctx:
        _fail_if_nothing_trained(ctx)
        board = leaderboard(ctx.conn, name)
        result: dict[str, Any] = {"name": name, "trials": int(len(board))}
        if len(board):
            best = board.iloc[0]
            result["best_trial"] = int(best["trial_id"])
            result["best_valid_accuracy"] = float(best["best_valid_accuracy"])
        repo.set_experiment_status(
            ctx.conn, ctx.experiment.id, repo.ExperimentState.COMPLETED, finished=True
        )
        if report_dir:
            from automl_core.report import write_report

            index = write_report(ctx.conn, name, Path(report_dir))
            result["report"] = str(index)
            log.info("report: file://%s", Path(index).resolve())
        if export_to:
            from automl_core.export import export_best

            card = export_best(ctx.conn, name, export_to, s3_client=s3_client)
            result["export"] = export_to
            log.info("exported trial %s to %s", card["trial"]["trial_id"], export_to)
    return result


def _fail_if_nothing_trained(ctx: Any) -> None:
    """A search in which no trial trained a single epoch ends ``failed``, saying why.

    Raises UserInputError with the first trial's error (the usual cause is a space whose
    every configuration the trainer rejects, e.g. an unknown architecture).
    """
    if repo.epochs(ctx.conn, ctx.experiment.id):
        return
    trials = repo.get_trials(ctx.conn, ctx.experiment.id)
    errors = [t.error for t in trials if t.status == repo.TrialState.FAILED and t.error]
    repo.set_experiment_status(
        ctx.conn, ctx.experiment.id, repo.ExperimentState.FAILED, finished=True
    )
    reason = f"the first error: {errors[0]}" if errors else "no trial was trained"
    raise UserInputError(
        f"No trial of experiment {ctx.experiment.name!r} could train ({len(trials)} "
        f"trials; {reason}). Fix what it names (a configuration the trainer refuses is "
        "the search space's; other errors come from the data or the workers) and run the "
        "search again."
    )
