"""A data set is searched as its table is now, and an experiment keeps the data it trained on.

A table replaced (``data load --replace``) or grown since it was packed is packed again by
the data step (``ensure_prepared``), and ``automl run``'s ``create_experiment`` warns;
a finished experiment keeps its own copy of the data set's row, so its export still
describes the data its model was trained on after the data set is packed again.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from psycopg2 import sql
from psycopg2.extras import Json

from automl_core.data.ensure import ensure_prepared
from automl_core.data.load import load_source
from automl_core.data.prepare import prepare_dataset
from automl_core.data.reader import dataset_info, experiment_dataset
from automl_core.data.sources import read_source
from automl_core.errors import UserInputError
from automl_core.experiment.api import create_experiment
from automl_core.experiment.request import SearchRequest
from automl_core.store import repository as repo
from tests.integration.test_export_s3 import build_trained_experiment

SPACE = {"architecture": "mlp", "hidden": [8, 16], "batch_size": 64}


def test_a_replaced_or_grown_table_is_packed_again(conn: Any, db_url: str) -> None:
    # A nightly DAG's prepare_data said "already packed" and searched the rows of the
    # table as first packed: the rows of a replaced table, or without the new ones.
    def ensure() -> dict[str, Any]:
        return ensure_prepared("src", partitions=2, load_if_missing="digits", db_url=db_url)

    assert ensure()["packed"] and not ensure()["packed"]  # unchanged: left alone
    load_source(conn, read_source("signals"), "src", replace=True)
    assert ensure()["packed"]
    assert dataset_info(conn, "src").feature_shape == (40,)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO src SELECT id + 100000, features, label, split FROM src LIMIT 50")
    conn.commit()
    grown = ensure()
    assert grown["packed"] and grown["n_train"] + grown["n_valid"] == 4050
    assert not ensure()["packed"]


def test_a_finished_experiment_keeps_the_data_it_trained_on(conn: Any) -> None:
    build_trained_experiment(conn, "kept", "toy")
    before = dataset_info(conn, "toy")
    with conn.cursor() as cur:  # what create_experiment stores with a new experiment
        cur.execute(
            sql.SQL("UPDATE {} SET data = %s, status = 'completed' WHERE name = 'kept'").format(
                sql.Identifier("automl", "experiments")
            ),
            (Json(before.record()),),
        )
    conn.commit()
    load_source(conn, read_source("digits"), "toy", replace=True)
    prepare_dataset(conn, "toy", partitions=2)  # other shape and classes: allowed now
    assert dataset_info(conn, "toy").feature_shape == (64,)

    from automl_core.export import best_model

    kept = experiment_dataset(conn, repo.experiment_record(conn, "kept"))
    assert kept == before
    card = best_model(conn, "kept").card["data"]
    assert card["feature_shape"] == [4] and card["class_values"] == ["cat", "dog", "eel\tx"]
    assert card["normalization"] == before.normalization


def _request(name: str) -> SearchRequest:
    return SearchRequest(dataset="digits", space=SPACE, method="grid", name=name)


def test_create_experiment_warns_of_a_changed_table_and_refuses_a_dropped_pack(
    conn: Any, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_prepared("digits", partitions=2, load_if_missing="digits", db_url=db_url)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM digits WHERE id < 7")
    conn.commit()
    with caplog.at_level(logging.WARNING):
        create_experiment(_request("on-old-rows"), db_url=db_url)
    assert (
        "The table digits has 7 rows fewer than when it was packed: this search trains"
        in caplog.text
    )
    assert "automl data prepare digits --partitions 2" in caplog.text

    with conn.cursor() as cur:  # every trial failed with UndefinedTable before
        cur.execute("DROP TABLE digits_packed")
    conn.commit()
    with pytest.raises(UserInputError, match=r"packed table 'digits_packed' of dataset 'digits' "
                       r"is missing .* run `automl data prepare digits"):  # fmt: skip
        create_experiment(_request("no-pack"), db_url=db_url)
    assert repo.list_experiments(conn) and "no-pack" not in {
        e.name for e in repo.list_experiments(conn)
    }


def test_an_experiment_does_not_go_on_over_other_data(conn: Any, db_url: str) -> None:
    ensure_prepared("digits", partitions=2, load_if_missing="digits", db_url=db_url)
    create_experiment(_request("first"), db_url=db_url)
    exp = repo.experiment_record(conn, "first")
    repo.set_experiment_status(conn, exp.id, repo.ExperimentState.FAILED, finished=True)
    prepare_dataset(conn, "digits", partitions=3)
    with pytest.raises(UserInputError, match=r"packed again since.*another name \(--name"):
        create_experiment(_request("first"), db_url=db_url)
    assert create_experiment(_request("second"), db_url=db_url)["partitions"] == 3


def test_replace_refuses_a_table_of_another_schema(conn: Any) -> None:
    # --replace dropped other.src (found through search_path) and created public.src
    # without its grants: the table moved schema.
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA other")
        cur.execute("CREATE TABLE other.src (id bigint)")
        cur.execute("SET search_path = public, other")
    conn.commit()
    with pytest.raises(UserInputError, match=r"other\.src .*created in public.*search_path"):
        load_source(conn, read_source("digits"), "src", replace=True)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('other.src') IS NOT NULL, to_regclass('public.src')")
        assert cur.fetchone() == (True, None)


def test_a_data_set_packed_before_its_state_was_recorded_is_packed_again(
    conn: Any, db_url: str
) -> None:
    # Packed by an older automl: nothing says whether its table changed since, and a
    # replaced table was searched as first packed. It is packed once more, and recorded.
    def ensure() -> dict[str, Any]:
        return ensure_prepared("src", partitions=2, load_if_missing="digits", db_url=db_url)

    ensure()
    with conn.cursor() as cur:
        cur.execute("UPDATE automl.datasets SET source_state = NULL WHERE name = 'src'")
    conn.commit()
    assert ensure()["packed"] and not ensure()["packed"]


def test_creating_an_experiment_waits_for_a_prepare_of_its_data_set(conn: Any, db_url: str) -> None:
    # A prepare that had passed its check of the experiments on the data set packed it
    # again under a search just created, whose kept copy then described the old rows.
    import threading

    from automl_core.store.connection import connect

    ensure_prepared("digits", partitions=2, load_if_missing="digits", db_url=db_url)
    preparing = connect(db_url)  # stands for a prepare between its checks and its commit
    repo.lock_dataset(preparing, "digits")
    created: list[Any] = []
    thread = threading.Thread(
        target=lambda: created.append(create_experiment(_request("waits"), db_url=db_url))
    )
    thread.start()
    thread.join(timeout=2.0)
    assert thread.is_alive() and not created  # waiting for the data set's lock
    preparing.commit()
    preparing.close()
    thread.join(timeout=60.0)
    assert not thread.is_alive() and created[0]["name"] == "waits"
