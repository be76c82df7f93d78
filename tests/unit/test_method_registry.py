"""The method registry: every layer reads a method's knobs from its one entry.

A toy fifth method, "fixed" (a fixed list of configurations, one knob), is registered
with nothing but its entry, defined here; the request's validation, the plan, the
proposals, the DAG spec loader, the ``automl run`` options and the run form pick it up.
The four built-in methods keep the knobs, defaults and limits they always had.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from automl_airflow.params import run_fields, run_schemas
from automl_airflow.specs import SpecError, budget_keys, parse_spec

from automl_core.cli import build_parser
from automl_core.errors import UserInputError
from automl_core.experiment.plan import group_trials, search_plan
from automl_core.experiment.request import LIMITS, SearchRequest
from automl_core.search.groups import PlanGroup, RungStep
from automl_core.search.methods import (
    Config,
    History,
    Knob,
    SearchMethod,
    Setup,
    get_method,
    method_names,
    register,
    unregister,
)

SPACE = {"architecture": "mlp", "lr": [0.1, 0.01], "hidden": [16, 32]}
REPO = Path(__file__).resolve().parents[2]

# --- the toy method: its knob and its entry, nothing else ----------------------------

ROUNDS = Knob(
    "rounds",
    2,
    (1, 50),
    "epochs per listed configuration",
    shapes_plan=False,
    title="Rounds",
    description="Epochs each listed configuration trains.",
)
CONFIGS: list[Config] = [{"architecture": "mlp", "lr": 0.1, "hidden": 16}, {"lr": 0.01}]


class Fixed(SearchMethod):
    """Trains ``CONFIGS`` in one batch, each for ``rounds`` epochs."""

    name = "fixed"
    title = "fixed-list"
    knobs = (ROUNDS,)

    def plan(self, setup: Setup) -> tuple[PlanGroup, ...]:
        return (PlanGroup("batch", 0, (RungStep(0, len(CONFIGS), setup.value("rounds")),)),)

    def propose(self, setup: Setup, group: PlanGroup, history: History) -> list[tuple[int, Config]]:
        return [(i, dict(c)) for i, c in enumerate(CONFIGS)]


@pytest.fixture
def fixed() -> Iterator[SearchMethod]:
    method = register(Fixed())
    try:
        yield method
    finally:
        unregister("fixed")
    assert "fixed" not in method_names()


def test_a_request_validates_plans_and_proposes_with_the_new_method(fixed: Any) -> None:
    request = SearchRequest.with_budget({"rounds": 7}, dataset="d", space=SPACE, method="fixed")
    request.validate()
    assert request.budget() == {"rounds": 7}
    assert request.spec()["budget"] == {"rounds": 7}
    assert SearchRequest.from_spec("d", 0, request.spec()) == request
    plan = search_plan(request)
    assert [(g.group_id, g.rungs) for g in plan.groups] == [("batch_0", (RungStep(0, 2, 7),))]
    assert group_trials(request, plan.groups[0]) == list(enumerate(CONFIGS))
    # Unset, the knob takes its default; out of its limits, it is refused by name.
    assert SearchRequest(dataset="d", space=SPACE, method="fixed").budget() == {"rounds": 2}
    bad = SearchRequest.with_budget({"rounds": 51}, dataset="d", space=SPACE, method="fixed")
    with pytest.raises(UserInputError, match="value of rounds is 51.*from 1 to 50"):
        bad.validate()


def test_an_unregistered_method_is_refused_with_the_registered_names() -> None:
    with pytest.raises(UserInputError, match="must be one of grid, random, hyperband, hyperopt"):
        SearchRequest(dataset="d", space=SPACE, method="fixed").validate()


def _spec(**extra: Any) -> dict[str, Any]:
    return {"dag_id": "t_fixed", "dataset": "digits", "space": SPACE, "method": "fixed", **extra}


def test_the_spec_loader_parses_the_new_knob(fixed: Any) -> None:
    assert budget_keys("fixed") == {"rounds": 2}
    spec = parse_spec(_spec(budget={"rounds": 4}), source=Path("s.yaml"), base_dir=REPO)
    assert dict(spec.budget) == {"rounds": 4}
    with pytest.raises(SpecError, match=r"budget\.rounds.*between 1 and 50"):
        parse_spec(_spec(budget={"rounds": 99}), source=Path("s.yaml"), base_dir=REPO)
    with pytest.raises(
        SpecError, match=r"budget\.n.*not used by method fixed; its keys are rounds"
    ):
        parse_spec(_spec(budget={"n": 3}), source=Path("s.yaml"), base_dir=REPO)


def test_the_run_form_has_a_field_for_the_new_knob(fixed: Any) -> None:
    spec = parse_spec(_spec(budget={"rounds": 4}), source=Path("s.yaml"), base_dir=REPO)
    field = next(f for f in run_fields(spec) if f.name == "rounds")
    assert field.default == 4
    assert {k: field.schema[k] for k in ("type", "minimum", "maximum", "title")} == {
        "type": "integer",
        "minimum": 1,
        "maximum": 50,
        "title": "Rounds",
    }
    assert "narrow_from" in run_schemas(spec)  # the method does not say it cannot narrow


def test_the_cli_has_an_option_for_the_new_knob(fixed: Any) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["run", "--data", "d", "--space", "s.yaml", "--method", "fixed", "--rounds", "3"]
    )
    assert (args.method, args.rounds) == ("fixed", 3)
    assert "fixed: epochs per listed configuration" in _run_help(parser)


def _run_help(parser: Any) -> str:
    sub = next(a for a in parser._actions if a.dest == "command")
    return str(sub.choices["run"].format_help())


# --- the four built-in methods: their knobs as they always were -----------------------

BUILT_IN = {
    "grid": {"epochs": 5, "batch_size": 4},
    "random": {"epochs": 5, "n": 8, "batch_size": 4},
    "hyperband": {"R": 9, "eta": 3, "skip_last": 0},
    "hyperopt": {"epochs": 5, "batches": 3, "batch_size": 4, "startup_trials": None},
}
BOUNDS = {
    "epochs": (1, 1000),
    "n": (1, 10_000),
    "R": (1, 10_000),
    "eta": (2, 10_000),
    "skip_last": (0, 10_000),
    "batches": (1, 10_000),
    "batch_size": (1, 10_000),
    "startup_trials": None,  # from 1 to batches x batch_size (hyperopt_search.startup_trials)
}


def test_the_built_in_methods_keep_their_knobs_defaults_and_limits() -> None:
    assert method_names() == ("grid", "random", "hyperband", "hyperopt")
    for name, knobs in BUILT_IN.items():
        method = get_method(name)
        assert {k.name: k.default for k in method.knobs} == knobs
        assert {k.name: k.limits for k in method.knobs} == {k: BOUNDS[k] for k in knobs}
        # The defaults are SearchRequest's own.
        assert SearchRequest(dataset="d", space=SPACE, method=name).budget() == knobs
    assert {k: v for k, v in LIMITS.items() if k in BOUNDS} == {
        k: v for k, v in BOUNDS.items() if v is not None
    }
    assert not get_method("grid").narrowable
    assert all(get_method(m).narrowable for m in ("random", "hyperband", "hyperopt"))


def test_only_epochs_is_a_run_param_and_startup_trials_no_spec_key() -> None:
    for name in BUILT_IN:
        method = get_method(name)
        assert [k.name for k in method.knobs if not k.shapes_plan] == (
            [] if name == "hyperband" else ["epochs"]
        )
    assert budget_keys("hyperopt") == {"epochs": 5, "batches": 3, "batch_size": 4}


def test_the_cli_options_keep_their_names_and_defaults() -> None:
    args = build_parser().parse_args(["run", "--data", "d", "--space", "s", "--method", "grid"])
    assert {k: getattr(args, k) for k in BOUNDS} == {
        "epochs": 5,
        "n": 8,
        "R": 9,
        "eta": 3,
        "skip_last": 0,
        "batches": 3,
        "batch_size": 4,
        "startup_trials": None,
    }


def test_a_knob_name_means_one_knob() -> None:
    other = Knob("epochs", 7, (1, 10), "epochs")

    class Clash(Fixed):
        name = "clash"
        knobs = (other,)

    with pytest.raises(ValueError, match="knob 'epochs' of 'clash' differs"):
        register(Clash())
    assert "clash" not in method_names()
