"""Artifact stores: the contract (``ArtifactStore``), its keys, and the local folder store.

The S3 store is in ``automl_core.artifacts.s3``; ``automl_core.artifacts`` picks one for
what a user typed.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from automl_core.errors import UserInputError


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


def replace_file(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write a file at ``path`` with ``write(fh)``, then rename it onto ``path``.

    The bytes go to a new temporary file in the same folder first (created exclusively,
    so no link there is followed), and ``os.replace`` puts it in place: a symbolic link
    already at ``path`` is replaced, not followed (a report folder cannot be made to
    overwrite a file outside it), and a reader sees the old file or the new, never half.
    Mode 0o666 less the umask, as ``open()`` gives (mkstemp's 0600 kept a serving
    process of another user from reading an export). Raises OSError when writing fails
    (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:16]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class LocalArtifactStore:
    """Artifacts as files under ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically: readers see the old or the new file, never half."""
        replace_file(self._path(key), lambda fh: fh.write(data))

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
        # Only what the prefix can name is walked: an export into a crowded folder lists
        # its own files, not the whole tree.
        folder, _, stem = prefix.rpartition("/")
        start = self.root / folder if folder else self.root
        children = [c for c in start.iterdir() if c.name.startswith(stem)] if start.is_dir() else []
        keys = []
        for child in children:
            for path in [child] if child.is_file() else child.rglob("*"):
                if path.is_file() and not (
                    path.name.startswith(".") and path.name.endswith(".tmp")
                ):
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
