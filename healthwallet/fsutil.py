"""Filesystem helpers: private directories and the wallet lock (atomic writes: safewrite.py)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from .errors import NotFoundError, StorageError, UsageError

DIR_MODE = 0o700
FILE_MODE = 0o600
LOCK_FILE = ".lock"  # flock(2) target of the wallet's writers
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# "owned": a symlink as the last component is followed only when this user (or root) owns it,
# as the directory named on the command line may be; "refuse": never (the wallet's own folders).
SymlinkPolicy = Literal["owned", "refuse"]


def open_dir_fd(path: Path, *, symlinks: SymlinkPolicy, what: str) -> int:
    """A descriptor of directory ``path``; refuses a symlink per ``symlinks``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotFoundError(f"{what} does not exist", "create it, or check the path") from None
    except OSError as exc:
        raise storage_error(exc, what) from None
    if stat.S_ISLNK(st.st_mode) and (symlinks == "refuse" or st.st_uid not in (os.geteuid(), 0)):
        raise StorageError(
            f"{what} is a symbolic link{' owned by another user' if symlinks == 'owned' else ''};"
            " refusing to follow it",
            "replace the link with a real directory (or name the directory it points to)",
        )
    flags = DIR_FLAGS | (os.O_NOFOLLOW if symlinks == "refuse" else 0)
    try:
        return os.open(path, flags)
    except NotADirectoryError:
        raise UsageError(f"{what} is not a directory", "give a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(f"{what} is a symbolic link; refusing to follow it") from None
        raise storage_error(exc, what) from None


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


def ensure_private_dir(path: Path, *, symlinks: SymlinkPolicy = "refuse") -> Path:
    """Create ``path`` (and parents) with mode 0700 if missing; tighten it if present.

    A symlink at ``path`` is refused (``symlinks="owned"``: followed only when ours, for the
    home itself), so nothing outside the wallet home is ever chmod-ed.
    """
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        pass  # a symlink or a file: open_dir_fd says which
    except OSError as exc:
        raise storage_error(exc, "the wallet directory") from None
    fd = open_dir_fd(path, symlinks=symlinks, what="a wallet folder")
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, DIR_MODE)
    except OSError as exc:
        raise storage_error(exc, "the wallet directory") from None
    finally:
        os.close(fd)
    return path


def refuse_links_in_home(home: Path) -> None:
    """StorageError when the home itself (not ours) or any entry in it is a symbolic link."""
    try:
        st = os.lstat(home)
        entries = [e for e in os.scandir(home) if e.is_symlink()]
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error(exc, "the wallet home") from None
    if stat.S_ISLNK(st.st_mode) and st.st_uid not in (os.geteuid(), 0):
        raise StorageError(
            "the wallet home is a symbolic link owned by another user; refusing to follow it",
            "point --home at the real directory",
        )
    if entries:
        raise StorageError(
            f"the wallet home holds a symbolic link ({entries[0].name!r}); refusing to follow it",
            "replace it with the real file or folder, or restore the wallet from a backup",
        )


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path, exclusive: bool = True) -> BinaryIO:
    """Open a new file for writing with mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    return os.fdopen(fd, "wb")


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on ``lock_path`` for the block."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise storage_error(exc, "the wallet lock") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
