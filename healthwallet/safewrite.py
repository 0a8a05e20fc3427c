"""The one safe writer: files created in a directory someone named, never through a planted link.

Every file healthwallet writes goes through :class:`OutputDir`. The directory is opened once and
every entry is then created, renamed or removed relative to that descriptor:

- a temporary file gets an unpredictable name ``.tmp-hw-<session>-<random>``, is created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600, gets its final mode with ``fchmod`` on the
  descriptor, is fsynced and renamed (or hard-linked, to never replace) into place, and the
  directory is fsynced. A symlink, FIFO or device at the temporary or final name is never
  followed, written through, chmod-ed or read: ``O_EXCL`` refuses it and ``rename`` replaces the
  entry itself.
- a session holds ``flock`` on its own ``.tmp-hw-<session>.lock`` while it has temporary files.
  Opening a directory sweeps the temporary files of sessions whose lock is free (their process
  was killed), so a SIGKILL or Ctrl-C leaves nothing behind past the next run that writes there.
  Only regular files owned by this user are swept.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import HealthWalletError, StorageError, UsageError
from .fsutil import (
    DIR_FLAGS,
    FILE_MODE,
    SymlinkPolicy,
    ensure_private_dir,
    open_dir_fd,
    storage_error,
)

TEMP_PREFIX = ".tmp-hw-"
_SESSION_ENTRY = re.compile(r"^\.tmp-hw-([0-9a-f]{16})(?:\.lock|-[0-9a-f]{16}(?:\.d)?)$")
# Left by `open` before the safe writer existed; it held no lock, so only old ones are swept.
_LEGACY_PART = re.compile(r"^\.hwgrant-[0-9a-f]{16}\.part$")
_LEGACY_AGE_SECONDS = 120
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_PROBE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_ATTEMPTS = 64

RandomBytes = Callable[[int], bytes]


def _is_ours(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid()


class OutputDir:
    """A directory opened once; temp files, placement and sweeping all relative to it."""

    def __init__(
        self,
        path: Path,
        *,
        create: bool = False,
        symlinks: SymlinkPolicy = "owned",
        what: str = "the output directory",
        random_bytes: RandomBytes = os.urandom,
        sweep: bool = True,
        journal: Path | None = None,
    ) -> None:
        self.path = path
        self.what = what
        self._random = random_bytes
        self._journal = journal
        self._journal_fd: int | None = None
        if create:
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            except FileExistsError:
                pass  # a non-directory: open_dir_fd says so
            except OSError as exc:
                raise storage_error(exc, what) from None
        self.fd = open_dir_fd(path, symlinks=symlinks, what=what)
        self._session: str | None = None
        self._lock_fd: int | None = None
        self._temps: set[str] = set()
        self.swept = 0
        if sweep:
            try:
                self.swept = self.sweep()
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions ---------------------------------------------------------------------------
    def _start_session(self) -> str:
        if self._session is not None:
            return self._session
        for _ in range(_ATTEMPTS):
            session = self._random(8).hex()
            lock = f"{TEMP_PREFIX}{session}.lock"
            try:
                fd = os.open(lock, _OPEN_NEW, FILE_MODE, dir_fd=self.fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise storage_error(exc, self.what) from None
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A sweeper may have taken the lock between create and flock and removed the file.
            if not _same_entry(self.fd, lock, fd):
                os.close(fd)
                continue
            try:
                if self._journal is not None:
                    self._journal_fd = _journal_enter(self._journal, session, self.path)
            except BaseException:
                os.unlink(lock, dir_fd=self.fd)
                os.close(fd)
                raise
            self._session, self._lock_fd = session, fd
            return session
        raise StorageError(f"cannot create a temporary file in {self.what}")

    def _end_session(self) -> None:
        if self._lock_fd is None or self._temps:
            return
        with contextlib.suppress(OSError):
            os.unlink(f"{TEMP_PREFIX}{self._session}.lock", dir_fd=self.fd)
        os.close(self._lock_fd)
        if self._journal is not None and self._journal_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._journal / f"{self._session}{_JOURNAL_SUFFIX}")
            os.close(self._journal_fd)
            self._journal_fd = None
        self._lock_fd = self._session = None

    def close(self) -> None:
        """Remove any temp file not placed, end the session, close the directory."""
        if self.fd < 0:
            return
        for name in list(self._temps):
            self.discard(name)
        self._end_session()
        os.close(self.fd)
        self.fd = -1

    # -- temp files ---------------------------------------------------------------------------
    def _fresh(self, suffix: str, create: Callable[[str], int]) -> tuple[str, int]:
        """Run ``create(name)`` (O_EXCL semantics) on fresh names until one is free."""
        session = self._start_session()
        for _ in range(_ATTEMPTS):
            name = f"{TEMP_PREFIX}{session}-{self._random(8).hex()}{suffix}"
            try:
                fd = create(name)
            except FileExistsError:
                continue
            except OSError as exc:
                self._end_session()
                raise storage_error(exc, self.what) from None
            self._temps.add(name)
            return name, fd
        raise StorageError(f"cannot create a temporary file in {self.what}")

    def new_temp(self, mode: int = FILE_MODE) -> tuple[str, BinaryIO]:
        """(name, handle) of a fresh temp file, created 0600 and then given ``mode``."""
        name, fd = self._fresh("", lambda n: os.open(n, _OPEN_NEW, FILE_MODE, dir_fd=self.fd))
        os.fchmod(fd, mode)
        return name, os.fdopen(fd, "wb")

    def new_temp_dir(self) -> str:
        """A fresh private (0700) temp directory's name; swept like temp files when left."""

        def make(name: str) -> int:
            os.mkdir(name, 0o700, dir_fd=self.fd)
            return os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)

        name, dfd = self._fresh(".d", make)
        try:
            os.fchmod(dfd, 0o700)
        finally:
            os.close(dfd)
        return name

    def discard(self, temp: str) -> None:
        """Remove a temp file or directory of this session."""
        with contextlib.suppress(FileNotFoundError):
            _remove_entry(self.fd, temp)
        self._temps.discard(temp)
        self._end_session()

    def place(self, temp: str, name: str, *, into: OutputDir | None = None) -> str:
        """Rename ``temp`` to ``name`` (in ``into``, default here), replacing the entry there."""
        target = into if into is not None else self
        _check_entry_name(name)
        try:
            os.rename(temp, name, src_dir_fd=self.fd, dst_dir_fd=target.fd)
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise UsageError(
                    f"{target.what} already holds a directory by that name; nothing was written",
                    "choose another name",
                ) from None
            raise storage_error(exc, target.what) from None
        self._placed(temp)
        if target is not self:
            target.fsync()
        return name

    def place_new(self, temp: str, names: Iterable[str]) -> str | None:
        """Give ``temp`` the first of ``names`` that is free, never replacing anything;
        None when every name is taken."""
        for name in names:
            _check_entry_name(name)
            try:
                os.link(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError as exc:
                raise storage_error(exc, self.what) from None
            os.unlink(temp, dir_fd=self.fd)
            self._placed(temp)
            return name
        return None

    def _placed(self, temp: str) -> None:
        self._temps.discard(temp)
        self.fsync()
        self._end_session()

    def fsync(self) -> None:
        """Flush the directory's entries to disk."""
        with contextlib.suppress(OSError):
            os.fsync(self.fd)

    def sub_path(self, name: str) -> Path:
        """The path of entry ``name`` (for code that can only take paths, like SQLite)."""
        return self.path / name

    @contextlib.contextmanager
    def writer(
        self, name: str, *, replace: bool = True, mode: int = FILE_MODE
    ) -> Iterator[BinaryIO]:
        """Write ``name`` atomically: a temp file, fsync, then rename over it (or, when not
        ``replace``, link it: UsageError if ``name`` exists)."""
        temp, handle = self.new_temp(mode)
        try:
            try:
                with handle:
                    yield handle
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise storage_error(exc, self.what) from None
            if replace:
                self.place(temp, name)
            elif self.place_new(temp, [name]) is None:
                raise UsageError("the file already exists; nothing was written", "add --force")
        finally:
            if temp in self._temps:
                self.discard(temp)

    def write_bytes(self, name: str, content: bytes, *, mode: int = FILE_MODE) -> None:
        """Replace ``name`` with ``content`` atomically."""
        with self.writer(name, mode=mode) as handle:
            handle.write(content)

    # -- sweeping -------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Remove what killed sessions left here; returns how many entries went."""
        sessions: dict[str, list[str]] = {}
        legacy: list[str] = []
        try:
            names = [entry.name for entry in os.scandir(self.fd)]
        except OSError:
            return 0
        for name in names:
            match = _SESSION_ENTRY.match(name)
            if match:
                sessions.setdefault(match.group(1), []).append(name)
            elif _LEGACY_PART.match(name):
                legacy.append(name)
        removed = 0
        for session, entries in sessions.items():
            if session == self._session:
                continue
            removed += self._sweep_session(session, entries)
        now = time.time()
        for name in legacy:
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and _is_ours(st):
                    if now - st.st_mtime > _LEGACY_AGE_SECONDS:
                        os.unlink(name, dir_fd=self.fd)
                        removed += 1
        return removed

    def sweep_session(self, session: str) -> int:
        """Remove what session ``session`` left here, if it is dead."""
        prefix = f"{TEMP_PREFIX}{session}"
        try:
            names = [e.name for e in os.scandir(self.fd) if e.name.startswith(prefix)]
        except OSError:
            return 0
        names = [n for n in names if (m := _SESSION_ENTRY.match(n)) and m.group(1) == session]
        return self._sweep_session(session, names) if names else 0

    def _sweep_session(self, session: str, entries: list[str]) -> int:
        lock = f"{TEMP_PREFIX}{session}.lock"
        try:
            st = os.stat(lock, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        except OSError:
            return 0
        lock_fd: int | None = None
        if st is not None:
            if not (stat.S_ISREG(st.st_mode) and _is_ours(st)):
                return 0  # someone else's name: not ours to judge
            try:
                lock_fd = os.open(lock, _OPEN_PROBE, dir_fd=self.fd)
            except FileNotFoundError:
                lock_fd = None
            except OSError:
                return 0
            if lock_fd is not None:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(lock_fd)
                    return 0  # a live session
        removed = 0
        try:
            for name in sorted(entries, key=lambda n: n.endswith(".lock")):  # the lock goes last
                with contextlib.suppress(OSError):
                    entry = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                    if _is_ours(entry) and (
                        stat.S_ISREG(entry.st_mode) or stat.S_ISDIR(entry.st_mode)
                    ):
                        _remove_entry(self.fd, name)
                        removed += 1
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        return removed


# -- the journal: where sessions outside the wallet home are writing ------------------------------
# A command that writes plaintext outside the home (open, record show --out) records the
# directory in <home>/.tmp-outputs/<session>.where and holds flock on it. Every command that
# opens the wallet sweeps the directories of dead sessions, so what a kill left there goes with
# the next run of any command, not only the next one writing into that directory.
JOURNAL_DIR = ".tmp-outputs"
_JOURNAL_SUFFIX = ".where"
_JOURNAL_ENTRY = re.compile(r"^([0-9a-f]{16})\.where$")
_MAX_JOURNAL_BYTES = 8192


def _journal_enter(journal: Path, session: str, out_path: Path) -> int:
    ensure_private_dir(journal)
    entry = journal / f"{session}{_JOURNAL_SUFFIX}"
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(entry, _OPEN_NEW, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.samestat(os.fstat(fd), os.stat(entry, follow_symlinks=False)):
                raise FileNotFoundError  # a sweeper removed it before our flock: again
            os.write(fd, os.fsencode(str(out_path.absolute())))
            os.fsync(fd)
            return fd
        except FileNotFoundError:
            os.close(fd)
        except OSError as exc:
            raise storage_error(exc, "the wallet home") from None
    raise StorageError("cannot record an output directory in the wallet home")


def sweep_journal(journal: Path) -> int:
    """Sweep the directories that dead sessions named in ``journal``; returns entries removed."""
    removed = 0
    try:
        entries = [e.name for e in os.scandir(journal)]
    except OSError:
        return 0
    for name in entries:
        match = _JOURNAL_ENTRY.match(name)
        if not match:
            continue
        try:
            fd = os.open(journal / name, _OPEN_PROBE)
        except OSError:
            continue
        try:
            if not (stat.S_ISREG(os.fstat(fd).st_mode) and _is_ours(os.fstat(fd))):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live session
            target = Path(os.fsdecode(os.read(fd, _MAX_JOURNAL_BYTES)))
            if target.is_absolute():
                with contextlib.suppress(HealthWalletError, OSError):
                    with OutputDir(target, sweep=False, what="an output directory") as out_dir:
                        removed += out_dir.sweep_session(match.group(1))
            with contextlib.suppress(OSError):
                os.unlink(journal / name)
        finally:
            os.close(fd)
    return removed


def _remove_entry(dir_fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: never follows a link inside
    else:
        os.unlink(name, dir_fd=dir_fd)


def _same_entry(dir_fd: int, name: str, fd: int) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _check_entry_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UsageError("an output file name is not a plain name", "give a file name")


@contextlib.contextmanager
def atomic_writer(
    path: Path,
    what: str = "a file",
    *,
    replace: bool = True,
    mode: int = FILE_MODE,
    random_bytes: RandomBytes = os.urandom,
    journal: Path | None = None,
) -> Iterator[BinaryIO]:
    """Write file ``path`` through :class:`OutputDir` (its parent must exist); ``journal``: see
    :func:`sweep_journal`."""
    where = f"the directory of {what}"
    with OutputDir(path.parent, what=where, random_bytes=random_bytes, journal=journal) as out_dir:
        with out_dir.writer(path.name, replace=replace, mode=mode) as handle:
            yield handle


def atomic_write_bytes(path: Path, content: bytes, what: str = "a file") -> None:
    """Replace file ``path`` with ``content`` atomically (temp + fsync + rename), mode 0600."""
    with atomic_writer(path, what) as handle:
        handle.write(content)
