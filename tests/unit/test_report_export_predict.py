"""Pure parts of exporting and predicting: the label column type, COPY text rows, and
reading an export's card back into what normalisation needs."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from automl_core.data.reader import normalize
from automl_core.export import CARD_FORMAT, ExportedModel
from automl_core.predict import copy_rows, label_sql_type


@pytest.mark.parametrize(
    ("classes", "source_type", "expected"),
    [
        ([0, 1, 2], None, "bigint"),
        ([0, 1, 2], "integer", "integer"),
        (["cat", "dog"], None, "text"),
        (["cat", "dog"], "text", "text"),
        ([True, False], None, "text"),  # booleans are not integers here
        ([1, "b"], None, "text"),
        ([1, 2], "real[]", "bigint"),  # an odd label column type is not copied
    ],
)
def test_label_sql_type(classes: list[Any], source_type: str | None, expected: str) -> None:
    assert label_sql_type(classes, source_type) == expected


def _parse_copy_text(text: str) -> list[list[str | None]]:
    """Decode COPY's text format (the inverse of what the server does on input)."""
    escapes = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
    rows = []
    for line in text.split("\n")[:-1]:  # COPY ends rows at \n only (not at \x1e etc.)
        fields: list[str | None] = []
        for raw in line.split("\t"):
            if raw == "\\N":
                fields.append(None)
                continue
            out, i = [], 0
            while i < len(raw):
                if raw[i] == "\\":
                    out.append(escapes[raw[i + 1]])
                    i += 2
                else:
                    out.append(raw[i])
                    i += 1
            fields.append("".join(out))
        rows.append(fields)
    return rows


# NUL cannot be stored in a PostgreSQL text value, so no label holds one.
@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
        min_size=1,
    )
)
def test_copy_rows_round_trip_any_label(labels: list[str]) -> None:
    ids = np.arange(len(labels), dtype=np.int64) + 10
    probs = np.linspace(0.1, 0.9, len(labels)).astype(np.float32)
    parsed = _parse_copy_text(copy_rows(ids, labels, probs).getvalue())
    assert [r[1] for r in parsed] == labels
    assert [int(r[0] or "") for r in parsed] == ids.tolist()
    assert np.array_equal(np.array([float(r[2] or "") for r in parsed], dtype=np.float32), probs)


def test_copy_rows_none_label_is_null() -> None:
    text = copy_rows(np.array([1]), [None], np.array([0.5])).getvalue()
    assert next(csv.reader(io.StringIO(text), delimiter="\t")) == ["1", "\\N", "0.5"]


def test_exported_model_feeds_normalisation() -> None:
    card = {
        "format": CARD_FORMAT,
        "data": {
            "dataset": "imgs",
            "feature_shape": [1, 2, 2],
            "num_classes": 2,
            "class_values": ["a", "b"],
            "normalization": {"mean": 2.0, "std": 4.0},
            "partitions": 3,
        },
    }
    model = ExportedModel(config={}, state=b"", card=card)
    info = model.dataset_info()
    assert (info.feature_shape, info.num_classes, info.partitions) == ((1, 2, 2), 2, 3)
    x = normalize(np.array([[2.0, 6.0, -2.0, 10.0]]), info)
    assert x.shape == (1, 1, 2, 2) and x.ravel().tolist() == [0.0, 1.0, -1.0, 2.0]
