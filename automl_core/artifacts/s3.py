"""The S3 artifact store: artifacts as objects under ``s3://bucket/prefix``.

``S3ArtifactStore`` keeps the ``ArtifactStore`` contract (``artifacts.store``) and
raises ``UserInputError`` when the target is the user's to fix: a missing bucket,
denied access, no credentials, an endpoint that refuses or does not answer. The boto3
clients automl builds have bounded timeouts and retries (``s3_client_config``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from automl_core.artifacts.store import ArtifactNotFoundError, check_key
from automl_core.errors import UserInputError

log = logging.getLogger(__name__)

# Bucket naming rules of S3 (and MinIO): 3-63 characters, lowercase letters, digits,
# dots and hyphens, starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # fullmatch: no "\n" after $
# Whitespace and control characters: legal in an S3 key, but in a target typed or pasted
# ("s3://bucket/x\n") they are a mistake, and they would name a key no one can see.
_BAD_KEY_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# Timeouts and tries of the S3 clients automl builds (s3_client_config): botocore's own
# (60 s, 3 tries) made a stalled endpoint a silent ~3 minute wait. urllib3 sends a
# request's body under the *connect* timeout (the read timeout starts after it), so that
# one also bounds any stall in the middle of uploading a model: 20 s, not less.
S3_CONNECT_TIMEOUT_S = 20
S3_READ_TIMEOUT_S = 20
S3_MAX_ATTEMPTS = 2


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
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _s3_user_error(
    exc: BaseException, where: str, endpoint: str, bucket_call: bool
) -> UserInputError | None:
    """The UserInputError, naming ``where`` and the fix, for an S3 call that failed
    because of the target, the credentials or the endpoint; None for other failures.
    ``bucket_call``: the call was the check on the bucket (``check_writable``'s HEAD,
    which answers "404" having no body): there any answer but success is the target's,
    so every ClientError becomes a UserInputError naming the code and message."""
    from botocore import exceptions as bx

    code = "NoSuchBucket" if bucket_call and _error_code(exc) in _MISSING else _error_code(exc)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        why = "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif isinstance(exc, bx.ConnectionError | bx.HTTPClientError):  # refused, timed out
        why = (
            f"the endpoint {endpoint} did not answer, or stopped in mid-transfer "
            f"({type(exc).__name__}): check the endpoint (AWS_ENDPOINT_URL_S3, or the AWS "
            "connection's) and the network"
        )
    elif code == "NoSuchBucket":
        why = f"its bucket does not exist at {endpoint}: create it, or give an existing one"
    elif code in _DENIED:
        why = f"{endpoint} denied access ({code}): check the credentials and their rights"
    elif bucket_call and isinstance(exc, bx.ClientError):
        why = (
            f"the endpoint answered {_answer(exc)} to a HEAD of its bucket: check that "
            f"{endpoint} is an S3 endpoint (AWS_ENDPOINT_URL_S3, or the AWS connection's) "
            "and that the bucket and region are right"
        )
    else:
        return None
    return UserInputError(f"The S3 target {where} cannot be used: {why}.")


def _answer(exc: BaseException) -> str:
    """``'<code> <message>'`` of a ClientError (its HTTP status when it has no code),
    on one line and short: it is quoted to the user."""
    response = getattr(exc, "response", None)
    response = response if isinstance(response, dict) else {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode", "")
    code = str(error.get("Code") or status or "an error")
    message = " ".join(str(error.get("Message") or "").split())[:200]
    return f"{code} {message}".strip()


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
        """HEAD the bucket: UserInputError when it is missing or unreachable, or when no
        credentials are found (``_s3_user_error``). A HEAD refused with 403 is let
        through with a warning: it needs ``s3:ListBucket`` on the whole bucket, which
        credentials limited to a prefix lack (and a HEAD's 403 has no body to tell bad
        credentials apart); the export's first write then says whether they may. Object
        writes are not tried here: that would write."""
        try:
            with self._user_errors(bucket_call=True):
                self.client.head_bucket(Bucket=self.bucket)
        except UserInputError as error:
            if _error_code(error.__cause__ or error) not in _DENIED:
                raise
            log.warning("%s; going on, as credentials may be limited to the prefix", error)

    def describe(self, key: str = "") -> str:
        path = "/".join(p for p in (self.prefix, key) if p)
        return f"s3://{self.bucket}/{path}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket[/prefix]`` into ``(bucket, prefix)``.

    Raises UserInputError naming ``uri`` when the bucket name breaks S3's naming rules
    or the prefix has empty, ``.`` or ``..`` parts, whitespace or control characters.
    """
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise UserInputError(
            f"The S3 target {uri!r} has bucket name {bucket!r}, which is not a valid bucket: "
            "use s3://bucket/prefix with a bucket of 3-63 lowercase letters, digits, dots "
            "or hyphens."
        )
    prefix = prefix.strip("/")
    bad = _BAD_KEY_CHAR.search(prefix)
    if bad:
        raise UserInputError(
            f"The S3 target {uri!r} has {bad.group()!r} in its prefix {prefix!r}: use "
            "s3://bucket/prefix without whitespace or control characters."
        )
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise UserInputError(
                f"The S3 target {uri!r} has prefix {prefix!r}: use s3://bucket/prefix with "
                "a prefix of '/'-separated parts, none of them empty, '.' or '..'."
            ) from None
    return bucket, prefix
