"""Artifact stores (one contract, local and S3), and exporting the best model to a folder
or S3 and predicting with it, against real PostgreSQL and a moto S3 server on loopback.

The experiment here is trained for real (a tiny MLP on a small table, through the
training engine), so the exported weights and the predictions are those of real states.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from automl_core import package_version
from automl_core.artifacts import (
    ArtifactNotFoundError,
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    artifact_store_for,
)
from automl_core.cli import main
from automl_core.data.load import load_source
from automl_core.data.prepare import prepare_dataset
from automl_core.data.reader import dataset_info, normalize, read_partition
from automl_core.data.sources import SourceData, SplitPart, read_source
from automl_core.errors import UserInputError
from automl_core.experiment import finalize
from automl_core.export import CARD_FORMAT, check_export_target, export_best, load_exported
from automl_core.predict import predict_table
from automl_core.store import repository as repo
from automl_core.store.repository import TrialRow

# --- S3 on loopback ----------------------------------------------------------------------


@pytest.fixture
def s3_client(s3_env: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3_env)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"models-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=name)
    return name


# --- one contract, every store ---------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    client = request.getfixturevalue("s3_client")
    return S3ArtifactStore(request.getfixturevalue("bucket"), "runs/exp-1", client=client)


def test_store_contract(store: ArtifactStore) -> None:
    assert store.list() == [] and not store.exists("model.pt")
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes("model.pt")
    payload = bytes(range(256)) * 64
    store.put_bytes("model.pt", payload)
    store.put_bytes("trials/2/state.pt", b"two")
    store.put_bytes("trials/10/state.pt", b"ten")
    assert store.get_bytes("model.pt") == payload
    store.put_bytes("model.pt", b"second")
    assert store.get_bytes("model.pt") == b"second"
    assert store.exists("model.pt") and not store.exists("trials")
    assert store.list() == ["model.pt", "trials/10/state.pt", "trials/2/state.pt"]
    assert store.list("trials/1") == ["trials/10/state.pt"]
    assert store.list("nothing/") == []
    for bad in ("../escape", "/abs", "a//b"):
        with pytest.raises(ValueError):
            store.put_bytes(bad, b"x")
    assert store.describe("model.pt").endswith("model.pt")
    store.delete("model.pt")
    store.delete("model.pt")  # a missing key is no error
    assert not store.exists("model.pt") and store.list() == [
        "trials/10/state.pt",
        "trials/2/state.pt",
    ]


def test_s3_keys_live_under_the_prefix(s3_client: Any, bucket: str) -> None:
    S3ArtifactStore(bucket, "a/b", client=s3_client).put_bytes("k.bin", b"1")
    S3ArtifactStore(bucket, "", client=s3_client).put_bytes("top.bin", b"2")
    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["a/b/k.bin", "top.bin"]
    # A prefix store does not see objects that only share a string prefix with it.
    S3ArtifactStore(bucket, "a/bc", client=s3_client).put_bytes("x", b"3")
    assert S3ArtifactStore(bucket, "a/b", client=s3_client).list() == ["k.bin"]


def test_a_missing_bucket_is_the_users_to_fix(
    s3_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    store = S3ArtifactStore("no-such-bucket-here", "x", client=s3_client)
    missing = "s3://no-such-bucket-here/x cannot be used: its bucket does not exist"
    for call in (store.check_writable, lambda: store.get_bytes("model.pt"),
                 lambda: store.put_bytes("model.pt", b"x"), store.list):  # fmt: skip
        with pytest.raises(UserInputError, match=missing):
            call()
    assert not store.exists("model.pt")  # a HEAD's 404 cannot tell; check_writable can
    # Passed before, so `automl run --export` trained, then PutObject failed after it all.
    with pytest.raises(UserInputError, match=missing):
        check_export_target("s3://no-such-bucket-here/x")
    assert main(["export", "exp", "--to", "s3://no-such-bucket-here/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and "create it" in err


def test_default_client_comes_from_the_environment(s3_env: str, bucket: str) -> None:
    store = artifact_store_for(f"s3://{bucket}/env")  # no client: built from AWS_* variables
    store.put_bytes("hello.txt", b"hi")
    assert artifact_store_for(f"s3://{bucket}/env/").get_bytes("hello.txt") == b"hi"


# --- a really trained experiment ---------------------------------------------------------

CONFIGS = {
    0: {"architecture": "mlp", "hidden": 8, "lr": 0.05, "batch_size": 16, "optimizer": "adam"},
    1: {"architecture": "mlp", "hidden": 16, "lr": 0.02, "batch_size": 8, "optimizer": "sgd"},
}
# Recorded validation accuracy per epoch: trial 1 is best (0.9 at epoch 2) and its last
# epoch is worse (0.8): the model ranked first, exported and predicted with, is its
# state at epoch 2, not its latest checkpoint (epoch 3).
ACCURACIES = {0: [0.5, 0.7], 1: [0.6, 0.9, 0.8]}
BEST_EPOCH = 2
# Every state as trained, by (table, trial, epoch): what each epoch's model really is.
TRAINED: dict[tuple[str, int, int], bytes] = {}


def _load_toy(conn: Any, table: str, labels: str, csv_dir: Path | None = None) -> None:
    """90 rows of 4 raw (un-normalised) features; 3 classes, text or integer labels.

    With ``csv_dir`` the features are columns in their own units (~1e6, ~1e-3, ~5, ~250),
    loaded from a CSV file written there: packed with per-feature statistics."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(90, 4)) * 3 + 5).astype(np.float32)
    cls = (x[:, 0] > 5).astype(int) + (x[:, 1] > 5).astype(int)
    values = np.array(["cat", "dog", "eel\tx"])[cls] if labels == "text" else cls * 10 + 7
    label_type = "text" if labels == "text" else "integer"
    data = SourceData(table, (4,), label_type, (SplitPart("train", x, values),))
    if csv_dir is not None:
        scale = np.array([2e5, 1e-3, 1.0, 50.0], dtype=np.float32)
        x = x * scale + np.array([1e6, 0.0, 0.0, 0.0], dtype=np.float32)
        path = csv_dir / f"{table}.csv"
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["a", "b", "c", "d", "label"])
            # repr of a float32 as float64 reads back as the same float32
            for row, value in zip(x.tolist(), values, strict=True):
                out.writerow([*map(repr, row), value])
        data = read_source(f"csv:{path}")
    load_source(conn, data, table)
    prepare_dataset(conn, table, partitions=2, seed=0)


def build_trained_experiment(
    conn: Any, name: str, table: str, labels: str = "text", *, csv_dir: Path | None = None
) -> int:
    """Load and prepare ``table`` (``_load_toy``), then train 2 trials through the engine,
    epoch by epoch."""
    from automl_core.training.engine import train_partition

    _load_toy(conn, table, labels, csv_dir)
    info = dataset_info(conn, table)
    parts = [read_partition(conn, table, p, "train", info=info) for p in range(info.partitions)]
    exp = repo.create_experiment(
        conn, name=name, method="random", dataset=table, seed=5,
        spec={"method": "random", "budget": {"n": 2}, "space": {}},  # enough for finalize
        airflow_run_id="manual__2025-01-01",
    )  # fmt: skip
    repo.upsert_trials(conn, exp.id, [TrialRow(t, c) for t, c in CONFIGS.items()])
    for trial, config in CONFIGS.items():
        state = None
        for epoch, acc in enumerate(ACCURACIES[trial], start=1):
            for x, y in parts:  # every model visits every partition once per epoch
                state, _ = train_partition(config, state, x, y, input_shape=info.feature_shape,
                                           num_classes=info.num_classes, epoch=epoch,
                                           seed=trial)  # fmt: skip
            repo.record_epoch(conn, exp.id, trial, epoch, train_loss=0.5, train_accuracy=acc,
                              valid_loss=1.0 - acc, valid_accuracy=acc, seconds=0.1,
                              samples=info.n_train)  # fmt: skip
            repo.save_checkpoint(conn, exp.id, trial, epoch, state=state)
            TRAINED[table, trial, epoch] = state
        repo.set_trial_status(conn, exp.id, [trial], "completed")
    return exp.id


def reference_predictions(
    conn: Any, trial: int, table: str, epoch: int = BEST_EPOCH
) -> list[tuple[Any, ...]]:
    """(id, label, probability) from the trial's state as trained at ``epoch``, by the
    engine directly."""
    from automl_core.training.engine import predict, predict_proba

    info = dataset_info(conn, table)
    state = TRAINED[table, trial, epoch]
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, features FROM {table} ORDER BY id")
        rows = cur.fetchall()
    conn.rollback()
    x = normalize(np.array([r[1] for r in rows]), info)
    kw = {"input_shape": info.feature_shape, "num_classes": info.num_classes}
    index = predict(CONFIGS[trial], state, x, **kw)
    proba = predict_proba(CONFIGS[trial], state, x, **kw).max(axis=1)
    labels = [info.class_values[i] for i in index]
    return [(r[0], lab, float(p)) for r, lab, p in zip(rows, labels, proba, strict=True)]


def read_table(conn: Any, table: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, predicted, probability FROM {table} ORDER BY id")
        rows = cur.fetchall()
    conn.rollback()
    return rows


def assert_same_predictions(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert [r[:2] for r in got] == [r[:2] for r in want]
    assert np.allclose([r[2] for r in got], [r[2] for r in want], rtol=1e-6, atol=1e-7)


@pytest.fixture(params=["folder", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """(target, s3 client or None): a fresh folder, or a prefix in a fresh bucket."""
    if request.param == "folder":
        return str(tmp_path / "export"), None
    return f"s3://{request.getfixturevalue('bucket')}/exports/best", request.getfixturevalue(
        "s3_client"
    )


def test_export_reimport_and_predict(conn: Any, target: tuple[str, Any]) -> None:
    where, client = target
    exp_id = build_trained_experiment(conn, "exp", "toy")
    card = export_best(conn, "exp", where, s3_client=client)

    assert card["format"] == CARD_FORMAT and card["architecture"] == "mlp"
    assert card["config"] == CONFIGS[1] and card["trial"]["trial_id"] == 1
    assert card["checkpoint"]["epoch"] == BEST_EPOCH and card["checkpoint"]["kind"] == "best"
    assert card["checkpoint"]["valid_accuracy"] == 0.9
    assert card["metrics"]["best_valid_accuracy"] == 0.9 and card["metrics"]["best_epoch"] == 2
    assert [h["valid_accuracy"] for h in card["metrics"]["history"]] == ACCURACIES[1]
    info = dataset_info(conn, "toy")
    conn.rollback()
    assert card["data"]["class_values"] == ["cat", "dog", "eel\tx"]
    assert card["data"]["feature_shape"] == [4]
    assert card["data"]["normalization"] == info.normalization
    lineage = card["lineage"]
    assert (lineage["experiment"], lineage["experiment_id"], lineage["method"]) == (
        "exp", exp_id, "random"
    )  # fmt: skip
    assert lineage["airflow_run_id"] == "manual__2025-01-01" and lineage["dataset"] == "toy"
    assert lineage["package_version"] == package_version() and lineage["exported_at"]

    loaded = load_exported(where, s3_client=client)
    assert loaded.state == TRAINED["toy", 1, BEST_EPOCH]  # the best epoch's bytes as trained
    latest = repo.load_checkpoint(conn, exp_id, 1)
    assert latest is not None and latest.epoch == 3  # training would resume from here
    assert loaded.card == json.loads(json.dumps(card))
    assert card["files"]["weights_sha256"] == hashlib.sha256(loaded.state).hexdigest()
    assert card["files"]["weights"] == "model.safetensors"

    n = predict_table(conn, source_table="toy", out_table="toy_scored", model=loaded)
    assert n == 90
    with conn.cursor() as cur:  # the table says which model scored which table, and when
        cur.execute("SELECT obj_description('toy_scored'::regclass, 'pg_class')")
        comment = json.loads(cur.fetchone()[0])["automl_predictions"]
    conn.rollback()
    assert comment.pop("scored_at") and comment == {
        "source_table": "toy", "dataset": "toy", "experiment": "exp", "experiment_id": exp_id,
        "trial_id": 1, "epoch": BEST_EPOCH, "valid_accuracy": 0.9, "loaded_from": where,
        "weights_sha256": card["files"]["weights_sha256"], "package_version": package_version(),
    }  # fmt: skip
    assert_same_predictions(read_table(conn, "toy_scored"), reference_predictions(conn, 1, "toy"))
    # The latest state predicts differently, so the comparison above can tell them apart.
    assert [r[2] for r in reference_predictions(conn, 1, "toy", epoch=3)] != [
        r[2] for r in reference_predictions(conn, 1, "toy")
    ]


def test_predict_with_experiment_name_keeps_integer_labels(conn: Any) -> None:
    build_trained_experiment(conn, "exp", "nums", labels="int")
    n = predict_table(conn, source_table="nums", out_table="nums_scored", model="exp",
                      batch_size=7)  # fmt: skip
    assert n == 90
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'nums_scored' ORDER BY ordinal_position"
        )
        types = cur.fetchall()
    conn.rollback()
    assert types == [("id", "bigint"), ("predicted", "integer"), ("probability", "real")]
    got = read_table(conn, "nums_scored")
    assert_same_predictions(got, reference_predictions(conn, 1, "nums"))
    assert {r[1] for r in got} <= {7, 17, 27}


def test_cli_export_and_predict_through_s3_env(
    conn: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build_trained_experiment(conn, "exp", "toy")
    where = f"s3://{bucket}/cli"
    assert main(["export", "exp", "--to", where]) == 0
    out = capsys.readouterr().out
    assert "exported trial 1" in out and "best checkpoint, epoch 2" in out
    argv = ["predict", "--model", where, "--table", "toy", "--out-table", "scored"]
    assert main(argv) == 0
    assert "wrote 90 predictions" in capsys.readouterr().out
    want = reference_predictions(conn, 1, "toy")
    assert_same_predictions(read_table(conn, "scored"), want)
    # The table exists now: refused without --replace, replaced with it.
    assert main(argv) == 2
    assert "--replace" in capsys.readouterr().err
    assert main([*argv, "--replace", "--batch-size", "50"]) == 0
    assert_same_predictions(read_table(conn, "scored"), want)


def test_export_refuses_bad_input_before_writing(
    conn: Any, tmp_path: Path, s3_client: Any, bucket: str
) -> None:
    build_trained_experiment(conn, "exp", "toy")
    repo.create_experiment(conn, name="empty", method="grid", dataset="toy", spec={}, seed=0)
    out = tmp_path / "out"
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: export_best(conn, "nope", str(out)), "no experiment named 'nope'"),
        (lambda: export_best(conn, "empty", str(out)), "no trial with a validation result"),
        (lambda: export_best(conn, "exp", "s3://Bad_Bucket/x"), "not a valid bucket"),
        (lambda: export_best(conn, "exp", "ftp://host/x"), "not supported"),
    ]
    for call, message in cases:
        with pytest.raises(UserInputError, match=message):
            call()
    assert not out.exists()
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)


def test_load_exported_refuses_missing_or_tampered_exports(conn: Any, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no exported model"):
        load_exported(str(tmp_path / "empty"))
    build_trained_experiment(conn, "exp", "toy")
    export_best(conn, "exp", str(tmp_path / "m"))
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    with pytest.raises(UserInputError, match="SHA-256"):
        load_exported(str(tmp_path / "m"))
    (tmp_path / "m" / "model_card.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserInputError, match="not a model card"):
        load_exported(str(tmp_path / "m"))


def test_export_reads_a_checkpoint_stored_by_reference(
    conn: Any, tmp_path: Path, s3_client: Any, bucket: str
) -> None:
    exp_id = build_trained_experiment(conn, "exp", "toy")
    inline = repo.load_checkpoint(conn, exp_id, 1, best=True)
    assert inline is not None and inline.state is not None
    # The best epoch's state, moved to S3: the row keeps only the pointer. The latest
    # checkpoint (epoch 3) is newer, so it stays as it was.
    s3_client.put_object(Bucket=bucket, Key="ckpt/exp/1.pt", Body=inline.state)
    uri = f"s3://{bucket}/ckpt/exp/1.pt"
    assert not repo.save_checkpoint(conn, exp_id, 1, inline.epoch, uri=uri)
    moved = repo.load_checkpoint(conn, exp_id, 1, best=True)
    assert moved is not None and (moved.epoch, moved.state, moved.uri) == (2, None, uri)
    card = export_best(conn, "exp", str(tmp_path / "m"), s3_client=s3_client)
    assert card["checkpoint"]["stored_as"] == uri
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == inline.state


@pytest.mark.parametrize("failing_write", [0, 1, 2, 3])
def test_a_failed_export_leaves_a_loadable_export(
    conn: Any, target: tuple[str, Any], failing_write: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever write of a re-export fails (say, the disk is full), the target holds a
    complete export: the earlier one before the new card is in place, the new one after."""
    import errno

    where, client = target
    exp_id = build_trained_experiment(conn, "exp", "toy")
    export_best(conn, "exp", where, s3_client=client)
    old_state = TRAINED["toy", 1, BEST_EPOCH]
    # A fourth epoch, better than all before: the next export is a different model.
    new_state = TRAINED["toy", 1, 3]
    repo.record_epoch(conn, exp_id, 1, 4, train_loss=0.1, train_accuracy=1.0, valid_loss=0.05,
                      valid_accuracy=0.95, seconds=0.1, samples=60)  # fmt: skip
    repo.save_checkpoint(conn, exp_id, 1, 4, state=new_state)
    assert old_state != new_state

    writes = []
    for cls in (LocalArtifactStore, S3ArtifactStore):

        def put_bytes(self: Any, key: str, data: bytes, _put: Any = cls.put_bytes) -> None:
            writes.append(key)
            if len(writes) - 1 == failing_write:
                raise OSError(errno.ENOSPC, "No space left on device")
            _put(self, key, data)

        monkeypatch.setattr(cls, "put_bytes", put_bytes)
    with pytest.raises(OSError, match="No space left"):
        export_best(conn, "exp", where, s3_client=client)
    loaded = load_exported(where, s3_client=client)
    assert loaded.state == (old_state if failing_write < 2 else new_state)
    assert loaded.card["checkpoint"]["epoch"] == (BEST_EPOCH if failing_write < 2 else 4)

    monkeypatch.undo()
    card = export_best(conn, "exp", where, s3_client=client)  # a retry completes it
    assert load_exported(where, s3_client=client).state == new_state
    assert card["files"]["weights"] == "model.safetensors"
    store = artifact_store_for(where, client=client)
    assert store.list() == ["model.safetensors", "model_card.json"]  # nothing staged is left


def test_export_refuses_to_replace_files_it_did_not_write(
    conn: Any, target: tuple[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    where, client = target
    build_trained_experiment(conn, "exp", "toy")
    store = artifact_store_for(where, client=client)
    for key, data in [("model_card.json", b'{"name": "my card"}'), ("model_card.json", b"x"),
                      ("model.safetensors", b"my weights")]:  # fmt: skip
        for other in store.list():
            store.delete(other)
        store.put_bytes(key, data)
        with pytest.raises(UserInputError, match=f"{key}.* choose another target"):
            export_best(conn, "exp", where, s3_client=client)
        assert store.list() == [key] and store.get_bytes(key) == data
    store.delete("model.safetensors")
    export_best(conn, "exp", where, s3_client=client)
    export_best(conn, "exp", where, s3_client=client)  # its own export it replaces
    assert store.list() == ["model.safetensors", "model_card.json"]
    if client is None:  # the command refuses before connecting, and says why
        (Path(where) / "model_card.json").write_text("{}")
        assert main(["export", "exp", "--to", where]) == 2
        assert "not a model card written by automl" in capsys.readouterr().err


def test_a_card_of_another_shape_is_replaced_cleanly(conn: Any, tmp_path: Path) -> None:
    # A card of the family whose "files" is not a mapping (a later format, say): the
    # export completed, then failed with a raw AttributeError and left its stage behind.
    build_trained_experiment(conn, "exp", "toy")
    where = str(tmp_path / "export")
    store = artifact_store_for(where)
    store.put_bytes("model_card.json", b'{"format": "automl-model-card/9", "files": ["x"]}')
    export_best(conn, "exp", where)
    assert store.list() == ["model.safetensors", "model_card.json"]
    assert load_exported(where).card["format"] == "automl-model-card/1"


def test_finalize_reports_and_completes_before_a_failing_export(
    conn: Any, s3_client: Any, tmp_path: Path
) -> None:
    # The export ran first: a missing bucket under Airflow left no report and the
    # experiment running (which holds its data set), with a raw botocore traceback.
    build_trained_experiment(conn, "exp", "toy")
    bucket = f"later-{uuid.uuid4().hex[:10]}"
    where, report = f"s3://{bucket}/best", tmp_path / "report"
    with pytest.raises(UserInputError, match=f"s3://{bucket}/best cannot be used: its bucket"):
        finalize("exp", export_to=where, report_dir=report)
    page = (report / "index.html").read_text()
    assert "Report being written" not in page and "completed" in page
    assert repo.get_experiment(conn, "exp").status == repo.ExperimentState.COMPLETED
    conn.rollback()
    s3_client.create_bucket(Bucket=bucket)
    result = finalize("exp", export_to=where, report_dir=report)  # the task's retry
    assert (result["export"], result["report"]) == (where, str(report / "index.html"))
    assert load_exported(where, s3_client=s3_client).state == TRAINED["toy", 1, BEST_EPOCH]
    assert repo.get_experiment(conn, "exp").status == repo.ExperimentState.COMPLETED


def test_a_stage_left_by_a_failed_export_is_removed_by_the_next(
    conn: Any, target: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, client = target
    exp_id = build_trained_experiment(conn, "exp", "toy")
    export_best(conn, "exp", where, s3_client=client)
    store = artifact_store_for(where, client=client)
    repo.record_epoch(conn, exp_id, 1, 4, train_loss=0.1, train_accuracy=1.0, valid_loss=0.05,
                      valid_accuracy=0.95, seconds=0.1, samples=60)  # fmt: skip
    repo.save_checkpoint(conn, exp_id, 1, 4, state=TRAINED["toy", 1, 3])
    put = type(store).put_bytes

    def card_fails(self: Any, key: str, data: bytes) -> None:
        if key == "model_card.json":
            raise OSError("No space left on device")
        put(self, key, data)

    monkeypatch.setattr(type(store), "put_bytes", card_fails)
    with pytest.raises(OSError, match="No space left"):
        export_best(conn, "exp", where, s3_client=client)
    monkeypatch.undo()
    (stage,) = set(store.list()) - {"model.safetensors", "model_card.json"}
    assert stage.startswith("model.staged-")
    # Another model is exported next, whose stage is named by other bytes: the stage the
    # failed export left was kept for good.
    repo.record_epoch(conn, exp_id, 1, 5, train_loss=0.1, train_accuracy=1.0, valid_loss=0.04,
                      valid_accuracy=0.97, seconds=0.1, samples=60)  # fmt: skip
    repo.save_checkpoint(conn, exp_id, 1, 5, state=TRAINED["toy", 1, 1])
    export_best(conn, "exp", where, s3_client=client)
    assert store.list() == ["model.safetensors", "model_card.json"]
    assert load_exported(where, s3_client=client).state == TRAINED["toy", 1, 1]


def test_an_inconsistent_export_is_refused_in_one_line(
    conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A card edited by hand, or weights swapped with their SHA-256, gave tracebacks
    (InvalidStateError, torch's size mismatch, a ValueError for the mean)."""
    build_trained_experiment(conn, "exp", "toy")
    where = tmp_path / "m"
    export_best(conn, "exp", str(where))
    card_file, weights = where / "model_card.json", where / "model.safetensors"
    good, good_weights = json.loads(card_file.read_text()), weights.read_bytes()
    inconsistent = f"{where} is not a consistent export: its weights do not fit its model card"
    cases: list[tuple[Callable[[dict[str, Any]], Any], str]] = [
        (lambda c: c["config"].update(hidden=32), inconsistent),
        (lambda c: c["data"].update(feature_shape=[5]), inconsistent),
        (lambda c: c["data"].update(num_classes=4, class_values=[1, 2, 3, 4]), inconsistent),
        (lambda c: c["data"]["normalization"].update(mean="abc"), "data.normalization is"),
        (lambda c: c["data"]["normalization"].update(std=float("nan")), "data.normalization"),
        (lambda c: c["data"].update(num_classes=2), "class_values disagree"),
        (lambda c: c["data"].update(feature_shape=[0]), "feature_shape"),
        (lambda c: c["data"].update(partitions="two"), "not a model card this version can"),
        (lambda c: c["config"].update(architecture="nope"), "model card at .* cannot be used"),
    ]
    argv = ["predict", "--model", str(where), "--table", "toy", "--out-table", "scored"]
    for edit, message in cases:
        card = json.loads(json.dumps(good))
        edit(card)
        card_file.write_text(json.dumps(card))
        with pytest.raises(UserInputError, match=message):
            load_exported(str(where))
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and str(where) in err
    garbage = b"not a state"  # weights replaced, and their SHA-256 in the card with them
    weights.write_bytes(garbage)
    card_file.write_text(json.dumps({**good, "files": {**good["files"],
                                     "weights_sha256": hashlib.sha256(garbage).hexdigest()}}))  # fmt: skip
    with pytest.raises(UserInputError, match=inconsistent):
        load_exported(str(where))
    weights.write_bytes(good_weights)
    card_file.write_text(json.dumps(good))
    assert load_exported(str(where)).state == good_weights
