"""Source readers: digits, signals, CSV, npz and CIFAR-10 batches (written here, in the real format)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from automl_core.data.safe_pickle import UnsafePickleError, restricted_loads
from automl_core.data.signals import make_signals
from automl_core.data.sources import CIFAR_TEST, CIFAR_TRAIN, read_source
from automl_core.errors import UserInputError


def test_digits_is_all_train() -> None:
    data = read_source("digits")
    assert data.feature_shape == (64,)
    assert data.label_type == "integer"
    assert [p.split for p in data.parts] == ["train"]
    assert data.n_rows == 1797
    assert sorted(set(data.parts[0].labels.tolist())) == list(range(10))


def test_signals_shapes_and_balanced_classes() -> None:
    data = read_source("signals")
    assert data.source == "signals"
    assert data.feature_shape == (40,)
    assert data.label_type == "integer"
    assert [p.split for p in data.parts] == ["train"]
    x, labels = data.parts[0].x, data.parts[0].labels
    assert x.shape == (4000, 40) and x.dtype == np.float32
    assert np.bincount(labels.astype(np.int64)).tolist() == [400] * 10


def test_signals_are_deterministic_for_a_seed() -> None:
    a = read_source("signals").parts[0]
    b = read_source("signals").parts[0]
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.labels, b.labels)
    x1, y1 = make_signals(503, seed=7)
    x2, y2 = make_signals(503, seed=7)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x3, _ = make_signals(503, seed=8)
    assert not np.array_equal(x1, x3)
    # 503 rows over 10 classes: the counts differ by at most one.
    assert sorted(set(np.bincount(y1).tolist())) == [50, 51]


def test_signals_refuse_fewer_rows_than_classes() -> None:
    with pytest.raises(ValueError, match="at least num_classes"):
        make_signals(5)


@pytest.mark.parametrize(
    "spec", ["mnist", "csv", "csv:", "s3://bucket/x.csv", "digits:x", "signals:1", "npy:a"]
)
def test_unknown_or_incomplete_source_is_refused(spec: str) -> None:
    with pytest.raises(UserInputError, match="source|path"):
        read_source(spec)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_reads_features_and_integer_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "a,label,b\n1.5,3,2\n-1,0,4e2\n\n0,1,0\n")
    data = read_source(f"csv:{path}")
    assert data.feature_shape == (2,)
    assert data.label_type == "integer"
    np.testing.assert_array_equal(data.parts[0].x, [[1.5, 2], [-1, 400], [0, 0]])
    assert data.parts[0].labels.tolist() == [3, 0, 1]


def test_csv_custom_label_column_and_text_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "f1,species\n1,setosa\n2,virginica\n")
    data = read_source(f"csv:{path}", label_column="species")
    assert data.label_type == "text"
    assert data.parts[0].labels.tolist() == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,label\n1,0\n2,1\nx,0\n", r"line 4: the feature value 'x' is not a number"),
        ("a,label\n1,0\n2,1,5\n", r"line 3: 3 fields, but the header has 2"),
        ("a,label\n1,0\n\n2,\n", r"line 4: the label is empty"),
        ("a,label\n1,0\nnan,1\n", r"NaN or infinite features \(first: line 3\)"),
        ("a,label\n1,0\n-inf,1\n", r"first: line 3"),
        ("a,b\n1,0\n", r"no label column 'label' \(columns: \['a', 'b'\]\); pass --label-column"),
        ("a,label\n", r"header but no data rows"),
        ("", r"is empty"),
        ("label\n1\n2\n", r"at least one row and one feature"),
    ],
)
def test_bad_csv_is_refused_with_its_line(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(UserInputError, match=match):
        read_source(f"csv:{path}")


def test_bad_row_in_a_later_block_names_its_line(tmp_path: Path) -> None:
    lines = ["a,b,label"] + [f"{i},{i},0" for i in range(20_000)]
    lines[15_001] = "1,oops,1"  # physical line 15002
    path = _write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(UserInputError, match=r"line 15002: the feature value 'oops'"):
        read_source(f"csv:{path}")


def test_missing_files_are_refused(tmp_path: Path) -> None:
    for spec in (f"csv:{tmp_path}/no.csv", f"npz:{tmp_path}/no.npz", f"cifar10:{tmp_path}/no"):
        with pytest.raises(UserInputError, match="no such"):
            read_source(spec)


def test_npz_keeps_multidimensional_shape_and_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3, 4, 4))
    xt = rng.normal(size=(4, 3, 4, 4))
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 3, x_test=xt, y_test=np.array([0, 1, 2, 0]))
    data = read_source(f"npz:{tmp_path / 'd.npz'}")
    assert data.feature_shape == (3, 4, 4)
    assert [(p.split, p.x.shape[0]) for p in data.parts] == [("train", 10), ("test", 4)]
    np.testing.assert_array_equal(data.parts[1].x, xt.astype(np.float32))
    assert data.parts[1].labels.tolist() == [0, 1, 2, 0]


def test_npz_text_labels_in_one_split_make_all_text(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "d.npz",
        x=np.zeros((2, 2)),
        y=np.array([1, 2]),
        x_test=np.zeros((1, 2)),
        y_test=np.array(["cat"]),
    )
    data = read_source(f"npz:{tmp_path / 'd.npz'}")
    assert data.label_type == "text"
    assert [p.labels.tolist() for p in data.parts] == [["1", "2"], ["cat"]]


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((3, 2))}, r"the array 'y' is missing"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(3), "x_test": np.zeros((1, 2))}, "both 'x_test'"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(2)}, "3 feature rows but 2 labels"),
        ({"x": np.array([["a", "b"]]), "y": np.zeros(1)}, "not numeric"),
        (
            {"x": np.zeros((2, 2)), "y": np.zeros(2), "x_test": np.zeros((1, 3)), "y_test": [0]},
            "different feature shapes",
        ),
        ({"x": np.array([[1.0, np.nan]]), "y": np.zeros(1)}, "NaN or infinite"),
    ],
)
def test_bad_npz_is_refused(tmp_path: Path, arrays: dict[str, object], match: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match=match):
        read_source(f"npz:{tmp_path / 'bad.npz'}")


def test_ragged_npz_is_refused_without_unpickling(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0, 2.0], [3.0]
    np.savez(tmp_path / "r.npz", x=ragged, y=np.zeros(2))
    with pytest.raises(UserInputError, match="object array"):
        read_source(f"npz:{tmp_path / 'r.npz'}")


def test_a_file_that_is_not_npz_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "x.npz", "hello")
    with pytest.raises(UserInputError, match="not a readable .npz"):
        read_source(f"npz:{tmp_path / 'x.npz'}")


def _cifar_batch(n: int, seed: int, *, numpy1_names: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }
    raw = pickle.dumps(batch, protocol=2)
    # The published files come from numpy 1, whose pickles name numpy.core.multiarray.
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if numpy1_names else raw


def _write_cifar(folder: Path, sizes: tuple[int, ...] = (3, 2, 2, 2, 1, 4)) -> Path:
    folder.mkdir(parents=True)
    for i, (name, n) in enumerate(zip((*CIFAR_TRAIN, CIFAR_TEST), sizes, strict=True)):
        (folder / name).write_bytes(_cifar_batch(n, i, numpy1_names=i % 2 == 0))
    return folder


def test_cifar10_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py")
    data = read_source(f"cifar10:{tmp_path}")  # the parent folder is accepted too
    assert data.feature_shape == (3, 32, 32)
    assert [(p.split, p.x.shape[0]) for p in data.parts] == [("train", 10), ("test", 4)]
    first = pickle.loads(_cifar_batch(3, 0))
    np.testing.assert_array_equal(data.parts[0].x[:3].reshape(3, -1), first[b"data"])
    assert data.parts[0].labels[:3].tolist() == first[b"labels"]


def test_cifar10_missing_batch_is_named(tmp_path: Path) -> None:
    folder = _write_cifar(tmp_path / "c")
    (folder / "data_batch_4").unlink()
    with pytest.raises(UserInputError, match=r"lacks \['data_batch_4'\]"):
        read_source(f"cifar10:{folder}")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = _write_cifar(tmp_path / "c")
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(
        UserInputError,
        match=r"data_batch_2 is not a CIFAR-10 python batch .*refusing to load global",
    ):
        read_source(f"cifar10:{folder}")
    assert not marker.exists()


def test_restricted_unpickler_allows_only_data() -> None:
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for protocol in (2, 4, 5):
        out = restricted_loads(pickle.dumps({"a": [arr, b"x", 1.5, None]}, protocol=protocol))
        np.testing.assert_array_equal(out["a"][0], arr)
    for evil in (pickle.dumps(print), pickle.dumps(Path("/"))):
        with pytest.raises(UnsafePickleError):
            restricted_loads(evil)


@pytest.mark.parametrize(
    "payload", [{b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, [1, 2]]
)
def test_cifar10_batch_of_wrong_shape_is_refused(tmp_path: Path, payload: object) -> None:
    folder = _write_cifar(tmp_path / "c")
    (folder / CIFAR_TEST).write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UserInputError, match="test_batch"):
        read_source(f"cifar10:{folder}")
