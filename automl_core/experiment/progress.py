"""Where a search stands, one line per bracket or batch, read from the database alone.

``automl watch`` prints these lines as they change, so a person sees the brackets of a
search advance side by side whichever process trains them (`automl run`, the engine
task of an Airflow DAG run).
"""

from __future__ import annotations

from typing import Any

from automl_core.experiment.plan import PlanGroup, search_plan
from automl_core.experiment.request import SearchRequest
from automl_core.store import repository as repo


def group_lines(conn: Any, experiment: repo.Experiment) -> dict[str, str]:
    """Group id -> a one-line state, e.g. ``rung 1/3 (3 x 3 epochs): 2 of 3 trained``."""
    request = SearchRequest.from_spec(experiment.dataset, experiment.seed, experiment.spec)
    by_group: dict[tuple[bool, int | None], list[repo.TrainingRequest]] = {}
    for r in repo.get_requests(conn, experiment.id):
        # Grouped once, not scanned per group: a grid can have 100,000 batches.
        key = (True, r.bracket) if r.bracket is not None else (False, r.batch)
        by_group.setdefault(key, []).append(r)
    return {
        group.group_id: _line(
            conn, experiment.id, group, by_group.get((group.promotes, group.index), [])
        )
        for group in search_plan(request).groups
    }


def _line(conn: Any, experiment_id: int, group: PlanGroup, mine: list[repo.TrainingRequest]) -> str:
    """The line of ``group``, whose requests are ``mine``."""
    if not mine:
        return "waiting"
    current = max(r.rung or 0 for r in mine)
    step = group.rungs[current]
    at_rung = [r for r in mine if (r.rung or 0) == current]
    done = sum(r.state == repo.RequestState.DONE for r in at_rung)
    failed = sum(r.state == repo.RequestState.FAILED for r in at_rung)
    where = f"rung {current + 1}/{len(group.rungs)} " if group.promotes else ""
    text = f"{where}({step.n} x {step.target_epoch} epochs): {done + failed} of {len(at_rung)}"
    text += " trained" + (f", {failed} failed" if failed else "")
    if done + failed == len(at_rung) and (not group.promotes or current == len(group.rungs) - 1):
        decided = not group.promotes or any(
            m.promoted is not None for m in repo.get_rung(conn, experiment_id, group.index, current)
        )
        if decided:
            text += "; complete"
    return text
