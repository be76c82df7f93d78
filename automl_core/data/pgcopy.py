"""PostgreSQL binary COPY, encoded and decoded with numpy.

Why binary: a ``real[]`` of 256 floats is ~2.5 KB as text and costs a float-to-text
conversion per value on both sides; in binary it is 2 KB of fixed-width fields that numpy
can write and read as one structured array, so loading and packing stay I/O bound.

Format (PostgreSQL docs, "COPY ... Binary Format"): an 11-byte signature, int32 flags,
int32 header-extension length; then per tuple an int16 field count and, per field, an
int32 byte length (-1 for NULL) followed by the value in its ``*send`` representation
(network byte order); then an int16 -1 trailer. A one-dimensional ``real[]`` value is
int32 ndim, int32 has-nulls flag, int32 element type oid (700 = float4), per dimension
int32 length and int32 lower bound, then per element int32 length (4) and the float4.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
FLOAT4_OID = 700
_ARRAY_HEAD = ("ndim", "flags", "oid", "dim", "lbound")


def _array_fields(d: int) -> list[tuple[Any, ...]]:
    fields: list[tuple[Any, ...]] = [("l_features", ">i4")]
    fields += [(name, ">i4") for name in _ARRAY_HEAD]
    fields.append(("el", [("len", ">i4"), ("v", ">f4")], (d,)))
    return fields


def _fill_array(rows: np.ndarray, x: np.ndarray) -> None:
    d = x.shape[1]
    rows["l_features"] = 20 + 8 * d
    rows["ndim"] = 1
    rows["flags"] = 0
    rows["oid"] = FLOAT4_OID
    rows["dim"] = d
    rows["lbound"] = 1
    rows["el"]["len"] = 4
    rows["el"]["v"] = x


def encode_source_rows(
    ids: np.ndarray, x: np.ndarray, labels: np.ndarray | None, label_type: str | None, split: str
) -> bytes:
    """Tuples (no header) for ``COPY t (id, features, label, split) FROM STDIN (FORMAT binary)``,
    or for ``COPY t (id, features)`` when ``label_type`` is None (rows to score, no labels).

    ``x`` is float32 ``[k, d]``; ``labels`` int64 for ``label_type`` ``integer``/``bigint``
    or str for ``text``. Integer labels make every row the same width, so the whole chunk
    is one numpy structured array; text labels vary in width and are joined per row.
    """
    k, d = x.shape
    split_b = split.encode("ascii")
    head: list[tuple[Any, ...]] = [("nf", ">i2"), ("l_id", ">i4"), ("id", ">i8")]
    head += _array_fields(d)
    if label_type is None or labels is None:
        rows = np.empty(k, dtype=np.dtype(head))
        rows["nf"] = 2
        rows["l_id"] = 8
        rows["id"] = ids
        _fill_array(rows, x)
        return rows.tobytes()
    if label_type in ("integer", "bigint"):
        lab = ">i4" if label_type == "integer" else ">i8"
        dtype = np.dtype(
            head
            + [
                ("l_label", ">i4"),
                ("label", lab),
                ("l_split", ">i4"),
                ("split", f"S{len(split_b)}"),
            ]
        )
        rows = np.empty(k, dtype=dtype)
        rows["label"] = labels
        rows["l_label"] = np.dtype(lab).itemsize
        rows["l_split"] = len(split_b)
        rows["split"] = split_b
    else:
        rows = np.empty(k, dtype=np.dtype(head))
    rows["nf"] = 4
    rows["l_id"] = 8
    rows["id"] = ids
    _fill_array(rows, x)
    if label_type in ("integer", "bigint"):
        return rows.tobytes()
    tail = struct.pack("!i", len(split_b)) + split_b
    raw = rows.tobytes()
    width = rows.dtype.itemsize
    parts = []
    for i, label in enumerate(labels):
        lb = str(label).encode("utf-8")
        parts.append(raw[i * width : (i + 1) * width] + struct.pack("!i", len(lb)) + lb + tail)
    return b"".join(parts)


def encode_packed_row(
    split: str, partition: int, buffer: int, x: np.ndarray, y: np.ndarray
) -> bytes:
    """One tuple for ``COPY packed (split, partition, buffer, n, x, y) FROM STDIN (FORMAT binary)``.

    ``x`` is written as float32 C-order bytes and ``y`` as int64 (native little-endian,
    matching what :mod:`automl_core.data.reader` reads back with ``np.frombuffer``).
    """
    xb = np.ascontiguousarray(x, dtype="<f4").tobytes()
    yb = np.ascontiguousarray(y, dtype="<i8").tobytes()
    sb = split.encode("ascii")
    return b"".join(
        (
            struct.pack("!hi", 6, len(sb)),
            sb,
            struct.pack("!iiiiiii", 4, partition, 4, buffer, 4, int(y.shape[0]), len(xb)),
            xb,
            struct.pack("!i", len(yb)),
            yb,
        )
    )


class ChunkReader:
    """A read-only file object over an iterable of byte chunks, for ``copy_expert``.

    Chunks are produced lazily, so a COPY FROM streams data that never exists in full.
    psycopg2 turns an exception raised inside ``read()`` into a generic ``QueryCanceled``;
    the original is kept in ``error`` so the caller can re-raise it (see :func:`copy_in`).
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._current = memoryview(b"")
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            while not self._current:
                nxt = next(self._chunks, None)
                if nxt is None:
                    return b""
                self._current = memoryview(nxt)
        except BaseException as exc:
            self.error = exc
            raise
        if size is None or size < 0:
            size = len(self._current)
        out = bytes(self._current[:size])
        self._current = self._current[size:]
        return out

    readline = read  # psycopg2 only calls read(); some callers probe readline.


def copy_in(cur: Any, statement: str, chunks: Iterable[bytes], size: int = 1 << 20) -> None:
    """Run ``COPY ... FROM STDIN`` fed by ``chunks``, re-raising a producer's own exception.

    Without this, an error in the code that makes the chunks (a bug, a UserInputError, a
    full disk) would reach the caller only as psycopg2's ``QueryCanceled``.
    """
    reader = ChunkReader(chunks)
    try:
        cur.copy_expert(statement, reader, size)
    except Exception:
        if reader.error is not None:
            raise reader.error from None
        raise


def decode_source_dtype(d: int) -> tuple[np.dtype, dict[tuple[str, ...], int]]:
    """Row dtype of ``COPY (SELECT id::int8, split::int4, label_index::int4, features::real[])``.

    Also returns the constant fields every such row must have, for :class:`FixedRowSink`.
    """
    fields: list[tuple[Any, ...]] = [("nf", ">i2"), ("l_id", ">i4"), ("id", ">i8")]
    fields += [("l_split", ">i4"), ("split", ">i4"), ("l_label", ">i4"), ("label", ">i4")]
    fields += _array_fields(d)
    expect = {
        ("nf",): 4,
        ("l_id",): 8,
        ("l_split",): 4,
        ("l_label",): 4,
        ("l_features",): 20 + 8 * d,
        ("ndim",): 1,
        ("flags",): 0,
        ("oid",): FLOAT4_OID,
        ("dim",): d,
        ("el", "len"): 4,
    }
    return np.dtype(fields), expect


class FixedRowSink:
    """A write-only file object for ``COPY ... TO STDOUT (FORMAT binary)`` of fixed-width rows.

    Bytes are buffered and handed to ``on_rows`` as structured arrays of about
    ``chunk_bytes``, so memory stays bounded however large the table is. ``close()`` checks
    the trailer. Raises ValueError when the stream is not in the expected layout.
    """

    def __init__(
        self,
        dtype: np.dtype,
        on_rows: Callable[[np.ndarray], None],
        *,
        expect: Mapping[tuple[str, ...], int],
        chunk_bytes: int = 8 << 20,
    ) -> None:
        self._dtype = dtype
        self._expect = expect
        self._on_rows = on_rows
        self._chunk_bytes = max(chunk_bytes, dtype.itemsize)
        self._parts: list[bytes] = []
        self._size = 0
        self._header_done = False
        self._tail = b""

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        if self._size >= self._chunk_bytes:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        buf = b"".join(self._parts)
        if not self._header_done:
            if len(buf) < len(HEADER):
                self._parts, self._size = [buf], len(buf)
                return
            if not buf.startswith(SIGNATURE):
                raise ValueError("not a binary COPY stream (bad signature)")
            (ext,) = struct.unpack_from("!i", buf, 15)
            buf = buf[19 + ext :]
            self._header_done = True
        k = len(buf) // self._dtype.itemsize
        if k:
            rows = np.frombuffer(buf, dtype=self._dtype, count=k)
            self._check(rows)
            self._on_rows(rows)
        rest = buf[k * self._dtype.itemsize :]
        self._parts, self._size = ([rest], len(rest)) if rest else ([], 0)

    def _check(self, rows: np.ndarray) -> None:
        # A row of another width (a NULL, a longer array) would shift every later field;
        # the constant fields (counts, lengths, array header) catch that.
        for path, value in self._expect.items():
            col = rows
            for name in path:
                col = col[name]
            if not (col == value).all():
                raise ValueError(
                    f"binary COPY row field {'.'.join(path)} is not {value}: rows are not of "
                    "the expected fixed width"
                )

    def close(self) -> None:
        """Parse what is left and check that exactly the trailer remains."""
        self._flush()
        rest = b"".join(self._parts)
        if rest != TRAILER:
            raise ValueError(
                f"binary COPY stream ended with {len(rest)} unparsed bytes: rows are not of "
                "the expected fixed width"
            )


class TupleSink:
    """A write-only file object that parses a binary COPY stream tuple by tuple.

    ``on_tuple`` gets each tuple's fields as bytes (None for NULL). psycopg2 writes one
    COPY message (one tuple) per ``write``, so the common path never copies pending bytes.
    """

    def __init__(self, on_tuple: Callable[[list[bytes | None]], None]) -> None:
        self._on_tuple = on_tuple
        self._pending = b""
        self._header_done = False
        self.finished = False

    def write(self, data: bytes | memoryview) -> int:
        buf = self._pending + bytes(data) if self._pending else bytes(data)
        off = 0
        if not self._header_done:
            if len(buf) < len(HEADER):
                self._pending = buf
                return len(data)
            if not buf.startswith(SIGNATURE):
                raise ValueError("not a binary COPY stream (bad signature)")
            (ext,) = struct.unpack_from("!i", buf, 15)
            off = 19 + ext
            self._header_done = True
        while off + 2 <= len(buf):
            (nf,) = struct.unpack_from("!h", buf, off)
            if nf == -1:
                self.finished = True
                off += 2
                break
            end = _tuple_end(buf, off + 2, nf)
            if end < 0:
                break
            pos = off + 2
            fields: list[bytes | None] = []
            for _ in range(nf):
                (n,) = struct.unpack_from("!i", buf, pos)
                pos += 4
                if n < 0:
                    fields.append(None)
                else:
                    fields.append(buf[pos : pos + n])
                    pos += n
            self._on_tuple(fields)
            off = end
        self._pending = buf[off:]
        return len(data)


def _tuple_end(buf: bytes, pos: int, nf: int) -> int:
    """End offset of the tuple whose fields start at ``pos``, or -1 if it is incomplete."""
    for _ in range(nf):
        if pos + 4 > len(buf):
            return -1
        (n,) = struct.unpack_from("!i", buf, pos)
        pos += 4 + max(n, 0)
    return pos if pos <= len(buf) else -1
