"""Filesystem helpers: private directories, atomic writes, and the wallet lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import StorageError

DIR_MODE = 0o700
FILE_MODE = 0o600


def storage_error(exc: OSError, what: str) -> StorageError:
    """A user-facing error for a failed write (no paths of records, only what failed)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StorageError(f"no space left while writing {what}", "free some disk space")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(
            f"cannot write {what}: the wallet home is read-only or not ours",
            "check the permissions of the wallet home",
        )
    return StorageError(f"cannot write {what} ({exc.strerror})")


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 if missing; tighten it if present."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(DIR_MODE)
    except OSError as exc:
        raise storage_error(exc, "the wallet directory") from None
    return path


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path, exclusive: bool = True) -> BinaryIO:
    """Open a new file for writing with mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    return os.fdopen(fd, "wb")


@contextlib.contextmanager
def atomic_writer(path: Path, what: str = "a file") -> Iterator[BinaryIO]:
    """Write to a temp file beside ``path``; fsync and rename it into place on success."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        handle = open_private(tmp)
    except OSError as exc:
        raise storage_error(exc, what) from None
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, what) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, content: bytes, what: str = "a file") -> None:
    """Replace ``path`` with ``content`` atomically (temp + fsync + rename), mode 0600."""
    with atomic_writer(path, what) as handle:
        handle.write(content)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on ``lock_path`` for the block."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise storage_error(exc, "the wallet lock") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
