"""Exports against a target a user may have edited: an export removes only files of its
own names, and a card's feature shape is bounded before it is used (real PostgreSQL, a
really trained experiment, a moto S3 server on loopback)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from automl_core.artifacts import artifact_store_for
from automl_core.cli import main
from automl_core.errors import UserInputError
from automl_core.export import load_exported
from tests.integration.test_export_s3 import build_trained_experiment


@pytest.fixture(params=["folder", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh folder, or a prefix in a fresh bucket (the environment names the endpoint)."""
    if request.param == "folder":
        return str(tmp_path / "export")
    request.getfixturevalue("s3_env")
    import boto3

    bucket = f"sec-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/models/best"


def test_an_export_keeps_a_file_its_old_card_names_as_weights(
    conn: Any, db_url: str, where: str
) -> None:
    """A card edited to name another file as its weights made `automl export` delete that
    file (in a folder, or any key under the prefix on S3)."""
    build_trained_experiment(conn, "exp", "toy")
    store = artifact_store_for(where)
    mine = {"sub/notes.txt": b"my notes", "model_card.json.bak": b"a backup"}
    for key, data in mine.items():
        store.put_bytes(key, data)
    for weights in ("sub/notes.txt", "model_card.json.bak"):
        card = {"format": "automl-model-card/1", "files": {"weights": weights}}
        store.put_bytes("model_card.json", json.dumps(card).encode())
        assert main(["export", "exp", "--to", where]) == 0
        for key, data in mine.items():
            assert store.get_bytes(key) == data
    assert sorted(store.list()) == [
        "model.safetensors", "model_card.json", "model_card.json.bak", "sub/notes.txt"
    ]  # fmt: skip
    assert load_exported(where).card["files"]["weights"] == "model.safetensors"


def test_an_export_still_removes_its_own_old_weights_and_stages(conn: Any, tmp_path: Path) -> None:
    build_trained_experiment(conn, "exp", "toy")
    where = str(tmp_path / "export")
    store = artifact_store_for(where)
    store.put_bytes("model.pt", b"an old export's weights")
    store.put_bytes("model.staged-0123456789ab.pt", b"a stage a failed export left")
    card = {"format": "automl-model-card/1", "files": {"weights": "model.pt"}}
    store.put_bytes("model_card.json", json.dumps(card).encode())
    assert main(["export", "exp", "--to", where]) == 0
    assert store.list() == ["model.safetensors", "model_card.json"]


def _exported_card(conn: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    build_trained_experiment(conn, "exp", "toy")
    where = tmp_path / "m"
    assert main(["export", "exp", "--to", str(where)]) == 0
    return where, json.loads((where / "model_card.json").read_text())


def test_a_card_with_a_huge_feature_shape_is_refused_before_it_is_allocated(
    conn: Any, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`"feature_shape": [1000000, 1000000]` made load_exported (and predict --model)
    die with numpy's ArrayMemoryError while building a row of zeros."""
    where, good = _exported_card(conn, tmp_path)
    for shape in ([1_000_000, 1_000_000], [2**27 + 1], [2**40, 2**40, 2**40]):
        card = {**good, "data": {**good["data"], "feature_shape": shape}}
        (where / "model_card.json").write_text(json.dumps(card))
        with pytest.raises(UserInputError, match=r"data\.feature_shape is .* features, more than"):
            load_exported(str(where))
    argv = ["predict", "--model", str(where), "--table", "toy", "--out-table", "scored"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.feature_shape" in err and "export the model again" in err


def test_a_card_that_names_other_weights_or_infinite_counts_is_refused(
    conn: Any, tmp_path: Path
) -> None:
    where, good = _exported_card(conn, tmp_path)
    notes = where / "notes.txt"
    notes.write_bytes(b"not weights")
    files = {**good["files"], "weights": "notes.txt",
             "weights_sha256": hashlib.sha256(b"not weights").hexdigest()}  # fmt: skip
    cases = [
        ({**good, "files": files}, "files.weights is 'notes.txt'"),
        # Infinity is valid to Python's json: int(inf) raised OverflowError, a traceback.
        ({**good, "data": {**good["data"], "num_classes": float("inf")}}, "not a model card"),
        ({**good, "data": {**good["data"], "feature_shape": [float("inf")]}}, "not a model card"),
    ]
    for card, message in cases:
        (where / "model_card.json").write_text(json.dumps(card))
        with pytest.raises(UserInputError, match=message):
            load_exported(str(where))
    (where / "model_card.json").write_text(json.dumps(good))
    assert load_exported(str(where)).card == good


def test_a_card_whose_feature_names_do_not_fit_is_refused(conn: Any, tmp_path: Path) -> None:
    """A card's ``data.feature_names`` choose a DataFrame's columns: names that are not
    one distinct string per feature would pick the wrong ones, or fail in pandas."""
    where, good = _exported_card(conn, tmp_path)
    assert good["data"]["feature_names"] is None  # toy is no CSV: its features have no names
    for names in (["a", "b", "c"], ["a", "b", "c", "c"], "abcd", [1, 2, 3, 4], {"a": 0}):
        card = {**good, "data": {**good["data"], "feature_names": names}}
        (where / "model_card.json").write_text(json.dumps(card))
        with pytest.raises(UserInputError, match=r"not a model card .*\(data\.feature_names is "
                           r".*, but must be a list of 4 distinct strings"):  # fmt: skip
            load_exported(str(where))
    card = {**good, "data": {**good["data"], "feature_names": ["w", "x", "y", "z"]}}
    (where / "model_card.json").write_text(json.dumps(card))
    assert load_exported(str(where)).feature_names == ("w", "x", "y", "z")
