"""Where exports and reports go: a target the OS, the bucket, the credentials or the
endpoint refuses is a one-line UserInputError naming it, found by the checks made before
anything is written; exported files get the mode that open() gives. No server is needed:
S3 failures come from closed or silent loopback sockets and a client that answers with
botocore's errors (the moto-backed tests are in tests/integration/test_export_s3.py)."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automl_core.artifacts import LocalArtifactStore, S3ArtifactStore, default_s3_client
from automl_core.artifacts import s3 as s3_module
from automl_core.cli import main
from automl_core.errors import UserInputError
from automl_core.export import check_export_target
from automl_core.report.html import check_report_dir, write_report

needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials, no profile or instance role: only what a test sets counts."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found
    yield


@pytest.fixture
def closed_endpoint(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """An endpoint on a loopback port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    return url


@pytest.fixture
def silent_endpoint(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An endpoint that accepts connections (the kernel does) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        yield url


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# --- local folders -----------------------------------------------------------------------


def test_exported_files_get_the_mode_open_gives(tmp_path: Path) -> None:
    # mkstemp made them 0600: a serving process of another user could not read a model.
    old = os.umask(0o027)
    try:
        store = LocalArtifactStore(tmp_path / "export")
        store.put_bytes("model_card.json", b"{}")
        store.put_bytes("model_card.json", b"{ }")  # a replacement too
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "export" / "model_card.json").stat().st_mode)
    assert mode == 0o640
    assert store.list() == ["model_card.json"]  # no temporary file left


@needs_proc
def test_a_folder_the_os_refuses_is_refused_before_writing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # /proc takes no new entries, even from root, whom access() lets write anywhere.
    with pytest.raises(UserInputError, match="'/proc/nope' cannot be written"):
        check_export_target("/proc/nope")
    with pytest.raises(UserInputError, match="The report folder '/proc/rep' cannot be written"):
        check_report_dir("/proc/rep")
    # Both commands check before they connect to a database, so none is needed here.
    assert "/proc/nope" in one_line_error(capsys, "export", "exp", "--to", "/proc/nope")
    assert "/proc/rep" in one_line_error(capsys, "report", "exp", "--out", "/proc/rep/sub")


def test_the_writability_check_leaves_nothing(tmp_path: Path) -> None:
    check_export_target(str(tmp_path / "a" / "b"))
    check_report_dir(tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_report_top_0_names_the_option(tmp_path: Path) -> None:
    # The folder and --top are checked before the database is read: conn is not used.
    with pytest.raises(UserInputError, match=r"^--top \(top_k\) is 0, but must be at least 1"):
        write_report(None, "exp", tmp_path / "r", top_k=0)


# --- S3 ----------------------------------------------------------------------------------


def test_automl_s3_clients_have_short_timeouts(aws_env: None) -> None:
    config = default_s3_client().meta.config
    assert (config.connect_timeout, config.read_timeout) == (20, 20)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    # An Airflow connection's own settings win over automl's defaults.
    from botocore.config import Config

    merged = s3_module.s3_client_config(Config(read_timeout=99))
    assert (merged.connect_timeout, merged.read_timeout) == (20, 99)


def test_a_refused_endpoint_is_named(closed_endpoint: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UserInputError, match="did not answer.*EndpointConnectionError"):
        check_export_target("s3://models/x")
    err = one_line_error(capsys, "export", "exp", "--to", "s3://models/x")
    assert "s3://models/x" in err and closed_endpoint in err and "AWS_ENDPOINT_URL_S3" in err


def test_a_silent_endpoint_fails_in_seconds(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's defaults waited 3 x 60 s here, then gave a traceback.
    monkeypatch.setattr(s3_module, "S3_READ_TIMEOUT_S", 1)
    started = time.monotonic()
    with pytest.raises(UserInputError, match=f"{silent_endpoint} did not answer.*Timeout"):
        check_export_target("s3://models/x")
    assert time.monotonic() - started < 10


def test_missing_credentials_are_named(
    closed_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserInputError, match="s3://models/x cannot be used: no AWS credentials"):
        check_export_target("s3://models/x")


class AnsweringClient:
    """A boto3 S3 client stand-in whose every call fails with one ClientError."""

    def __init__(self, code: str, operation: str = "HeadBucket") -> None:
        self.code, self.operation = code, operation
        self.meta = type("Meta", (), {"endpoint_url": "https://s3.example"})()

    def __getattr__(self, name: str) -> Any:
        from botocore.exceptions import ClientError

        def call(**kwargs: Any) -> None:
            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, self.operation)

        return call


@pytest.mark.parametrize(
    ("code", "operation", "message"),
    [
        ("404", "HeadBucket", "bucket does not exist at https://s3.example: create it"),
        ("NoSuchBucket", "PutObject", "bucket does not exist"),
        ("AccessDenied", "PutObject", r"denied access \(AccessDenied\)"),
        ("InvalidAccessKeyId", "GetObject", "denied access"),
    ],
)
def test_bucket_errors_name_the_target(code: str, operation: str, message: str) -> None:
    store = S3ArtifactStore("models", "runs/1", client=AnsweringClient(code, operation))
    call = {
        "HeadBucket": store.check_writable,
        "PutObject": lambda: store.put_bytes("model.pt", b"x"),
        "GetObject": lambda: store.get_bytes("model.pt"),
    }[operation]
    with pytest.raises(UserInputError, match=f"The S3 target s3://models/runs/1 .*{message}"):
        call()


def test_a_head_bucket_refused_with_403_is_let_through_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # HeadBucket needs s3:ListBucket on the whole bucket: credentials limited to the
    # export's prefix may still write there (their first PUT says whether they may).
    store = S3ArtifactStore("models", "runs/1", client=AnsweringClient("403", "HeadBucket"))
    store.check_writable()
    assert "s3://models/runs/1" in caplog.text and "denied access (403)" in caplog.text


def test_other_s3_errors_stay_what_they_are() -> None:
    from botocore.exceptions import ClientError

    store = S3ArtifactStore("models", "", client=AnsweringClient("InternalError", "PutObject"))
    with pytest.raises(ClientError):
        store.put_bytes("model.pt", b"x")
