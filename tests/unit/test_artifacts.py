"""Artifact targets and keys, and the local store (the S3 store is tested against moto
in tests/integration/test_export_s3.py, with the same contract)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl_core.artifacts import (
    ArtifactNotFoundError,
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    artifact_store_for,
    check_key,
    parse_s3_uri,
    read_uri,
)
from automl_core.errors import UserInputError


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://models", "models", ""),
        ("s3://models/", "models", ""),
        ("s3://my.bucket-1/exp/best", "my.bucket-1", "exp/best"),
        ("s3://abc/x/", "abc", "x"),
    ],
)
def test_parse_s3_uri(uri: str, bucket: str, prefix: str) -> None:
    assert parse_s3_uri(uri) == (bucket, prefix)


@pytest.mark.parametrize(
    "target",
    [
        "s3://",
        "s3://ab",  # too short
        "s3://Upper/x",
        "s3://under_score/x",
        "s3://-leading/x",
        "s3://a..b/x",
        "s3://bucket/a//b",
        "s3://bucket/../etc",
        "S3://bucket/x",
        "s3:/bucket/x",
        "gs://bucket/x",
        "http://example.com/x",
        "",
        "   ",
    ],
)
def test_bad_targets_raise_user_input_error(target: str) -> None:
    with pytest.raises(UserInputError) as err:
        artifact_store_for(target)
    # The message names the input or says what is missing, and says what to give instead.
    assert "s3://bucket/prefix" in str(err.value) or "lowercase" in str(err.value)


def test_target_kinds(tmp_path: Path) -> None:
    s3 = artifact_store_for("s3://bucket-a/runs/7", client=object())
    assert isinstance(s3, S3ArtifactStore)
    assert (s3.bucket, s3.prefix) == ("bucket-a", "runs/7")
    assert s3.describe("model.pt") == "s3://bucket-a/runs/7/model.pt"

    local = artifact_store_for(str(tmp_path / "new" / "dir"))
    assert isinstance(local, LocalArtifactStore)
    assert local.root == tmp_path / "new" / "dir"
    assert not local.root.exists(), "choosing a target must not write anything"

    via_file = artifact_store_for(f"file://{tmp_path}")
    assert isinstance(via_file, LocalArtifactStore) and via_file.root == tmp_path
    assert isinstance(local, ArtifactStore) and isinstance(s3, ArtifactStore)


def test_existing_file_is_not_a_folder_target(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(UserInputError, match="existing file"):
        artifact_store_for(str(f))


def test_a_target_inside_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    for target in (f / "sub", f / "sub" / "deeper"):
        with pytest.raises(UserInputError, match=r"cannot be created: '.*file.txt' is a file"):
            artifact_store_for(str(target))
    assert f.read_text() == "x"


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/./b", "a/..", "a\\b", "a/"])
def test_bad_keys(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


def test_keys_cannot_escape_local_root(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "root")
    with pytest.raises(ValueError):
        store.put_bytes("../outside", b"x")
    assert not (tmp_path / "outside").exists()


def test_local_store_roundtrip_and_listing(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "root")
    assert store.list() == []
    store.put_bytes("model.pt", b"\x00\x01weights")
    store.put_bytes("trials/2/state.pt", b"two")
    store.put_bytes("trials/10/state.pt", b"ten")
    store.put_bytes("model.pt", b"replaced")
    assert store.get_bytes("model.pt") == b"replaced"
    assert store.list() == ["model.pt", "trials/10/state.pt", "trials/2/state.pt"]
    assert store.list("trials/1") == ["trials/10/state.pt"]
    assert store.exists("trials/2/state.pt") and not store.exists("trials/2")
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["model.pt", "trials"]
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes("missing.pt")
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes("trials")  # a folder is not an artifact


def test_read_uri_local(tmp_path: Path) -> None:
    p = tmp_path / "state.pt"
    p.write_bytes(b"abc")
    assert read_uri(str(p)) == b"abc"
    assert read_uri(f"file://{p}") == b"abc"
    with pytest.raises(ArtifactNotFoundError):
        read_uri(str(tmp_path / "nope"))
