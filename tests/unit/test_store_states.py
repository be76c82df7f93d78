"""The status enums and their transition tables (no database)."""

from __future__ import annotations

import pytest

from automl_core.store.repository import (
    EXPERIMENT_TRANSITIONS,
    REQUEST_TRANSITIONS,
    TRIAL_TRANSITIONS,
    ExperimentState,
    RequestState,
    TrialState,
)


@pytest.mark.parametrize(
    ("states", "table"),
    [
        (TrialState, TRIAL_TRANSITIONS),
        (ExperimentState, EXPERIMENT_TRANSITIONS),
        (RequestState, REQUEST_TRANSITIONS),
    ],
)
def test_every_state_has_a_row_of_known_states(states: type, table: dict) -> None:
    assert set(table) == set(states)
    assert all(to <= set(states) for to in table.values())


@pytest.mark.parametrize(
    ("table", "state"),
    [(TRIAL_TRANSITIONS, s) for s in TrialState]
    + [(EXPERIMENT_TRANSITIONS, s) for s in ExperimentState],
)
def test_a_retried_write_may_keep_the_status(table: dict, state: str) -> None:
    assert state in table[state]


def test_the_moves_the_engine_makes_are_allowed() -> None:
    T, E = TrialState, ExperimentState
    for before, after in [
        (T.PENDING, T.RUNNING),  # claimed
        (T.RUNNING, T.PENDING),  # interrupted
        (T.PENDING, T.COMPLETED),  # its checkpoint already reached the target
        (T.RUNNING, T.STOPPED),  # not promoted
        (T.RUNNING, T.FAILED),
        (T.FAILED, T.RUNNING),  # asked to train again
    ]:
        assert after in TRIAL_TRANSITIONS[before], (before, after)
    for before, after in [
        (E.RUNNING, E.INTERRUPTED),
        (E.INTERRUPTED, E.RUNNING),  # resumed
        (E.RUNNING, E.COMPLETED),
        (E.RUNNING, E.FAILED),
        (E.COMPLETED, E.RUNNING),  # reopened
    ]:
        assert after in EXPERIMENT_TRANSITIONS[before], (before, after)


def test_finished_states_never_go_back_to_the_start() -> None:
    for state in (TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED):
        assert TrialState.PENDING not in TRIAL_TRANSITIONS[state]
    for state in (ExperimentState.COMPLETED, ExperimentState.FAILED):
        assert ExperimentState.INTERRUPTED not in EXPERIMENT_TRANSITIONS[state]
