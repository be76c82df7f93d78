"""Static checks of docker/: no Docker engine runs here, so the files are read, not run.

The compose file is parsed and interpolated with docker/.env.example the way Compose
does it (``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``, ``$$``), then the settings
that must agree across services are compared.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.airflow.helpers import REPO

DOCKER = REPO / "docker"
VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str], missing: set[str]) -> Any:
    """Compose's variable substitution, recording variables with neither value nor default."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env and (env[name] or op != ":-"):
            return env[name]
        if op in (":-", "-"):
            return arg
        missing.add(name)
        return ""

    return VAR.sub(replace, value)


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return dotenv(DOCKER / ".env.example")


@pytest.fixture(scope="module")
def compose(example_env: dict[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    missing: set[str] = set()
    resolved = interpolate(raw, example_env, missing)
    assert not missing, f"compose.yaml uses variables .env.example does not set: {missing}"
    return resolved


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)


def test_every_role_has_a_service(services: dict[str, Any]) -> None:
    expected = {
        "metadata-db",
        "warehouse",
        "minio",
        "minio-init",
        "dask-scheduler",
        "dask-worker",
        "dask-worker-gpu0",
        "dask-worker-gpu1",
        *AIRFLOW_SERVICES,
    }
    assert expected <= set(services)


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: image {image!r} is not pinned"
        if not image.startswith("automl-greenplum:"):
            # Third-party images: a version or a dated release, not a moving tag ("16", "stable").
            assert re.search(r"\d+\.\d+|^RELEASE\.\d{4}-\d\d-\d\dT", tag), (
                f"{name}: {image!r} needs a full version tag"
            )


def test_airflow_services_share_one_configuration(services: dict[str, Any]) -> None:
    envs = [services[name]["environment"] for name in AIRFLOW_SERVICES]
    assert all(env == envs[0] for env in envs)
    env = envs[0]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) <= 16
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert env[key], key
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-api-server"
    assert f"{api.port}:{api.port}" in services["airflow-api-server"]["ports"][0] or str(
        api.port
    ) in " ".join(services["airflow-api-server"]["command"])


def test_metadata_database_url_matches_its_service(services: dict[str, Any]) -> None:
    env = services["airflow-scheduler"]["environment"]
    url = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    db = services["metadata-db"]["environment"]
    assert url.hostname == "metadata-db"
    assert (url.username, url.password) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"])
    assert url.path.lstrip("/") == db["POSTGRES_DB"]


def test_automl_db_url_points_at_the_warehouse(services: dict[str, Any]) -> None:
    wh = services["warehouse"]["environment"]
    for name in (*AIRFLOW_SERVICES, "dask-worker", "dask-worker-gpu0"):
        env = services[name]["environment"]
        url = urlsplit(env["AUTOML_DB_URL"])
        assert (url.hostname, url.port) == ("warehouse", 5432), name
        assert (url.username, url.password) == (wh["POSTGRES_USER"], wh["POSTGRES_PASSWORD"])
        assert url.path.lstrip("/") == wh["POSTGRES_DB"]
    airflow_env = services["airflow-scheduler"]["environment"]
    # The hook's Airflow connection and the core's variable name the same database.
    assert airflow_env["AIRFLOW_CONN_AUTOML_DB"] == airflow_env["AUTOML_DB_URL"]


def test_dask_address_matches_the_scheduler_and_the_workers(services: dict[str, Any]) -> None:
    command = services["dask-scheduler"]["command"]
    port = command[command.index("--port") + 1]
    address = f"tcp://dask-scheduler:{port}"
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AUTOML_DASK_ADDRESS"] == address
    for name in ("dask-worker", "dask-worker-gpu0", "dask-worker-gpu1"):
        worker = services[name]["command"]
        assert worker[:3] == ["dask", "worker", address], name
        # One model at a time per worker: one process, one thread.
        assert worker[worker.index("--nworkers") + 1] == "1"
        assert worker[worker.index("--nthreads") + 1] == "1"


def test_gpu_workers_each_reserve_one_gpu(services: dict[str, Any]) -> None:
    devices = []
    for name in ("dask-worker-gpu0", "dask-worker-gpu1"):
        service = services[name]
        assert service["profiles"] == ["gpu"]
        assert "cu" in service["image"].rpartition(":")[2]
        (reservation,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert reservation["driver"] == "nvidia" and reservation["capabilities"] == ["gpu"]
        devices += reservation["device_ids"]
    assert sorted(devices) == ["0", "1"]
    build = services["dask-worker-gpu0"]["build"]
    assert "cu126" in build["args"]["TORCH_INDEX_URL"]


def test_s3_settings_point_at_minio(services: dict[str, Any]) -> None:
    minio = services["minio"]
    port = minio["command"][minio["command"].index("--address") + 1].lstrip(":")
    endpoint = f"http://minio:{port}"
    env = services["airflow-scheduler"]["environment"]
    assert env["AWS_ENDPOINT_URL"] == endpoint
    assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["conn_type"] == "aws"
    assert aws["extra"]["endpoint_url"] == endpoint
    assert (aws["login"], aws["password"]) == (
        env["AWS_ACCESS_KEY_ID"],
        env["AWS_SECRET_ACCESS_KEY"],
    )
    assert "local/automl-models" in services["minio-init"]["command"][0]


def test_init_creates_the_training_pool() -> None:
    script = (DOCKER / "airflow-init.sh").read_text()
    assert "airflow db migrate" in script
    assert re.search(
        r"airflow pools set automl_training \"\$\{AUTOML_TRAINING_SLOTS:-1\}\"", script
    )


def test_dockerfile_stages_and_commands() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.M)
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert stages == ["builder", "runtime"]
    (torch_pin,) = re.findall(r"^torch==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert f"ARG TORCH_VERSION={torch_pin}" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in text
    assert 'pip install -c constraints.txt ".[airflow]"' in text
    assert "pip check" in text
    assert re.search(r"^USER airflow$", text, re.M)
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/opt/automl/docker/entrypoint.sh"]' in text
    for key in (
        "AIRFLOW__CORE__DAGS_FOLDER=/opt/automl/dags",
        "AIRFLOW__CORE__LOAD_EXAMPLES=False",
    ):
        assert key in text


def test_dockerfile_copies_files_that_exist() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    sources = []
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        parts = [p for p in line.split() if not p.startswith("--")]
        sources += parts[:-1]
    assert sources
    missing = [s for s in sources if not (REPO / s).exists()]
    assert not missing, f"the Dockerfile copies files the repository lacks: {missing}"
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".automl", ".git"} <= set(ignored)


@pytest.mark.parametrize("script", ["entrypoint.sh", "airflow-init.sh"])
def test_scripts_are_executable_strict_bash(script: str) -> None:
    path = DOCKER / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    bash = shutil.which("bash")
    assert bash, "bash is needed to syntax-check the scripts"
    done = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_image_workers_start_without_dasks_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker/dask.yaml, copied to /etc/dask, drops MALLOC_TRIM_THRESHOLD_ from what a
    nanny sets before it starts a worker (it slowed training 1.3-1.6x) and keeps the
    one-thread settings."""
    import dask.config
    import distributed  # noqa: F401  (its defaults)
    from distributed.nanny import _get_env_variables

    assert "COPY docker/dask.yaml /etc/dask/dask.yaml" in (DOCKER / "Dockerfile").read_text()
    image = yaml.safe_load((DOCKER / "dask.yaml").read_text())
    for key in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    with dask.config.set(dask.config.merge(dask.config.config, image)):
        env = _get_env_variables("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" not in env
    assert env["OMP_NUM_THREADS"] == "1"
