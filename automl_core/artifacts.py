"""Artifact stores: named byte blobs in a local folder or under an S3 prefix.

An artifact store is a small key/value contract (``ArtifactStore``) with two
implementations. Keys are relative, ``/``-separated paths such as ``model.pt`` or
``trial-7/state.pt``; the store maps them under its root (a folder, or a bucket and
prefix). The S3 store takes an injected boto3 client, so tests point it at a moto
server and deployments at AWS or MinIO.

``artifact_store_for(target)`` turns what a user typed (``./out``, ``/abs/dir``,
``s3://bucket/prefix``) into a store, and raises ``UserInputError`` for anything else.
An S3 store raises ``UserInputError`` too when the target is the user's to fix: a missing
bucket, denied access, no credentials, an endpoint that refuses or does not answer.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from automl_core.errors import UserInputError

# Bucket naming rules of S3 (and MinIO): 3-63 characters, lowercase letters, digits,
# dots and hyphens, starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Timeouts and tries of the S3 clients automl builds (s3_client_config): botocore's own
# (60 s to read, 3 tries) made a stalled endpoint a silent ~3 minute wait. The read
# timeout bounds each wait for an answer, not an upload, so 15 s is ample for one PUT.
S3_CONNECT_TIMEOUT_S = 5
S3_READ_TIMEOUT_S = 15
S3_MAX_ATTEMPTS = 2


class ArtifactNotFoundError(LookupError):
    """The key names no artifact in the store."""


@runtime_checkable
class ArtifactStore(Protocol):
    """Named byte blobs.

    Contract (checked by one shared test against every implementation):
    ``put_bytes`` then ``get_bytes`` returns the same bytes; a second ``put_bytes`` to the
    same key replaces the first, atomically (a reader sees the old or the new bytes);
    ``get_bytes`` of a missing key raises ``ArtifactNotFoundError``; ``delete`` removes a
    key and ignores a missing one; ``list(prefix)`` returns the sorted keys that start with
    ``prefix`` (a plain string prefix, as in S3); an invalid key raises ``ValueError``;
    ``check_writable`` raises UserInputError naming the target if it cannot be written,
    and leaves nothing behind.
    """

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def describe(self, key: str = "") -> str:
        """A human-readable location of ``key`` (for messages and model cards)."""
        ...

    def check_writable(self) -> None: ...


def check_key(key: str) -> str:
    """Return ``key`` if it is a relative ``/``-separated path without ``.``/``..`` parts.

    Raises ValueError otherwise: keys come from code, not users, and a key that could
    climb out of the store's root is a bug.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"The artifact key is {key!r}, but must be a non-empty string.")
    parts = key.split("/")
    if key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"The artifact key is {key!r}, but must be a relative path of non-empty parts "
            "separated by '/', without '.', '..' or backslashes."
        )
    return key


class LocalArtifactStore:
    """Artifacts as files under ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically: readers see the old or the new file, never half."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:16]}.tmp")
        # Mode 0o666 less the umask, as open() gives (mkstemp's 0600 kept a serving
        # process of another user from reading an export).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        """The bytes at ``key``; ArtifactNotFoundError when there are none."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactNotFoundError(f"No artifact {key!r} in {self.root}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix``; temporary files of unfinished writes excluded."""
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".tmp")):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def describe(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    def check_writable(self) -> None:
        """UserInputError naming the folder if it cannot be written (check_local_folder)."""
        fix = "give a folder you may write to, or s3://bucket/prefix."
        check_local_folder(self.root, "The artifact target", fix, writable=True)


def s3_client_config(base: Any | None = None) -> Any:
    """The botocore ``Config`` of automl's S3 clients: short connect and read timeouts
    and bounded retries (``S3_*`` above). Options set explicitly in ``base`` (say, the
    ``config_kwargs`` of an Airflow AWS connection, ``S3Hook(...).config``) win."""
    from botocore.config import Config

    ours = Config(
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_READ_TIMEOUT_S,
        retries={"total_max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
    )
    return ours if base is None else ours.merge(base)


def default_s3_client() -> Any:
    """A boto3 S3 client configured by the usual environment and ``s3_client_config``.

    Credentials and region come from boto3's own chain (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles, instance roles). The
    endpoint is ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` when set, so MinIO and
    other S3-compatible servers work; passing it explicitly also covers botocore
    versions that predate those variables.
    """
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None, config=s3_client_config())


def _error_code(exc: BaseException) -> str:
    """The error code of a botocore ClientError ("NoSuchKey", "403", ...), else ""."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


# A missing object (a missing bucket is the target's fault: see _s3_user_error).
_MISSING = {"404", "NoSuchKey", "NotFound"}


def _s3_user_error(
    exc: BaseException, where: str, endpoint: str, bucket_call: bool
) -> UserInputError | None:
    """The UserInputError, naming ``where`` and the fix, for an S3 call that failed
    because of the target, the credentials or the endpoint; None for other failures.
    ``bucket_call``: the call was on the bucket (HEAD answers "404", having no body)."""
    from botocore import exceptions as bx

    code = "NoSuchBucket" if bucket_call and _error_code(exc) in _MISSING else _error_code(exc)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        why = "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif isinstance(exc, bx.ConnectionError | bx.HTTPClientError):  # refused, timed out
        why = (
            f"the endpoint {endpoint} did not answer ({type(exc).__name__}): check the "
            "endpoint (AWS_ENDPOINT_URL_S3, or the AWS connection's) and the network"
        )
    elif code == "NoSuchBucket":
        why = f"its bucket does not exist at {endpoint}: create it, or give an existing one"
    elif code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        why = f"{endpoint} denied access ({code}): check the credentials and their rights"
    else:
        return None
    return UserInputError(f"The S3 target {where} cannot be used: {why}.")


class S3ArtifactStore:
    """Artifacts as objects ``s3://bucket/prefix/key``.

    ``client`` is a boto3 S3 client (injected in tests); by default one is built from
    the environment by ``default_s3_client`` on first use.
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_s3_client()
        return self._client

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _user_errors(self, key: str | None = None, bucket_call: bool = False) -> Iterator[None]:
        """Every call: a missing ``key`` raises ArtifactNotFoundError, a failure that is
        the user's to fix ``_s3_user_error``'s UserInputError."""
        try:
            yield
        except Exception as exc:
            if key is not None and _error_code(exc) in _MISSING:
                raise ArtifactNotFoundError(f"No artifact at {self.describe(key)}") from exc
            endpoint = str(getattr(getattr(self.client, "meta", None), "endpoint_url", "S3"))
            error = _s3_user_error(exc, self.describe(), endpoint, bucket_call)
            if error is None:
                raise
            raise error from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload ``data`` to ``key`` (a single PUT, which S3 makes atomic)."""
        with self._user_errors():
            self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ArtifactNotFoundError when the key does not exist."""
        with self._user_errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        try:
            with self._user_errors(key):
                self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ArtifactNotFoundError:  # a HEAD says 404 for a missing bucket too
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove the object (S3 answers a missing key with success too)."""
        with self._user_errors():
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys under the store's prefix that start with ``prefix``."""
        base = f"{self.prefix}/" if self.prefix else ""
        with self._user_errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            return sorted(i["Key"][len(base) :] for p in pages for i in p.get("Contents", []))

    def check_writable(self) -> None:
        """HEAD the bucket: UserInputError when it is missing, denied or unreachable
        (``_s3_user_error``). Object writes are not tried: that would write."""
        with self._user_errors(bucket_call=True):
            self.client.head_bucket(Bucket=self.bucket)

    def describe(self, key: str = "") -> str:
        path = "/".join(p for p in (self.prefix, key) if p)
        return f"s3://{self.bucket}/{path}"


def check_local_folder(
    path: str | os.PathLike[str], what: str, fix: str, *, writable: bool = False
) -> Path:
    """``path`` (``~`` expanded) if it is a folder or can be created as one.

    Raises UserInputError ``"{what} '{path}' ...: {fix}"`` when ``path`` is an existing
    file, or when one of its existing ancestors is a file (so creating it would fail
    with ``NotADirectoryError``). With ``writable``, also when the OS refuses to create
    an entry in its nearest existing folder (no permission, read-only, ``/proc``): tried by
    creating and removing an empty folder there (``access()`` says yes to root).
    """
    folder = Path(path).expanduser()
    for place in (folder, *folder.parents):
        if place.is_dir():
            if writable:
                try:
                    os.rmdir(tempfile.mkdtemp(prefix=".automl-check-", dir=place))
                except OSError as exc:
                    raise UserInputError(
                        f"{what} {str(path)!r} cannot be written: {exc.strerror or exc} in "
                        f"{str(place)!r}: {fix}"
                    ) from None
            return folder
        if place.exists() or place.is_symlink():
            why = f"cannot be created: {str(place)!r} is a file" if place != folder else ""
            raise UserInputError(
                f"{what} {str(path)!r} {why or 'is an existing file'}, not a folder: {fix}"
            )
    return folder


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket[/prefix]`` into ``(bucket, prefix)``.

    Raises UserInputError naming ``uri`` when the bucket name breaks S3's naming rules
    or the prefix has empty, ``.`` or ``..`` parts.
    """
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise UserInputError(
            f"The S3 target {uri!r} has bucket name {bucket!r}, which is not a valid bucket: "
            "use s3://bucket/prefix with a bucket of 3-63 lowercase letters, digits, dots "
            "or hyphens."
        )
    prefix = prefix.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise UserInputError(
                f"The S3 target {uri!r} has prefix {prefix!r}: use s3://bucket/prefix with "
                "a prefix of '/'-separated parts, none of them empty, '.' or '..'."
            ) from None
    return bucket, prefix


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
