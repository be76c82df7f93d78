"""The leaderboard (DataFrame, SQL views, CLI) and the HTML report, on real PostgreSQL.

Experiments are built with the repository's own writes, with metrics chosen so that
every derived number (rank, best/final accuracy, epochs, time, rung, utilisation) has
one right answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl_core.cli import main
from automl_core.errors import UserInputError
from automl_core.mop.types import JobRecord
from automl_core.report import LEADERBOARD_COLUMNS, leaderboard, write_report
from automl_core.report.leaderboard import epoch_history, job_log, rung_results
from automl_core.store import repository as repo
from automl_core.store.dialect import Dialect
from automl_core.store.repository import RungEntry, TrialRow
from automl_core.store.views import create_views

EPOCH_SECONDS = 2.0


@dataclass
class T:
    """A synthetic trial: validation accuracy per epoch (empty: it never finished one)."""

    trial_id: int
    accs: Sequence[float]
    status: str = "completed"
    bracket: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def loss_of(acc: float) -> float:
    return round(2.0 * (1.0 - acc) + 0.1, 6)


def add_experiment(conn: Any, name: str, method: str, trials: Sequence[T]) -> int:
    """Write the experiment, its trials and epochs, and a job log on 2 partitions.

    Jobs: each epoch of each trial is one job per partition, laid end to end per
    partition starting at t=1000 s; partition 1 idles 1 s before each of its jobs.
    """
    exp = repo.create_experiment(
        conn, name=name, method=method, dataset="toy", spec={"method": method}, seed=3
    )
    repo.upsert_trials(
        conn,
        exp.id,
        [
            TrialRow(
                t.trial_id,
                t.config or {"architecture": "mlp", "lr": 0.1 / (t.trial_id + 1)},
                bracket=t.bracket,
            )  # fmt: skip
            for t in trials
        ],
    )
    clock = {0: 1000.0, 1: 1000.0}
    jobs = []
    for t in trials:
        for epoch, acc in enumerate(t.accs, start=1):
            repo.record_epoch(conn, exp.id, t.trial_id, epoch, train_loss=1.0,
                              train_accuracy=acc, valid_loss=loss_of(acc), valid_accuracy=acc,
                              seconds=EPOCH_SECONDS, samples=100)  # fmt: skip
            for partition in (0, 1):
                start = clock[partition] + partition  # partition 1 waits 1 s
                jobs.append(
                    JobRecord(
                        t.trial_id, epoch, partition, "train", f"w{partition}", start, start + 3
                    )
                )
                clock[partition] = start + 3
        repo.set_trial_status(conn, exp.id, [t.trial_id], t.status, t.error)
    repo.record_jobs(conn, exp.id, jobs)
    return exp.id


MIXED = [
    T(0, [0.5, 0.6, 0.55]),
    T(1, [0.7, 0.9, 0.8]),
    T(2, [0.9]),  # ties trial 1's best: the lower id ranks first
    T(3, [], status="failed", error="CUDA out of memory"),
    T(4, [0.2, 0.4]),
]


def test_leaderboard_order_columns_and_values(conn: Any) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    df = leaderboard(conn, "mixed")
    assert tuple(df.columns) == LEADERBOARD_COLUMNS
    assert df["trial_id"].tolist() == [1, 2, 0, 4, 3]
    assert df["rank"].tolist() == [1, 2, 3, 4, 5]
    first = df.iloc[0]
    assert first["best_valid_accuracy"] == 0.9 and first["best_epoch"] == 2
    assert first["final_valid_accuracy"] == 0.8
    assert first["final_valid_loss"] == pytest.approx(loss_of(0.8))
    assert first["best_valid_loss"] == pytest.approx(loss_of(0.9))
    assert first["epochs"] == 3 and first["train_seconds"] == pytest.approx(3 * EPOCH_SECONDS)
    assert first["config"] == {"architecture": "mlp", "lr": 0.05}
    failed = df.iloc[-1]
    assert failed["status"] == "failed" and failed["error"] == "CUDA out of memory"
    assert failed["epochs"] == 0 and failed["train_seconds"] == 0
    assert pd.isna(failed["best_valid_accuracy"]) and pd.isna(failed["best_epoch"])
    assert pd.isna(failed["rung"]) and pd.isna(failed["bracket"])
    assert leaderboard(conn, "mixed", limit=2)["trial_id"].tolist() == [1, 2]


def test_trial_ids_have_one_dtype_in_every_frame_even_empty(conn: Any) -> None:
    # A merge of the leaderboard with the epochs on trial_id keeps its rows only when the
    # keys' dtypes agree; an experiment with nothing trained yet gives empty frames.
    add_experiment(conn, "mixed", "random", MIXED)
    add_experiment(conn, "empty", "random", [])
    for name in ("mixed", "empty"):
        frames = {
            "leaderboard": leaderboard(conn, name),
            "epochs": epoch_history(conn, name),
            "rungs": rung_results(conn, name),
            "jobs": job_log(conn, name),
        }
        for what, df in frames.items():
            assert df["trial_id"].dtype == "int64", (name, what)
        board = frames["leaderboard"]
        assert board["epochs"].dtype == "int64" and board["best_epoch"].dtype == "Int64"
    both = leaderboard(conn, "mixed").merge(epoch_history(conn, "mixed"), on="trial_id")
    assert len(both) == sum(len(t.accs) for t in MIXED)


def test_a_trial_that_failed_after_training_ranks_after_the_others(conn: Any) -> None:
    # Its epochs stay (and show), but a failure is not the model to hand over: the
    # leaderboard's first row is what export and the report call the best.
    trials = [*MIXED, T(5, [0.95, 0.97], status="failed", error="the job kept failing")]
    add_experiment(conn, "late-failure", "random", trials)
    df = leaderboard(conn, "late-failure")
    assert df["trial_id"].tolist() == [1, 2, 0, 4, 5, 3]
    assert df.iloc[4]["best_valid_accuracy"] == 0.97


def test_views_agree_with_the_dataframe_across_experiments(conn: Any) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    add_experiment(conn, "other", "grid", [T(0, [0.1]), T(1, [0.3, 0.2])])
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT experiment, {', '.join(LEADERBOARD_COLUMNS)} FROM automl.leaderboard "
            "ORDER BY experiment, rank"
        )
        rows = cur.fetchall()
        cur.execute("SELECT count(*), count(DISTINCT experiment) FROM automl.trial_summary")
        summary_counts = cur.fetchone()
    conn.rollback()
    assert summary_counts == (7, 2)
    for name in ("mixed", "other"):
        df = leaderboard(conn, name)
        view_rows = [r[1:] for r in rows if r[0] == name]
        frame_rows = [tuple(rec.values()) for rec in df.astype(object).to_dict("records")]
        assert len(view_rows) == len(frame_rows)
        for v, f in zip(view_rows, frame_rows, strict=True):
            assert [None if pd.isna(x) else x for x in f] == list(v)
    assert [r[2] for r in rows if r[0] == "other"] == [1, 0]  # its own ranking


def test_migrate_creates_the_views_and_they_can_be_recreated(conn: Any) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    before = leaderboard(conn, "mixed")
    with conn.cursor() as cur:  # what migration 2 ran; CREATE OR REPLACE keeps it rerunnable
        create_views(cur, Dialect.detect(conn))
        cur.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'automl' "
            "ORDER BY table_name"
        )
        assert [r[0] for r in cur.fetchall()] == ["leaderboard", "trial_summary"]
    conn.commit()
    pd.testing.assert_frame_equal(leaderboard(conn, "mixed"), before)


def test_hyperband_rung_reached(conn: Any) -> None:
    trials = [T(i, [0.3 + 0.1 * i] * (3 if i >= 2 else 1), bracket=1) for i in range(4)]
    exp_id = add_experiment(conn, "hb", "hyperband", trials)
    repo.upsert_rung(conn, exp_id, 1, 0, [RungEntry(i, 1) for i in range(4)])
    repo.set_rung_results(conn, exp_id, 1, 0, [(i, 0.3 + 0.1 * i, i >= 2, None) for i in range(4)])
    repo.upsert_rung(conn, exp_id, 1, 1, [RungEntry(2, 3), RungEntry(3, 3)])
    repo.set_rung_results(conn, exp_id, 1, 1, [(2, 0.5, None, None), (3, 0.6, None, None)])
    df = leaderboard(conn, "hb").set_index("trial_id")
    assert df["rung"].to_dict() == {3: 1, 2: 1, 1: 0, 0: 0}
    assert df["bracket"].tolist() == [1, 1, 1, 1]


def test_unknown_experiment_and_bad_limit(conn: Any) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    with pytest.raises(UserInputError, match="'nope'.*'mixed'"):
        leaderboard(conn, "nope")
    with pytest.raises(UserInputError, match="limit"):
        leaderboard(conn, "mixed", limit=0)
    # A name that looks like SQL is just a name that does not exist.
    with pytest.raises(UserInputError, match="no experiment named"):
        leaderboard(conn, "x'; DROP TABLE automl.trials; --")
    assert len(leaderboard(conn, "mixed")) == 5


def test_cli_leaderboard_table_and_json(conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    assert main(["leaderboard", "mixed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["rank", "trial", "status"]
    assert [int(line.split()[1]) for line in lines[2:]] == [1, 2, 0, 4, 3]
    # The config column shows what differs: every trial here is an mlp.
    assert lines[2].endswith("  lr=0.05") and "0.9000" in lines[2]
    assert main(["leaderboard", "mixed", "--json", "--limit", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["trial_id"] for d in data] == [1, 2, 0]
    assert data[0]["config"] == {"architecture": "mlp", "lr": 0.05}
    assert data[0]["bracket"] is None and isinstance(data[0]["created_at"], str)
    assert main(["leaderboard", "missing"]) == 2
    assert "missing" in capsys.readouterr().err


# --- the report -------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects image sources and table rows of a page (and fails on nothing: it counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows = 0
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        elif tag == "tr":
            self.rows += 1
        elif tag == "script":
            self.scripts += 1


def _hyperband_rungs(conn: Any, exp_id: int) -> None:
    repo.upsert_rung(conn, exp_id, 1, 0, [RungEntry(i, 1) for i in range(3)])
    repo.set_rung_results(conn, exp_id, 1, 0, [(0, 0.5, False, "below"), (1, 0.7, True, "top"),
                                                (2, 0.6, False, "below")])  # fmt: skip
    repo.upsert_rung(conn, exp_id, 1, 1, [RungEntry(1, 3)])
    repo.set_rung_results(conn, exp_id, 1, 1, [(1, 0.9, None, None)])
    repo.upsert_rung(conn, exp_id, 0, 0, [RungEntry(3, 3)])
    repo.set_rung_results(conn, exp_id, 0, 0, [(3, 0.4, None, None)])


BASE_PLOTS = {
    "accuracy_histogram.png",
    "best_by_trial.png",
    "best_by_time.png",
    "hyperparameters.png",
    "learning_curves.png",
    "workers.png",
}


@pytest.mark.parametrize("method", ["grid", "random", "hyperband", "hyperopt"])
def test_report_renders_for_each_method(conn: Any, tmp_path: Path, method: str) -> None:
    trials = [
        T(0, [0.5], bracket=1),
        T(1, [0.6, 0.8, 0.9], bracket=1),
        T(2, [0.6], bracket=1, config={"architecture": "mlp", "note": "<script>x</script>"}),
        T(3, [0.4, 0.4, 0.4], bracket=0),
        T(4, [], status="failed", error="worker <died>"),
    ]
    exp_id = add_experiment(conn, f"exp_{method}", method, trials)
    if method == "hyperband":
        _hyperband_rungs(conn, exp_id)
    index = write_report(conn, f"exp_{method}", tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    text = index.read_text()
    page = _Page()
    page.feed(text)
    expected = BASE_PLOTS | ({"hyperband_rungs.png"} if method == "hyperband" else set())
    assert set(page.images) == expected
    assert {p.name for p in index.parent.glob("*.png")} == expected
    for name in expected:
        assert (index.parent / name).read_bytes().startswith(b"\x89PNG")
    # No script from a configuration value reaches the page; the error text is escaped.
    assert page.scripts == 0 and "&lt;script&gt;" in text and "worker &lt;died&gt;" in text
    assert f"Experiment exp_{method}" in text and method in text
    # Summary: 5 trials, the best, and utilisation from the job log: 8 epochs of 3 s on
    # each of 2 partitions; partition 1 idles 1 s before each job, so the wall is 8*4 s.
    assert "5 (4 completed, 1 failed)" in text
    assert "#1: validation accuracy 0.9000 (epoch 3)" in text
    assert "75.0% (48.0 busy worker-seconds / (2 workers x 32.0 s))" in text
    # The leaderboard table has a row per trial (plus its header and the summary rows).
    ranks = re.findall(r"<tr[^>]*><td class='num'>(\d+)</td><td class='num'>(\d+)</td>", text)
    assert [int(t) for _, t in ranks] == [1, 2, 0, 3, 4]


def test_report_with_only_failed_trials(conn: Any, tmp_path: Path) -> None:
    add_experiment(conn, "broken", "random", [T(0, [], status="failed"), T(1, [], status="failed")])
    index = write_report(conn, "broken", tmp_path)
    text = index.read_text()
    assert "No trial has a validation result yet." in text
    assert "No sub-epoch job has finished yet." in text
    assert list(tmp_path.glob("*.png")) == []
    assert "2 (2 failed)" in text


def test_report_bad_input_writes_nothing(conn: Any, tmp_path: Path) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    with pytest.raises(UserInputError, match="existing file"):
        write_report(conn, "mixed", a_file)
    with pytest.raises(UserInputError, match="no experiment named"):
        write_report(conn, "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_report(conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_experiment(conn, "mixed", "hyperopt", MIXED)
    assert main(["report", "mixed", "--out", str(tmp_path / "r"), "--top", "2"]) == 0
    assert str(tmp_path / "r" / "index.html") in capsys.readouterr().out
    assert "top 2 trials" in (tmp_path / "r" / "index.html").read_text()


def test_report_refuses_files_it_did_not_write(conn: Any, tmp_path: Path) -> None:
    add_experiment(conn, "mixed", "random", MIXED)
    site = tmp_path / "site"
    site.mkdir()
    for name in ("index.html", "workers.png"):
        (site / name).write_text("mine")
        with pytest.raises(UserInputError, match=f"holds '.*{name}', which was not written"):
            write_report(conn, "mixed", site)
        assert [p.name for p in site.iterdir()] == [name] and (site / name).read_text() == "mine"
        (site / name).unlink()
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        write_report(conn, "mixed", tmp_path / "taken" / "sub")
    # Its own report it replaces; so too one written before the marker was added.
    write_report(conn, "mixed", site)
    index = write_report(conn, "mixed", site)
    old = index.read_text().replace('<meta name="generator" content="automl report">', "")
    index.write_text(old)
    assert write_report(conn, "mixed", site) == index


def test_a_report_cut_short_is_written_again_into_its_folder(
    conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed after a plot and before the page, it left plots without an index.html, and
    # the folder was refused as not a report's: a retried finalize task failed for good.
    from automl_core.report import plots

    add_experiment(conn, "cut", "random", MIXED)
    site = tmp_path / "site"
    real = plots.plot_best_by_trial

    def killed(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_best_by_trial", killed)
    with pytest.raises(KeyboardInterrupt):
        write_report(conn, "cut", site)
    monkeypatch.undo()
    assert "Report being written" in (site / "index.html").read_text()
    index = write_report(conn, "cut", site)
    assert "Report being written" not in index.read_text()
