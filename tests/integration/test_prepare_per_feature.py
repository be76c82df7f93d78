"""Per-feature normalisation end to end: `automl data prepare` standardises a CSV's
columns one by one (`--normalize auto`), keeps one global mean and std for array features,
and re-packing with another normalisation follows the rules for experiments on the data.

Before, every data set had one mean and std over all values: a CSV column in dollars
(~1e6) came out with std ~1.7 and one in fractions (~1e-3) with std ~0, so the model
saw one feature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from automl_core.cli import main
from automl_core.data.reader import DatasetInfo, dataset_info, experiment_dataset, read_partition
from automl_core.errors import UserInputError
from automl_core.store import repository as repo
from tests.integration.test_data_prepare import _snapshot

N_ROWS = 400


def write_columns_csv(path: Path, n: int = N_ROWS, seed: int = 0) -> np.ndarray:
    """A CSV of 4 feature columns in very different units (dollars ~1e6, a rate ~1e-3, an
    age, a constant) and a label that depends on the first two; returns the float32
    features as the loader reads them."""
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            rng.normal(1e6, 2e5, n),
            rng.normal(2e-3, 5e-4, n),
            rng.normal(40, 12, n),
            np.full(n, 7.5),
        ],
        axis=1,
    ).astype(np.float32)
    label = ((x[:, 0] > 1e6).astype(int) + (x[:, 1] > 2e-3).astype(int)).tolist()
    lines = ["income,rate,age,constant,label"]
    # repr of a float32 as float64 reads back as the same float32.
    lines += [
        ",".join(repr(float(v)) for v in row) + f",{c}" for row, c in zip(x, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return x


def _load_money(tmp_path: Path, *prepare: str) -> None:
    """``write_columns_csv`` loaded as table ``money`` and prepared into 2 partitions."""
    write_columns_csv(tmp_path / "money.csv")
    _cli("data", "load", f"csv:{tmp_path / 'money.csv'}", "--table", "money")
    _cli("data", "prepare", "money", "--partitions", "2", *prepare)


def _old_experiment(conn: Any) -> Any:
    """A finished experiment ``old`` on ``money`` created before experiments kept their
    data (schema 9): it reads the data set's row, which may then not change under it."""
    old = repo.create_experiment(conn, name="old", method="random", dataset="money", spec={},
                                 seed=0)  # fmt: skip
    repo.set_experiment_status(conn, old.id, repo.ExperimentState.COMPLETED, finished=True)
    return old


def _cli(*argv: str) -> None:
    assert main(list(argv)) == 0


def _split(info: DatasetInfo, conn: Any, split: str) -> np.ndarray:
    parts = [
        read_partition(conn, info.name, p, split, info=info)[0] for p in range(info.partitions)
    ]
    return np.concatenate(parts).reshape(-1, int(np.prod(info.feature_shape))).astype(np.float64)


def test_a_csv_of_columns_in_other_units_is_standardised_per_column(
    conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = write_columns_csv(tmp_path / "money.csv")
    _cli("data", "load", f"csv:{tmp_path / 'money.csv'}", "--table", "money")
    _cli("data", "prepare", "money", "--partitions", "2")
    assert "per-feature normalisation" in capsys.readouterr().out
    info = dataset_info(conn, "money")
    mean, std = (np.array(info.normalization[k]) for k in ("mean", "std"))
    assert mean.shape == std.shape == (4,)
    train = _split(info, conn, "train")
    # every training column: mean ~0 and (population) std ~1; the constant one is 0
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), [1.0, 1.0, 1.0, 0.0], atol=1e-5)
    assert std[3] == 1.0 and mean[3] == 7.5
    # the statistics are the training rows' (recovered from the packed values)
    raw = train * std + mean
    np.testing.assert_allclose(raw.mean(axis=0), mean, rtol=1e-6)
    source = np.sort(x[:, 0].astype(np.float64))
    nearest = np.clip(np.searchsorted(source, raw[:, 0]), 1, source.size - 1)
    gaps = np.minimum(abs(source[nearest] - raw[:, 0]), abs(source[nearest - 1] - raw[:, 0]))
    assert gaps.max() < 0.5  # each packed row is a source row (they are ~1e3 apart)
    valid = _split(info, conn, "valid")  # held-out rows: the training rows' statistics
    assert np.all(np.abs(valid.mean(axis=0)[:3]) < 0.5) and np.all(valid[:, 3] == 0.0)


def test_normalize_global_packs_one_mean_and_std_as_before(
    conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _load_money(tmp_path, "--normalize", "global")
    assert "global normalisation" in capsys.readouterr().out
    info = dataset_info(conn, "money")
    mean, std = info.normalization["mean"], info.normalization["std"]
    assert isinstance(mean, float) and isinstance(std, float)
    train = _split(info, conn, "train")
    raw = train * std + mean
    assert mean == pytest.approx(raw.mean(), rel=1e-6)  # over every value of every column
    assert std == pytest.approx(raw.std(), rel=1e-6)
    assert train.std(axis=0)[1] < 1e-6  # the rate column is flattened to nothing


def test_array_features_and_built_in_data_stay_global_unless_asked(
    conn: Any, tmp_path: Path
) -> None:
    _cli("data", "load", "digits", "--table", "digits")
    _cli("data", "prepare", "digits", "--partitions", "2")
    assert isinstance(dataset_info(conn, "digits").normalization["mean"], float)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=rng.normal(size=(60, 2, 3)), y=np.arange(60) % 3)
    _cli("data", "load", f"npz:{tmp_path / 'img.npz'}", "--table", "img")
    _cli("data", "prepare", "img", "--partitions", "2")
    assert isinstance(dataset_info(conn, "img").normalization["std"], float)
    with conn.cursor() as cur:  # a table made in SQL, its columns in an array
        cur.execute("CREATE TABLE churn AS SELECT g AS id, ARRAY[g * 1000, g % 7]::real[] "
                    "AS features, g % 2 AS label FROM generate_series(1, 60) g")  # fmt: skip
    conn.commit()
    _cli("data", "prepare", "churn", "--partitions", "2")
    assert isinstance(dataset_info(conn, "churn").normalization["mean"], float)
    # asked for: per pixel (digits' always-blank pixels are centred, not scaled)
    _cli("data", "prepare", "digits", "--partitions", "2", "--normalize", "per-feature")
    info = dataset_info(conn, "digits")
    assert len(info.normalization["std"]) == 64  # type: ignore[arg-type]
    assert info.normalization["std"][0] == 1.0  # type: ignore[index]
    _cli("data", "prepare", "churn", "--partitions", "2", "--normalize", "per-feature")
    train = _split(dataset_info(conn, "churn"), conn, "train")
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-5)


def test_repacking_with_another_normalisation_keeps_experiments_data(
    conn: Any, tmp_path: Path
) -> None:
    _load_money(tmp_path)
    per_feature = dataset_info(conn, "money")
    # An experiment that keeps its copy of the data set's row: re-packing is free.
    kept = repo.create_experiment(conn, name="kept", method="random", dataset="money", spec={},
                                  seed=0, data=per_feature.record())  # fmt: skip
    repo.set_experiment_status(conn, kept.id, repo.ExperimentState.COMPLETED, finished=True)
    _cli("data", "prepare", "money", "--partitions", "2", "--normalize", "global")
    assert isinstance(dataset_info(conn, "money").normalization["mean"], float)
    assert experiment_dataset(conn, kept) == per_feature  # lists read back unchanged
    _cli("data", "prepare", "money", "--partitions", "2")  # auto keeps the kind chosen
    assert isinstance(dataset_info(conn, "money").normalization["mean"], float)
    _cli("data", "prepare", "money", "--partitions", "2", "--normalize", "per-feature")
    assert dataset_info(conn, "money").normalization == per_feature.normalization

    # One created before experiments kept their data reads the data set's row: its
    # normalisation may not change under it, and the message names the way out.
    _old_experiment(conn)
    before = _snapshot(conn)
    from automl_core.data.prepare import prepare_dataset

    with pytest.raises(UserInputError) as caught:
        prepare_dataset(conn, "money", partitions=2, normalize="global")
    message = str(caught.value)
    assert "normalisation (per-feature before, global now)" in message
    assert "experiments old" in message and "pass --normalize per-feature" in message
    assert _snapshot(conn) == before
    prepare_dataset(conn, "money", partitions=3)  # the same statistics: other partitions
    assert dataset_info(conn, "money").partitions == 3
    with pytest.raises(UserInputError, match=r"--normalize is 'minmax', but must be one of"):
        prepare_dataset(conn, "money", partitions=2, normalize="minmax")
    with pytest.raises(SystemExit):  # argparse: "invalid choice: 'x' (choose from ...)"
        main(["data", "prepare", "money", "--partitions", "2", "--normalize", "x"])


def test_an_old_scalar_record_of_a_csv_still_reads_and_is_kept_by_its_experiments(
    conn: Any, tmp_path: Path
) -> None:
    # A CSV packed before per-feature statistics: the row (and an old experiment reading
    # it) hold scalars. It reads as before, and `auto` keeps packing it globally, which is
    # what the old experiment's models were trained on.
    _load_money(tmp_path, "--normalize", "global")
    with conn.cursor() as cur:  # exactly as the old code wrote it
        cur.execute("SELECT normalization FROM automl.datasets WHERE name = 'money'")
        stored = cur.fetchone()[0]
    conn.rollback()
    assert set(stored) == {"mean", "std"} and all(isinstance(v, float) for v in stored.values())
    info = dataset_info(conn, "money")
    assert info.normalization == stored
    old = _old_experiment(conn)
    assert experiment_dataset(conn, old) == info
    # auto keeps the kind it was packed with; per feature is asked for, and refused here
    _cli("data", "prepare", "money", "--partitions", "3")
    assert dataset_info(conn, "money").normalization == pytest.approx(stored, rel=1e-9)
    assert main(["data", "prepare", "money", "--partitions", "2", "--normalize",
                 "per-feature"]) == 2  # fmt: skip


def test_packing_again_keeps_the_kind_chosen_before(conn: Any, tmp_path: Path) -> None:
    # A review found a DAG's data step (ensure_prepared, always `auto`) packing a grown
    # SQL table globally though it had been prepared per feature, silently.
    from automl_core.data.ensure import ensure_prepared

    with conn.cursor() as cur:
        cur.execute("CREATE TABLE churn AS SELECT g AS id, ARRAY[g * 1000, g % 7]::real[] "
                    "AS features, g % 2 AS label FROM generate_series(1, 60) g")  # fmt: skip
    conn.commit()
    _cli("data", "prepare", "churn", "--partitions", "2", "--normalize", "per-feature")
    with conn.cursor() as cur:  # the nightly rows
        cur.execute("INSERT INTO churn SELECT g, ARRAY[g * 1000, g % 7]::real[], g % 2 "
                    "FROM generate_series(61, 80) g")  # fmt: skip
    conn.commit()
    ensure_prepared("churn", partitions=2)
    info = dataset_info(conn, "churn")
    assert info.n_train + info.n_valid == 80 and len(info.normalization["mean"]) == 2  # type: ignore[arg-type]
    # and the other way: a CSV prepared globally stays global
    _load_money(tmp_path, "--normalize", "global")
    ensure_prepared("money", partitions=3)
    info = dataset_info(conn, "money")
    assert info.partitions == 3 and isinstance(info.normalization["mean"], float)


def test_a_refusal_names_every_change_and_offers_the_old_kind_only_when_it_suffices(
    conn: Any, tmp_path: Path
) -> None:
    from automl_core.data.prepare import prepare_dataset

    _load_money(tmp_path)
    _old_experiment(conn)
    with pytest.raises(UserInputError) as caught:  # another kind, and other training rows
        prepare_dataset(conn, "money", partitions=2, normalize="global", validation_fraction=0.5)
    message = str(caught.value)
    assert "(per-feature before, global now), normalisation (the training rows differ)" in message
    assert "--normalize per-feature" not in message  # it alone would not do


def test_features_beyond_float32_once_normalised_are_refused(conn: Any) -> None:
    from automl_core.data.prepare import prepare_dataset

    with conn.cursor() as cur:  # -3e38 and +3e38: their mean is ~0, 3e38 - (-3e38) is not
        cur.execute("CREATE TABLE huge AS SELECT g AS id, ARRAY[CASE WHEN g % 2 = 0 THEN "
                    "3e38 ELSE -3e38 END, g]::real[] AS features, g % 2 AS label "
                    "FROM generate_series(1, 40) g")  # fmt: skip
        cur.execute("UPDATE huge SET features[1] = -3e38 WHERE id <= 30")
    conn.commit()
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=r"beyond float32's range \(feature 0.*smaller units"):
        prepare_dataset(conn, "huge", partitions=2)
    assert _snapshot(conn) == before


def test_a_damaged_row_and_data_info_of_a_wide_csv(
    conn: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wide = np.random.default_rng(0).normal(size=(40, 300))
    lines = [",".join(f"c{i}" for i in range(300)) + ",label"]
    lines += [",".join(map(repr, row)) + f",{i % 2}" for i, row in enumerate(wide.tolist())]
    (tmp_path / "wide.csv").write_text("\n".join(lines) + "\n")
    _cli("data", "load", f"csv:{tmp_path / 'wide.csv'}", "--table", "wide")
    _cli("data", "prepare", "wide", "--partitions", "2")
    capsys.readouterr()
    _cli("data", "info", "wide")
    out = capsys.readouterr().out
    # the 600 statistics on two lines, not 600, and the 300 column names on one
    assert len(out.splitlines()) < 60
    shown = json.loads(out)
    assert shown["normalization"] == dataset_info(conn, "wide").normalization
    assert shown["feature_names"] == [f"c{i}" for i in range(300)]
    assert f'"feature_names": {json.dumps([f"c{i}" for i in range(300)])}' in out
    with conn.cursor() as cur:
        cur.execute("UPDATE automl.datasets SET normalization = '{\"mean\": [1, 2], "
                    "\"std\": [1, 2]}' WHERE name = 'wide'")  # fmt: skip
    conn.commit()
    with pytest.raises(UserInputError, match=r"(?s)lists of 300 finite.*automl data prepare wide"):
        dataset_info(conn, "wide")
    assert main(["data", "info", "wide"]) == 2


def test_reloading_columns_in_another_order_is_refused_under_an_old_experiment(
    conn: Any, tmp_path: Path
) -> None:
    # A review reloaded a CSV with its columns reordered under an experiment that reads the
    # data set's row: global statistics did not change, so the new names were accepted and
    # its export scored DataFrames with the wrong columns (23% agreement).
    import pandas as pd

    from automl_core.data.prepare import prepare_dataset

    _load_money(tmp_path, "--normalize", "global")
    _old_experiment(conn)
    frame = pd.read_csv(tmp_path / "money.csv")
    frame[["age", "income", "rate", "constant", "label"]].to_csv(tmp_path / "re.csv", index=False)
    _cli("data", "load", f"csv:{tmp_path / 're.csv'}", "--table", "money", "--replace")
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=r"its feature names would change"):
        prepare_dataset(conn, "money", partitions=2)
    assert _snapshot(conn) == before
