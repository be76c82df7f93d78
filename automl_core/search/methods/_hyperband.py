"""Hyperband as a method: a bracket per ``HyperbandSchedule`` bracket, top 1/eta promoted."""

from __future__ import annotations

from collections.abc import Sequence

from automl_core.search.distinct import require_distinct
from automl_core.search.groups import PlanGroup, RungStep
from automl_core.search.hyperband import (
    HyperbandSchedule,
    hyperband_schedule,
    sample_bracket,
    select_survivors,
)
from automl_core.search.methods._knobs import ETA, SKIP_LAST, R
from automl_core.search.methods._registry import (
    Config,
    History,
    Promotion,
    SearchMethod,
    Setup,
)


def schedule_of(setup: Setup) -> HyperbandSchedule:
    """The schedule of ``setup``'s ``R``, ``eta`` and ``skip_last``."""
    return hyperband_schedule(setup.value("R"), setup.value("eta"), setup.value("skip_last"))


class Hyperband(SearchMethod):
    name = "hyperband"
    title = "Hyperband"
    knobs = (R, ETA, SKIP_LAST)

    def check(self, setup: Setup) -> None:
        """A valid schedule, and one distinct configuration per trial of every bracket."""
        schedule = schedule_of(setup)
        require_distinct(
            setup.space,
            schedule.n_configs,
            f"Hyperband with R={schedule.R}, eta={schedule.eta} ({schedule.n_configs} "
            "configurations over its brackets)",
        )

    def plan(self, setup: Setup) -> tuple[PlanGroup, ...]:
        return tuple(
            PlanGroup("bracket", b.s, tuple(RungStep(r.i, r.n_i, r.r_i) for r in b.rungs))
            for b in schedule_of(setup).brackets
        )

    def propose(self, setup: Setup, group: PlanGroup, history: History) -> list[tuple[int, Config]]:
        """Rung 0 of bracket ``group.index``: ids from ``first_trial``, configurations
        from ``sample_bracket``. ``KeyError`` for a bracket not in the schedule."""
        schedule = schedule_of(setup)
        first = schedule.first_trial(group.index)
        configs = sample_bracket(setup.space, schedule, group.index, setup.seed)
        return [(first + j, c) for j, c in enumerate(configs)]

    def promote(
        self, group: PlanGroup, rung: int, scores: Sequence[tuple[int, float | None]]
    ) -> Promotion:
        """The best ``floor(n_i / eta)`` (the next rung's size) by validation accuracy."""
        keep = group.survivors(rung)
        return Promotion(
            select_survivors(scores, keep, mode="max"),
            f"top {keep} of {len(scores)} by validation accuracy",
        )
