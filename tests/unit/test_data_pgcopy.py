"""The binary COPY codec, checked against an independent struct-based reading of the format."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl_core.data import pgcopy


def _parse_tuples(stream: bytes) -> list[list[bytes | None]]:
    """A slow, obviously-correct reader of a whole binary COPY stream."""
    assert stream.startswith(pgcopy.SIGNATURE)
    flags, ext = struct.unpack_from("!ii", stream, 11)
    assert flags == 0
    off = 19 + ext
    tuples = []
    while True:
        (nf,) = struct.unpack_from("!h", stream, off)
        off += 2
        if nf == -1:
            assert off == len(stream)
            return tuples
        fields: list[bytes | None] = []
        for _ in range(nf):
            (n,) = struct.unpack_from("!i", stream, off)
            off += 4
            fields.append(None if n < 0 else stream[off : off + n])
            off += max(n, 0)
        tuples.append(fields)


def _parse_real_array(value: bytes) -> list[float]:
    ndim, flags, oid, dim, lbound = struct.unpack_from("!iiiii", value, 0)
    assert (ndim, flags, oid, lbound) == (1, 0, 700, 1)
    out, off = [], 20
    for _ in range(dim):
        (n,) = struct.unpack_from("!i", value, off)
        assert n == 4
        out.append(struct.unpack_from("!f", value, off + 4)[0])
        off += 8
    assert off == len(value)
    return out


def _stream(body: bytes) -> bytes:
    return pgcopy.HEADER + body + pgcopy.TRAILER


@pytest.mark.parametrize("label_type", ["integer", "bigint"])
def test_integer_source_rows(label_type: str) -> None:
    x = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]], dtype=np.float32)
    labels = np.array([7, -3] if label_type == "integer" else [2**40, 1], dtype=np.int64)
    body = pgcopy.encode_source_rows(np.array([10, 11]), x, labels, label_type, "test")
    rows = _parse_tuples(_stream(body))
    fmt = "!i" if label_type == "integer" else "!q"
    for i, (ident, feats, label, split) in enumerate(rows):
        assert struct.unpack("!q", ident or b"")[0] == 10 + i
        np.testing.assert_array_equal(_parse_real_array(feats or b""), x[i])
        assert struct.unpack(fmt, label or b"")[0] == labels[i]
        assert split == b"test"


def test_text_source_rows() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    labels = np.array(["cat", "", "żółw"], dtype=object)
    body = pgcopy.encode_source_rows(np.arange(3), x, labels, "text", "train")
    rows = _parse_tuples(_stream(body))
    assert [r[2] for r in rows] == [b"cat", b"", "żółw".encode()]
    assert [r[3] for r in rows] == [b"train"] * 3
    np.testing.assert_array_equal(_parse_real_array(rows[2][1] or b""), [4.0, 5.0])


def test_packed_row() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    y = np.array([2, 0, 1])
    rows = _parse_tuples(_stream(pgcopy.encode_packed_row("valid", 3, 5, x, y)))
    assert len(rows) == 1
    split, part, buf, n, xb, yb = rows[0]
    assert split == b"valid"
    assert [struct.unpack("!i", v or b"")[0] for v in (part, buf, n)] == [3, 5, 3]
    np.testing.assert_array_equal(np.frombuffer(xb or b"", "<f4").reshape(3, 2, 2), x)
    np.testing.assert_array_equal(np.frombuffer(yb or b"", "<i8"), y)


def _fragments(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(cuts=st.lists(st.integers(0, 10**6), max_size=30))
@settings(max_examples=60)
def test_tuple_sink_parses_any_fragmentation(cuts: list[int]) -> None:
    rng = np.random.default_rng(0)
    blobs = [(rng.normal(size=(k, 3)).astype(np.float32), np.arange(k)) for k in (4, 1, 6)]
    stream = _stream(
        b"".join(pgcopy.encode_packed_row("train", 0, b, x, y) for b, (x, y) in enumerate(blobs))
    )
    seen: list[list[bytes | None]] = []
    sink = pgcopy.TupleSink(seen.append)
    for piece in _fragments(stream, cuts):
        sink.write(piece)
    assert sink.finished
    assert seen == _parse_tuples(stream)


def test_tuple_sink_refuses_text_copy() -> None:
    with pytest.raises(ValueError, match="bad signature"):
        pgcopy.TupleSink(lambda f: None).write(b"1\t\\x00ff\n" * 4)


def _source_stream(ids: list[int], splits: list[int], labels: list[int], x: np.ndarray) -> bytes:
    """Rows as the server sends ``(id::int8, split::int4, label::int4, features::real[])``."""
    body = b""
    for i in range(len(ids)):
        arr = struct.pack("!iiiii", 1, 0, 700, x.shape[1], 1)
        arr += b"".join(struct.pack("!if", 4, v) for v in x[i])
        body += struct.pack("!hiqiiii", 4, 8, ids[i], 4, splits[i], 4, labels[i])
        body += struct.pack("!i", len(arr)) + arr
    return _stream(body)


@given(cuts=st.lists(st.integers(0, 10**6), max_size=20), chunk=st.integers(1, 400))
@settings(max_examples=60)
def test_fixed_row_sink_decodes_source_rows(cuts: list[int], chunk: int) -> None:
    x = np.arange(21, dtype=np.float32).reshape(7, 3) / 4
    stream = _source_stream(list(range(100, 107)), [0, 1] * 3 + [0], [2, 1, 0, 2, 1, 0, 5], x)
    dtype, expect = pgcopy.decode_source_dtype(3)
    got: list[np.ndarray] = []
    sink = pgcopy.FixedRowSink(
        dtype, lambda rows: got.append(rows.copy()), expect=expect, chunk_bytes=chunk
    )
    for piece in _fragments(stream, cuts):
        sink.write(piece)
    sink.close()
    rows = np.concatenate(got)
    assert rows["id"].tolist() == list(range(100, 107))
    assert rows["split"].tolist() == [0, 1] * 3 + [0]
    assert rows["label"].tolist() == [2, 1, 0, 2, 1, 0, 5]
    np.testing.assert_array_equal(rows["el"]["v"], x)


def test_fixed_row_sink_refuses_rows_of_another_width() -> None:
    stream = _source_stream([1, 2], [0, 0], [0, 1], np.ones((2, 4), dtype=np.float32))
    dtype, expect = pgcopy.decode_source_dtype(3)  # expects 3 features, rows have 4
    sink = pgcopy.FixedRowSink(dtype, lambda rows: None, expect=expect)
    with pytest.raises(ValueError, match="expected fixed width"):
        sink.write(stream)
        sink.close()


def test_chunk_reader_serves_any_read_size() -> None:
    chunks = [b"abc", b"", b"defgh", b"i"]
    reader = pgcopy.ChunkReader(iter(chunks))
    out = []
    while piece := reader.read(2):
        assert len(piece) <= 2
        out.append(piece)
    assert b"".join(out) == b"abcdefghi"
    assert pgcopy.ChunkReader([b"xy", b"z"]).read() == b"xy"
