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

from automl_core.export import export_best, load_exported
from tests.integration.test_export_s3 import (
    build_trained_experiment,
    reference_predictions,
)


def _raw_rows(conn: Any) -> tuple[list[int], np.ndarray]:
    with conn.cursor() as cur:
        cur.execute("SELECT id, features FROM toy ORDER BY id")
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
