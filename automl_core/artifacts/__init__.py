"""Artifact stores: named byte blobs in a local folder or under an S3 prefix.

An artifact store is a small key/value contract (``ArtifactStore``) with two
implementations. Keys are relative, ``/``-separated paths such as ``model.pt`` or
``trial-7/state.pt``; the store maps them under its root (a folder, or a bucket and
prefix). The S3 store takes an injected boto3 client, so tests point it at a moto
server and deployments at AWS or MinIO. ``store`` holds the contract and the local
store, ``s3`` the S3 store.

``artifact_store_for(target)`` turns what a user typed (``./out``, ``/abs/dir``,
``s3://bucket/prefix``) into a store, and raises ``UserInputError`` for anything else.
An S3 store raises ``UserInputError`` too when the target is the user's to fix: a missing
bucket, denied access, no credentials, an endpoint that refuses or does not answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automl_core.artifacts.s3 import (
    S3ArtifactStore,
    default_s3_client,
    parse_s3_uri,
    s3_client_config,
)
from automl_core.artifacts.store import (
    ArtifactNotFoundError,
    ArtifactStore,
    LocalArtifactStore,
    check_key,
    check_local_folder,
    replace_file,
)
from automl_core.errors import UserInputError

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "artifact_store_for",
    "check_key",
    "check_local_folder",
    "default_s3_client",
    "parse_s3_uri",
    "read_uri",
    "replace_file",
    "s3_client_config",
]


def artifact_store_for(target: str, client: Any | None = None) -> ArtifactStore:
    """The store for a folder path or an ``s3://bucket/prefix`` URI.

    A folder need not exist yet (it is created on the first write), but neither it nor
    any of its parents may be an existing file (``check_local_folder``). ``client`` is
    used for S3 targets only. Raises UserInputError for an empty target, a URI scheme
    other than ``s3://`` or ``file://``, or a bad bucket name.
    """
    if not isinstance(target, str) or not target.strip():
        raise UserInputError(
            "The artifact target is empty: give a folder path or s3://bucket/prefix."
        )
    target = target.strip()
    if target.lower().startswith("s3://"):
        if not target.startswith("s3://"):
            raise UserInputError(f"The S3 target {target!r} must start with lowercase 's3://'.")
        bucket, prefix = parse_s3_uri(target)
        return S3ArtifactStore(bucket, prefix, client=client)
    if target.startswith("file://"):
        target = target[len("file://") :]
    elif "://" in target or target.lower().startswith("s3:"):
        scheme = target.split(":", 1)[0]
        raise UserInputError(
            f"The artifact target {target!r} uses scheme {scheme!r}, which is not supported: "
            "give a folder path or s3://bucket/prefix."
        )
    fix = "give a folder path (it is created if missing) or s3://bucket/prefix."
    return LocalArtifactStore(check_local_folder(target, "The artifact target", fix))


def read_uri(uri: str, client: Any | None = None) -> bytes:
    """The bytes of one artifact named by a full URI (``s3://bucket/key`` or a file path).

    Used for checkpoints stored by reference. Raises ArtifactNotFoundError when missing,
    UserInputError when its S3 bucket cannot be used (see ``S3ArtifactStore``).
    """
    if uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        if not key:
            raise ArtifactNotFoundError(f"The URI {uri!r} names a bucket, not an object")
        return S3ArtifactStore(bucket, "", client=client).get_bytes(key)
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactNotFoundError(f"No artifact at {uri}") from exc
