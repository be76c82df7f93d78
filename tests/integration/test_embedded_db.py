"""The embedded PostgreSQL server: start, reuse, stop, accounts, and what it touches.

Each test uses its own temporary project home and stops its server at the end. The
homes come from tempfile (not tmp_path) because, run as root, the server runs as an
unprivileged account that must be able to reach them, and pytest's root-owned base
folder is private (0700).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

from automl_core.config import repository_root
from automl_core.embedded_server import server as embedded
from automl_core.embedded_server.server import EmbeddedServerError, first_unreachable
from automl_core.store import connect, database_url, describe

IS_ROOT = os.geteuid() == 0


def expected_server_uid() -> int:
    """Root runs the server as ``nobody`` (the default account); anyone else as itself."""
    if IS_ROOT:
        return pwd.getpwnam(os.environ.get("AUTOML_EMBEDDED_USER") or "nobody").pw_uid
    return os.getuid()


@contextmanager
def temporary_home(subfolder: str = "") -> Iterator[Path]:
    """A fresh project home; its server is stopped and the folder removed at the end."""
    base = Path(tempfile.mkdtemp(prefix="automl-emb-"))
    base.chmod(0o755)
    home = base / subfolder if subfolder else base
    try:
        yield home
    finally:
        embedded.stop(home)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """One embedded server shared by the tests of this module (initdb is the slow part)."""
    with temporary_home() as folder, pytest.MonkeyPatch.context() as patch:
        patch.delenv("AUTOML_DB_URL", raising=False)
        patch.setenv("AUTOML_HOME", str(folder))
        yield folder


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=repository_root(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def setting(conn: object, name: str) -> str:
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT current_setting(%s)", (name,))
        return str(cur.fetchone()[0])


def test_first_use_starts_a_private_server(home: Path) -> None:
    parent_before = home.parent.stat()
    info = embedded.ensure_server(home)
    assert database_url() == info.url
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), version()")
            name, version = cur.fetchone()
        assert name == "automl" and version.startswith("PostgreSQL 18")
        fits = len(os.fsencode(home / "pg" / "run" / ".s.PGSQL.5432")) <= 107
        if fits:  # the normal case: a unix socket in the project home and no TCP at all
            assert info.socket_dir == home / "pg" / "run"
            assert setting(conn, "listen_addresses") == ""
    finally:
        conn.close()
    pg = home / "pg"
    assert sorted(p.name for p in home.iterdir()) == ["pg"]
    assert {p.name for p in pg.iterdir()} == {"data", "run", "lock", "password", "server.log"}
    for private in (pg / "data", pg / "run", pg / "password"):
        assert stat.S_IMODE(private.stat().st_mode) & 0o077 == 0, private
    assert (pg / "data").stat().st_uid == expected_server_uid()
    assert Path(f"/proc/{info.pid}").stat().st_uid == expected_server_uid()
    parent_after = home.parent.stat()
    assert (parent_after.st_mode, parent_after.st_uid) == (
        parent_before.st_mode,
        parent_before.st_uid,
    )


def test_the_server_is_reused_within_and_across_processes(home: Path) -> None:
    first = embedded.ensure_server(home)
    assert embedded.ensure_server(home).pid == first.pid
    done = run_python(
        "from automl_core.embedded_server import server as embedded\n"
        "from automl_core.store import connect\n"
        "conn = connect()\n"
        "cur = conn.cursor(); cur.execute('SELECT current_database()')\n"
        "print(embedded.ensure_server().pid, cur.fetchone()[0])\n",
        {"AUTOML_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(first.pid), "automl"]


def test_stop_and_restart_keep_the_data(home: Path) -> None:
    before = embedded.ensure_server(home)
    conn = connect()
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS kept (i int)")
        cur.execute("INSERT INTO kept VALUES (42)")
    conn.close()
    assert embedded.stop(home) is True
    assert embedded.server_info(home) is None
    assert not Path(f"/proc/{before.pid}").exists()
    assert embedded.stop(home) is False
    after = embedded.ensure_server(home)
    assert after.pid != before.pid
    conn = connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT i FROM kept")
        assert cur.fetchall() == [(42,)]
    conn.close()


def test_processes_starting_at_once_share_one_server() -> None:
    code = "from automl_core.embedded_server import server as embedded\nprint(embedded.ensure_server().pid)\n"
    with temporary_home() as folder:
        env = {**os.environ, "AUTOML_HOME": str(folder)}
        env.pop("AUTOML_DB_URL", None)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                env=env,
                cwd=repository_root(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        pids = {out.strip() for out, _ in outputs}
        info = embedded.server_info(folder)
        assert info is not None and pids == {str(info.pid)}


def test_a_long_home_listens_on_loopback_with_a_password() -> None:
    with temporary_home("h" * 90) as folder:
        info = embedded.ensure_server(folder)
        assert info.socket_dir is None and info.host == "127.0.0.1"
        assert info.password and info.password not in describe(info.url)
        conn = connect(info.url)
        try:
            assert setting(conn, "listen_addresses") == "127.0.0.1"
            assert setting(conn, "unix_socket_directories") == ""
        finally:
            conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(info.url.replace(info.password, "wrong"))


def python_for(uid: int) -> str:
    """An interpreter of this Python version that the account ``uid`` can execute."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (
        sys.executable,
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ):
        real = Path(candidate).resolve()
        reachable = real.exists() and first_unreachable(real.parent, uid, (uid,)) is None
        if reachable and real.stat().st_mode & stat.S_IXOTH:
            return str(real)
    pytest.fail(f"no python{version} that uid {uid} can execute; install one in /usr/bin")


def test_an_ordinary_user_runs_its_own_server() -> None:
    """As root: the same code run by ``nobody`` (an ordinary account) in its own home."""
    code = (
        "import json, os\n"
        "from automl_core.embedded_server import server as embedded\n"
        "from automl_core.store import connect\n"
        "conn = connect(); cur = conn.cursor(); cur.execute('SELECT current_database()')\n"
        "info = embedded.ensure_server()\n"
        "owner = (embedded.layout().data).stat().st_uid\n"
        "print(json.dumps({'euid': os.geteuid(), 'db': cur.fetchone()[0], 'owner': owner,\n"
        "                  'server': os.stat(f'/proc/{info.pid}').st_uid}))\n"
        "conn.close()\n"
        "print(json.dumps({'stopped': embedded.stop()}))\n"
    )
    with temporary_home() as folder:
        user = pwd.getpwnam("nobody") if IS_ROOT else pwd.getpwuid(os.getuid())
        if IS_ROOT:
            os.chown(folder, user.pw_uid, user.pw_gid)  # the test's own folder, given away
        env = {k: v for k, v in os.environ.items() if k != "AUTOML_DB_URL"}
        env.update(
            AUTOML_HOME=str(folder),
            HOME=str(folder),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONPATH=os.pathsep.join([str(repository_root()), sysconfig.get_paths()["purelib"]]),
        )
        done = subprocess.run(
            [python_for(user.pw_uid), "-c", code],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=user.pw_uid if IS_ROOT else None,
            group=user.pw_gid if IS_ROOT else None,
            extra_groups=[] if IS_ROOT else None,
        )
        assert done.returncode == 0, done.stderr
        first, second = (json.loads(line) for line in done.stdout.splitlines())
        assert first["euid"] == user.pw_uid != 0
        uid = user.pw_uid
        assert first == {"euid": uid, "db": "automl", "owner": uid, "server": uid}
        assert second == {"stopped": True}
        if IS_ROOT:  # root reuses the cluster, still running it as the account that owns it
            info = embedded.ensure_server(folder)
            assert Path(f"/proc/{info.pid}").stat().st_uid == uid


def test_an_unreachable_home_is_refused_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with temporary_home() as base:
        check_refusal(base, monkeypatch)


def check_refusal(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = base / "private"
    private.mkdir()
    private.chmod(0o700)
    owner = private.stat()
    stranger = embedded._Account(
        "stranger", owner.st_uid + 1, owner.st_gid + 1, (owner.st_gid + 1,), switch=True
    )
    monkeypatch.setattr(embedded, "_account", lambda lay: stranger)
    home = private / "home"
    with pytest.raises(EmbeddedServerError) as info:
        embedded.ensure_server(home)
    message = str(info.value)
    assert f"cannot enter {private}" in message
    assert "AUTOML_HOME" in message and "AUTOML_DB_URL" in message
    assert not home.exists()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # permissions left alone


def test_first_unreachable() -> None:
    base = Path(tempfile.mkdtemp(prefix="automl-reach-"))
    try:
        base.chmod(0o755)
        st = base.stat()
        inner = base / "a" / "b"
        inner.mkdir(parents=True)
        (base / "a").chmod(0o710)
        other_uid, other_gid = st.st_uid + 1, st.st_gid + 1
        assert first_unreachable(inner, st.st_uid, (st.st_gid,)) is None  # the owner
        assert first_unreachable(inner, 0, ()) is None  # root
        assert first_unreachable(inner / "not" / "yet", st.st_uid, (st.st_gid,)) is None
        assert first_unreachable(base, other_uid, (other_gid,)) is None  # /tmp-like chain
        assert first_unreachable(inner, other_uid, (other_gid,)) == base / "a"
        assert first_unreachable(inner, other_uid, (st.st_gid,)) is None  # 0710: group may
    finally:
        shutil.rmtree(base)
