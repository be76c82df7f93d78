"""The account that runs the embedded server, and whether it can reach its folders."""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from automl_core.config import DB_URL_ENV, EMBEDDED_USER_ENV, HOME_ENV
from automl_core.embedded_server.state import EmbeddedServerError, Layout


@dataclass(frozen=True)
class _Account:
    """Who runs the server processes; ``switch`` when that is not the current user."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    switch: bool


def _account(lay: Layout) -> _Account:
    """The account that runs the server (see the notes in ``embedded.py``)."""
    if os.geteuid() != 0:
        name = pwd.getpwuid(os.getuid()).pw_name if _has_passwd(os.getuid()) else str(os.getuid())
        return _Account(name, os.getuid(), os.getgid(), tuple(os.getgroups()), switch=False)
    if lay.data.is_dir() and lay.data.stat().st_uid != 0 and (lay.data / "PG_VERSION").exists():
        st = lay.data.stat()  # an existing cluster keeps running as its owner
        name = pwd.getpwuid(st.st_uid).pw_name if _has_passwd(st.st_uid) else str(st.st_uid)
        groups = tuple(os.getgrouplist(name, st.st_gid)) if _has_passwd(st.st_uid) else ()
        return _Account(name, st.st_uid, st.st_gid, groups or (st.st_gid,), switch=True)
    name = os.environ.get(EMBEDDED_USER_ENV, "").strip() or "nobody"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedServerError(
            f"{EMBEDDED_USER_ENV}={name!r} is not an account on this machine. PostgreSQL "
            f"cannot run as root, so the embedded server needs an existing unprivileged "
            f"account: set {EMBEDDED_USER_ENV} to one, run automl as an ordinary user, or "
            f"set {DB_URL_ENV}."
        ) from None
    if entry.pw_uid == 0:
        raise EmbeddedServerError(
            f"{EMBEDDED_USER_ENV}={name!r} is root; PostgreSQL cannot run as root. Set it to "
            f"an unprivileged account."
        )
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return _Account(name, entry.pw_uid, entry.pw_gid, groups, switch=True)


def _has_passwd(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def first_unreachable(path: Path, uid: int, gids: tuple[int, ...]) -> Path | None:
    """The first existing folder on the way to ``path`` (inclusive) that the account
    ``uid``/``gids`` may not enter, or None when it can reach ``path``.

    Uses the permission bits (owner, then group, then other), as the kernel does;
    access control lists are not consulted.
    """
    if uid == 0:
        return None
    real = path.resolve()
    for folder in (*reversed(real.parents), real):
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None  # the rest will be created by us, with modes we choose
        if st.st_uid == uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def _check_reachable(lay: Layout, bin_dir: Path, account: _Account) -> None:
    if not account.switch:
        return
    blocked = first_unreachable(lay.root, account.uid, account.groups)
    if blocked is not None:
        raise EmbeddedServerError(
            f"the embedded server runs as {account.name!r} (PostgreSQL cannot run as root), "
            f"but that account cannot enter {blocked}, so it cannot reach {lay.root}. "
            f"automl does not change permissions outside its project home: set {HOME_ENV} "
            f"to a folder {account.name!r} can reach (e.g. under /srv or /var/lib), set "
            f"{EMBEDDED_USER_ENV} to an account that can reach it, or set {DB_URL_ENV}."
        )
    blocked = first_unreachable(bin_dir, account.uid, account.groups)
    if blocked is not None:
        raise EmbeddedServerError(
            f"the embedded server runs as {account.name!r}, which cannot enter {blocked} "
            f"to reach the PostgreSQL binaries in {bin_dir}. Install automl where other "
            f"accounts can read it, set {EMBEDDED_USER_ENV}, or set {DB_URL_ENV}."
        )


def _owned_dir(path: Path, account: _Account) -> None:
    """``path`` exists, mode 0700, owned by the server account (created if missing)."""
    if not path.is_dir():
        path.mkdir(mode=0o700)
        path.chmod(0o700)
        if account.switch:
            os.chown(path, account.uid, account.gid)
    owner = path.stat().st_uid
    if owner != account.uid:
        raise EmbeddedServerError(
            f"{path} belongs to uid {owner}, but the embedded server runs as "
            f"{account.name!r} (uid {account.uid}). Run automl as the account that created "
            f"it, delete {path.parent} to start afresh, or set {DB_URL_ENV}."
        )


def _run_as(account: _Account) -> tuple[int | None, int | None, list[int] | None]:
    """subprocess ``user``, ``group``, ``extra_groups`` that run a child as ``account``
    (all None, the defaults, when that is the current user)."""
    if not account.switch:
        return None, None, None
    return account.uid, account.gid, list(account.groups)
