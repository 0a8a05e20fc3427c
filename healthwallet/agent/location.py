"""Where a wallet's agent socket lives, and the checks made before trusting anything there.

The socket sits in a directory of its own user, mode 0700: ``$XDG_RUNTIME_DIR/healthwallet``,
else ``<tmp>/healthwallet-agent-<uid>``; its name is derived from the wallet home, so each home
has its own agent. ``HEALTHWALLET_AGENT_SOCK`` names the socket instead (empty: no agent).
Whatever is found there is hostile until shown otherwise: the directory must be a real
directory of ours with no group or other access, and the socket a real socket of ours, 0600.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

SOCKET_ENV = "HEALTHWALLET_AGENT_SOCK"
MAX_SOCKET_PATH_BYTES = 100  # sockaddr_un holds 108 bytes on Linux, 104 on the BSDs


class LocationRefused(Exception):
    """The agent's directory or socket is not one we may trust; the reason says why."""


def socket_path(home: Path, environ: Mapping[str, str]) -> Path | None:
    """The agent socket for the wallet in ``home``; None when the agent is turned off."""
    named = environ.get(SOCKET_ENV)
    if named is not None:
        return Path(named) if named else None
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        directory = Path(runtime) / "healthwallet"
    else:
        temporary = environ.get("TMPDIR", "")
        base = temporary if temporary and os.path.isabs(temporary) else "/tmp"  # noqa: S108
        directory = Path(base) / f"healthwallet-agent-{os.geteuid()}"
    digest = hashlib.sha256(os.fsencode(os.path.abspath(home))).hexdigest()[:16]
    return directory / f"agent-{digest}.sock"


def _check_owned(path: Path, is_kind: Callable[[int], bool], kind: str, forbidden: int) -> None:
    """Refuse ``path`` unless it is (without following a symlink) a ``kind`` of ours whose
    mode has none of the ``forbidden`` bits."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise LocationRefused(f"cannot inspect {path} ({exc.strerror})") from None
    if not is_kind(info.st_mode):
        raise LocationRefused(f"{path} is not a {kind} (a symlink or a file was planted there)")
    if info.st_uid != os.geteuid():
        raise LocationRefused(f"the {kind} {path} belongs to another user")
    if info.st_mode & forbidden:
        mode = info.st_mode & 0o777
        raise LocationRefused(f"the {kind} {path} is open to other users (mode {mode:o})")


def check_directory(directory: Path) -> None:
    """Refuse a directory that is a symlink, not ours, or open to group or others."""
    _check_owned(directory, stat.S_ISDIR, "directory", 0o077)


def check_socket(path: Path) -> None:
    """Refuse anything at ``path`` but a socket of ours with mode 0600 (or stricter)."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise LocationRefused(f"the socket path {path} is too long for a Unix socket")
    check_directory(path.parent)
    _check_owned(path, stat.S_ISSOCK, "socket", 0o177)


def make_directory(directory: Path) -> None:
    """Create the agent directory (mode 0700) if missing, then check it like any other."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LocationRefused(f"cannot create {directory} ({exc.strerror})") from None
    check_directory(directory)
