"""An exported model predicts raw rows in memory as `automl predict` scores a table.

A review found no way to predict an array or a DataFrame in a notebook but chaining
internals, and the engine's `predict` given raw (un-normalised) rows answered wrongly
without an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl_core.export import export_best, load_exported
from tests.integration.test_export_s3 import (
    build_trained_experiment,
    reference_predictions,
)


def _raw_rows(conn: Any, table: str = "toy") -> tuple[list[int], np.ndarray]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, features FROM {table} ORDER BY id")
        rows = cur.fetchall()
    conn.rollback()
    return [r[0] for r in rows], np.array([r[1] for r in rows])


def test_an_exported_model_predicts_arrays_frames_and_series_of_raw_rows(
    conn: Any, tmp_path: Path
) -> None:
    build_trained_experiment(conn, "exp", "toy")
    export_best(conn, "exp", str(tmp_path / "export"))
    model = load_exported(str(tmp_path / "export"))
    ids, x = _raw_rows(conn)
    want = reference_predictions(conn, 1, "toy")  # the table's scores, by the engine
    assert [r[0] for r in want] == ids
    labels = [r[1] for r in want]
    assert model.predict(x) == labels
    proba = model.predict_proba(x)
    assert proba.shape == (90, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(proba.max(axis=1), [r[2] for r in want], rtol=1e-6, atol=1e-7)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)])
    series = pd.Series(list(x))  # per-row arrays, as pd.read_sql gives a real[] column
    assert model.predict(frame) == labels and model.predict(series) == labels
    assert model.predict(x[0]) == labels[:1]  # one row


def test_per_feature_statistics_score_raw_rows_as_the_packed_rows(
    conn: Any, tmp_path: Path
) -> None:
    # A CSV of columns in their own units is packed per feature: the export's card, the
    # in-memory model and `automl predict`/`evaluate` must normalise raw rows with the
    # same per-feature statistics (a card with lists was refused before).
    from automl_core.data.reader import dataset_info, normalize, read_partition
    from automl_core.evaluate import evaluate_table
    from automl_core.predict import predict_table
    from automl_core.training.engine import predict_proba

    build_trained_experiment(conn, "exp", "cols", "integer", csv_dir=tmp_path)
    info = dataset_info(conn, "cols")
    assert len(info.normalization["mean"]) == 4  # type: ignore[arg-type]
    export_best(conn, "exp", str(tmp_path / "export"))
    model = load_exported(str(tmp_path / "export"))
    assert model.card["data"]["normalization"] == info.normalization
    assert model.card["data"]["normalization_formula"].startswith("(x[i] - mean[i]) / std[i]")
    ids, x = _raw_rows(conn, "cols")
    assert x[:, 0].min() > 1e5 and x[:, 1].max() < 1e-1  # raw: in their own units
    # The packed path: the rows training read. Each is one raw row as the card
    # normalises it, bit for bit.
    packed = np.concatenate(
        [read_partition(conn, "cols", p, s, info=info)[0] for s in ("train", "valid")
         for p in range(info.partitions)]
    )  # fmt: skip
    mine = normalize(x, model.dataset_info())
    position = {row.tobytes(): i for i, row in enumerate(mine)}
    order = [position[row.tobytes()] for row in packed]
    assert sorted(order) == list(range(90))
    want = predict_proba(model.config, model.state, packed, input_shape=(4,), num_classes=3)
    got = model.predict_proba(x)[order]
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7)
    # `automl predict` on the raw table, and `automl evaluate` with its labels
    predict_table(conn, source_table="cols", out_table="cols_scored", model=model)
    with conn.cursor() as cur:
        cur.execute("SELECT predicted FROM cols_scored ORDER BY id")
        scored = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT label FROM cols ORDER BY id")
        labels = [r[0] for r in cur.fetchall()]
    conn.rollback()
    assert scored == model.predict(x)
    accuracy = np.mean(np.array(scored) == np.array(labels))
    assert evaluate_table(conn, "exp", "cols").accuracy == pytest.approx(accuracy)


def test_a_model_trained_on_a_csv_reads_a_dataframe_by_column_name(
    conn: Any, tmp_path: Path
) -> None:
    # The CSV's column names were thrown away at load: pd.read_csv of a file whose columns
    # came in another order was scored with the wrong features, silently when the count
    # matched; with an id or the label still in it, it was a shape error.
    from automl_core.data.reader import dataset_info
    from automl_core.errors import UserInputError

    build_trained_experiment(conn, "exp", "cols", "integer", csv_dir=tmp_path)
    assert dataset_info(conn, "cols").feature_names == ("a", "b", "c", "d")
    export_best(conn, "exp", str(tmp_path / "export"))
    model = load_exported(str(tmp_path / "export"))
    assert model.card["data"]["feature_names"] == ["a", "b", "c", "d"]
    _, x = _raw_rows(conn, "cols")
    want = model.predict(x)
    frame = pd.read_csv(tmp_path / "cols.csv")  # a, b, c, d, label: the training file
    assert model.predict(frame) == want
    shuffled = frame.assign(id=range(90))[["id", "d", "label", "b", "a", "c"]]
    assert model.predict(shuffled) == want
    assert np.array_equal(model.predict_proba(shuffled), model.predict_proba(x))
    reordered = frame[["d", "c", "b", "a"]]
    assert model.predict(reordered) == want
    assert model.predict(reordered.to_numpy()) != want  # by position: other answers
    with pytest.raises(UserInputError, match=r"no column 'c' \(1 of the model's 4 features\)"
                       r": .* data set 'cols', whose features are the columns 'a', 'b'"):  # fmt: skip
        model.predict(frame.drop(columns="c"))
    assert model.predict(pd.DataFrame(x)) == want  # columns 0..3: by position, as an array
    assert model.predict(shuffled.iloc[3]) == want[3:4]  # one row, by its index's names
    holed = frame.astype({"b": float})
    holed.loc[5, "b"] = np.nan  # an empty cell: it scored as the first class, silently
    with pytest.raises(UserInputError, match=r"Row 5 \(counting from 0\) has a missing or"):
        model.predict(holed)
    # pandas' nullable dtypes (convert_dtypes): scored, and a missing value refused by row
    assert model.predict(frame.convert_dtypes()) == want
    with pytest.raises(UserInputError, match=r"Row 5 \(counting from 0\) has a missing or"):
        model.predict(holed.convert_dtypes())
    with pytest.raises(UserInputError, match=r"not numbers .*pass the features only"):
        model.predict(pd.Series([["1", "x", "2", "3"]]))


def test_records_and_cards_without_feature_names_read_columns_by_position(
    conn: Any, tmp_path: Path
) -> None:
    # Data sets packed, experiments created and models exported before names were kept.
    import json

    from psycopg2.extras import Json

    from automl_core.data.reader import dataset_info
    from automl_core.export import best_model

    build_trained_experiment(conn, "exp", "cols", "integer", csv_dir=tmp_path)
    _, x = _raw_rows(conn, "cols")
    frame = pd.read_csv(tmp_path / "cols.csv")[["a", "b", "c", "d"]]
    want = best_model(conn, "exp").predict(x)
    old_row = {k: v for k, v in dataset_info(conn, "cols").record().items()
               if k not in ("feature_names", "source_state")}  # fmt: skip
    with conn.cursor() as cur:  # an experiment's copy of the row, as schema 9 kept it
        cur.execute("UPDATE automl.experiments SET data = %s WHERE name = 'exp'", (Json(old_row),))
    conn.commit()
    model = best_model(conn, "exp")
    assert model.card["data"]["feature_names"] is None and model.feature_names is None
    assert model.predict(frame[["d", "c", "b", "a"]]) != want  # by position, as before
    with conn.cursor() as cur:  # the data set's own row, as before schema 10
        cur.execute("UPDATE automl.experiments SET data = NULL WHERE name = 'exp'")
        cur.execute("UPDATE automl.datasets SET feature_names = NULL WHERE name = 'cols'")
    conn.commit()
    assert dataset_info(conn, "cols").feature_names is None
    export_best(conn, "exp", str(tmp_path / "export"))
    card_path = tmp_path / "export" / "model_card.json"
    card = json.loads(card_path.read_text())
    assert card["data"]["feature_names"] is None
    del card["data"]["feature_names"]  # a card written before names were kept
    card_path.write_text(json.dumps(card))
    old = load_exported(str(tmp_path / "export"))
    assert old.feature_names is None and old.predict(frame) == want
