"""An address given as the Dask cluster is checked, within a deadline, before anything
is written: a silent peer kept `automl run --cluster` waiting for ever, and an HTTP
server's reply made Dask ask numpy for exabytes; both left an experiment `running`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml

from automl_core.errors import UserInputError
from automl_core.executors.scheduler_probe import check_scheduler


@pytest.fixture(params=["silent", "http"])
def impostor(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A TCP service on loopback that accepts connections and is no Dask scheduler."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if request.param == "http":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}", request.param
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def test_a_peer_that_is_no_scheduler_is_named_within_the_deadline(
    impostor: tuple[str, str],
) -> None:
    address, kind = impostor
    start = time.monotonic()
    expected = "within 7 s" if kind == "silent" else "is not a Dask scheduler"
    with pytest.raises(UserInputError, match=expected) as err:
        check_scheduler(address, timeout=2.0)
    assert time.monotonic() - start < 15
    assert address in str(err.value) and "--cluster" in str(err.value)


def test_a_real_scheduler_passes() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        check_scheduler(cluster.scheduler_address, timeout=10.0)


def test_automl_run_refuses_it_before_the_experiment_exists(
    impostor: tuple[str, str],
    digits_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from automl_core.cli import main
    from automl_core.executors import scheduler_probe

    monkeypatch.setattr(scheduler_probe, "PROBE_TIMEOUT_S", 2.0)
    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"architecture": "mlp", "hidden": [8, 16]}))
    name = f"impostor-{impostor[1]}"
    argv = ["run", "--data", "digits", "--space", str(space), "--method", "grid"]
    code = main([*argv, "--epochs", "1", "--name", name, "--cluster", impostor[0]])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")
    with psycopg2.connect(digits_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM automl.experiments WHERE name = %s", (name,))
        assert cur.fetchone() == (0,)
    conn.close()


def test_a_tls_scheduler_is_asked_with_the_configured_certificates(tmp_path: Path) -> None:
    # The probe connected without Dask's TLS settings, which a Client uses: a tls://
    # cluster that `automl run --cluster` used before was refused as "not a scheduler".
    import dask
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()  # a self-signed certificate, in memory
    files = {}
    for key, value in (
        ("ca-file", security.tls_ca_file),
        ("client.cert", security.tls_client_cert),
        ("client.key", security.tls_client_key),
    ):
        files[f"distributed.comm.tls.{key}"] = str(tmp_path / f"{key}.pem")
        (tmp_path / f"{key}.pem").write_text(str(value))
    with (
        LocalCluster(
            n_workers=0,
            processes=False,
            protocol="tls://",
            security=security,
            dashboard_address=":0",
        ) as cluster,
        dask.config.set(files),
    ):
        assert cluster.scheduler_address.startswith("tls://")
        check_scheduler(cluster.scheduler_address, timeout=10.0)
