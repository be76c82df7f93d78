"""An S3 endpoint that answers the bucket check with an unexpected error: one line naming
the target, the answer and the fix, never a botocore traceback (a stub S3 server on
loopback)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from automl_core.artifacts import artifact_store_for
from automl_core.cli import main
from automl_core.errors import UserInputError


class _Answers400(BaseHTTPRequestHandler):
    """Every request is answered "400 Bad Request" (a proxy, or a server that is no S3)."""

    def _refuse(self) -> None:
        self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = do_PUT = do_POST = do_DELETE = _refuse

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def endpoint_400(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers400)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": url,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield url
    server.shutdown()
    server.server_close()


def test_an_endpoint_answering_400_to_the_bucket_check_is_the_users_to_fix(
    endpoint_400: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """HeadBucket answered 400 gave a botocore ClientError traceback from `automl export`."""
    store = artifact_store_for("s3://bucket/x")
    with pytest.raises(UserInputError) as caught:
        store.check_writable()
    message = str(caught.value)
    assert message.startswith("The S3 target s3://bucket/x cannot be used: the endpoint ")
    assert "answered 400 Bad Request" in message and endpoint_400 in message
    assert "check that" in message and "\n" not in message
    assert main(["export", "exp", "--to", "s3://bucket/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "answered 400 Bad Request" in err
