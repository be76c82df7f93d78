"""Narrow and search again, through the ``automl`` command, on digits and real PostgreSQL.

A random search (the parent) trains 8 configurations of a conditional space for one
epoch; ``automl space narrow`` prints and writes its space narrowed to the top 3;
``automl run --narrow-from`` runs Hyperopt on that space. The child records its parent,
every one of its trials lies in the narrowed space, and its first batch is what TPE
proposes from the parent's results (not a random start-up), so it differs from the
batch a cold start proposes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import LocalCluster

from automl_core.cli import main
from automl_core.experiment import SearchRequest, plan
from automl_core.experiment.narrowing import narrow_request, parent_history
from automl_core.search.hyperopt_search import HyperoptSearch, startup_trials
from automl_core.space import SearchSpace
from automl_core.store import repository as repo
from automl_core.store.connection import connect
from tests.integration.test_bad_input import refused

PARENT, CHILD = "narrow-parent", "narrow-child"
SPACE: dict[str, Any] = {
    "architecture": [
        {"architecture": "mlp", "hidden": [32, 64], "dropout": {"uniform": [0.0, 0.3]}},
        {"architecture": "cnn2d", "channels": [8]},
    ],
    "optimizer": [
        {"optimizer": "sgd", "lr": {"loguniform": [0.01, 0.1]}, "momentum": 0.9},
        {"optimizer": "adam", "lr": {"loguniform": [0.001, 0.01]}},
    ],
    "batch_size": [32, 64, 128],
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address


@pytest.fixture
def on_digits(digits_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    return digits_url


def automl(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    return out


def run_argv(cluster: str, name: str, *extra: str) -> list[str]:
    return ["run", "--data", "digits", "--epochs", "1", "--no-progress", "--name", name,
            "--cluster", cluster, *extra]  # fmt: skip


@pytest.mark.timeout(600)
def test_narrow_and_search_again(
    on_digits: str, cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE), encoding="utf-8")
    automl(capsys, *run_argv(cluster, PARENT, "--space", str(space_file), "--method", "random",
                             "--n", "8", "--seed", "3"))  # fmt: skip

    out_file = tmp_path / "narrowed.yaml"
    printed = automl(capsys, "space", "narrow", PARENT, "--top", "3", "--out", str(out_file))
    assert printed.startswith(f"Narrowed '{PARENT}' to its top 3 trials: [")
    assert "batch_size: choice [32, 64, 128] -> [" in printed
    narrowed = SearchSpace.from_file(out_file)
    # Printed without --out, the same space is a YAML file of its own (changes as comments).
    shown = automl(capsys, "space", "narrow", PARENT, "--top", "3")
    assert all(
        line.startswith("# ") for line in shown.splitlines()[: len(printed.splitlines()) - 1]
    )
    assert SearchSpace.from_dict(yaml.safe_load(shown)) == narrowed
    # More asked for than have a result: all of them, and the first line says so.
    everything = automl(capsys, "space", "narrow", PARENT, "--top", "20")
    assert everything.startswith(
        f"# Narrowed '{PARENT}' to all 8 trials with a result that did not fail (asked "
    )
    as_json = tmp_path / "narrowed.json"
    automl(capsys, "space", "narrow", PARENT, "--top", "3", "--out", str(as_json))
    assert SearchSpace.from_file(as_json) == narrowed

    conn = connect(on_digits)
    try:
        parent = repo.get_experiment(conn, PARENT)
        ranked = sorted(
            repo.finished_trials(conn, parent.id),
            key=lambda f: (-f.best_valid_accuracy, f.trial_id),
        )
        assert len(ranked) == 8
        assert all(narrowed.contains(f.config) for f in ranked[:3])
        history = parent_history(conn, PARENT, narrowed)
    finally:
        conn.close()
    assert len(history) >= 3

    printed = automl(capsys, *run_argv(cluster, CHILD, "--narrow-from", PARENT, "--top", "3",
                                       "--method", "hyperopt", "--batches", "2",
                                       "--batch-size", "2", "--seed", "5"))  # fmt: skip
    assert f"Narrowed '{PARENT}' to its top 3 trials" in printed

    conn = connect(on_digits)
    try:
        child = repo.get_experiment(conn, CHILD)
        trials = repo.get_trials(conn, child.id)
        assert child.status == "completed"
    finally:
        conn.close()
    assert child.parent_experiment == PARENT
    assert SearchSpace.from_dict(child.spec["space"]) == narrowed
    assert len(trials) == 4 and all(narrowed.contains(t.config) for t in trials)

    # The first batch is TPE's proposal from the parent's results, not a random start-up.
    request = SearchRequest.from_spec(child.dataset, child.seed, child.spec)
    assert HyperoptSearch.from_history(
        narrowed, history, seed=5, n_startup_jobs=startup_trials(None, 4)
    ).uses_tpe
    first = [t.config for t in trials if t.batch == 0]
    batch_0 = plan.search_plan(request).group("batch", 0)
    assert [c for _, c in plan.group_trials(request, batch_0, lambda _: history)] == first
    assert [c for _, c in plan.group_trials(request, batch_0)] != first

    # A rerun of the child gets its stored space back, whatever --top says now.
    rerun = dataclasses.replace(request, space={}, name=CHILD, parent_experiment=None)
    again, narrowing = narrow_request(rerun, PARENT, top=8)
    assert narrowing is None and again.space == child.spec["space"]

    # The report names the parent.
    automl(capsys, "report", CHILD, "--out", str(tmp_path / "report"))
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert f"narrowed from</th><td>{PARENT}" in page


def test_narrowing_refuses_what_it_cannot_use(
    on_digits: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    message = refused(capsys, on_digits, "space", "narrow", "no-such-experiment")
    assert "There is no experiment named 'no-such-experiment'" in message
    conn = connect(on_digits)
    try:
        repo.create_experiment(conn, name="narrow-untrained", method="random", dataset="digits",
                               spec={"space": SPACE}, seed=0)  # fmt: skip
    finally:
        conn.close()
    message = refused(capsys, on_digits, "space", "narrow", "narrow-untrained")
    assert "has no trial with a validation result" in message
    argv = ["run", "--data", "digits", "--method", "random", "--no-progress", "--name", "x"]
    message = refused(capsys, on_digits, *argv, "--narrow-from", "narrow-untrained")
    assert "has no trial with a validation result" in message
    message = refused(capsys, on_digits, *argv, "--narrow-from", "narrow-untrained", "--top", "0")
    assert "--top is 0, but must be an integer from 1" in message
    message = refused(capsys, on_digits, "space", "narrow", "narrow-untrained", "--out", "a.txt")
    assert "--out a.txt" in message
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE), encoding="utf-8")
    message = refused(capsys, on_digits, *argv, "--space", str(space_file), "--top", "3")
    assert "--top goes with --narrow-from" in message
    # --space and --narrow-from are one or the other (argparse's usage error, exit 2).
    with pytest.raises(SystemExit) as info:
        main([*argv, "--space", str(space_file), "--narrow-from", "narrow-untrained"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_narrowing_on_a_database_without_experiments_writes_nothing(db_url: str) -> None:
    # validate_conf calls this before anything is written: it created the whole schema.
    from automl_core.errors import UserInputError

    request = SearchRequest.with_budget(
        {"epochs": 1, "n": 2}, dataset="digits", space={"lr": 0.1}, method="random"
    )
    with pytest.raises(UserInputError, match=r"no experiment named 'nope'.*holds no exp"):
        narrow_request(request, "nope", db_url=db_url)
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'automl'")
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_a_narrowed_space_too_small_for_the_search_points_to_a_larger_top(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It said "add values or a range to the space", a space the user never wrote.
    from automl_core.errors import SpaceTooSmallError
    from automl_core.experiment import narrowing

    tiny = {"architecture": "mlp", "hidden": [32, 64]}
    monkeypatch.setattr(
        narrowing,
        "narrow_experiment_in",
        lambda conn, parent, top: narrowing.NarrowedSpace(parent, top, (1,), tiny, ()),
    )
    request = SearchRequest.with_budget(
        {"epochs": 1, "n": 4}, dataset="digits", space={}, method="random", name="second"
    )
    with pytest.raises(SpaceTooSmallError, match=r"has 2 distinct.*'first'.*top 1.*--top"):
        narrowing.narrow_request_in(conn, request, "first", top=1)


def test_a_rerun_of_a_narrowed_search_with_other_settings_is_refused_before_resuming(
    conn: Any,
) -> None:
    # It logged "resuming second" (the CLI printed it), then create_experiment refused.
    from automl_core.errors import UserInputError
    from automl_core.experiment.api import experiment_definition
    from automl_core.experiment.narrowing import narrow_request_in

    repo.create_experiment(conn, name="first", method="random", dataset="digits",
                           spec={"space": SPACE}, seed=0)  # fmt: skip
    second = SearchRequest.with_budget(
        {"epochs": 1, "n": 2}, dataset="digits", space=SPACE, method="random",
        name="second", parent_experiment="first",
    )  # fmt: skip
    repo.create_experiment(conn, **experiment_definition(second))
    other_epochs = SearchRequest.with_budget(
        {"epochs": 3, "n": 2}, dataset="digits", space={}, method="random", name="second"
    )
    with pytest.raises(UserInputError, match="'second' is taken.*different spec"):
        narrow_request_in(conn, other_epochs, "first")
    same = SearchRequest.with_budget(
        {"epochs": 1, "n": 2}, dataset="digits", space={}, method="random", name="second"
    )
    resumed, narrowed = narrow_request_in(conn, same, "first")
    assert narrowed is None and resumed.space == SPACE
