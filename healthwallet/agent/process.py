"""The agent process: binds its socket safely, drops its terminal, serves, cleans up."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from pathlib import Path

from .. import hardening
from . import location, wire
from .keytable import KeyTable
from .server import FIRST_KEY_SECONDS, serve
from .wire import READY


def bind_socket(path: Path) -> socket.socket:
    """A listening socket at ``path`` (mode 0600, in a 0700 directory of ours).

    A stale socket of ours is replaced; a live agent, or anything else found at ``path`` (a
    symlink, a file, a socket of another user), is refused with LocationRefused.
    """
    if len(os.fsencode(path)) > location.MAX_SOCKET_PATH_BYTES:
        raise location.LocationRefused(f"the socket path {path} is too long for a Unix socket")
    location.make_directory(path.parent)
    if os.path.lexists(path):
        location.check_socket(path)
        if _answers(path):
            raise location.LocationRefused("an agent is already running for this wallet")
        os.unlink(path)
    temporary = path.parent / f".agent-{secrets.token_hex(6)}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(os.fspath(temporary))
        os.chmod(temporary, 0o600)
        listener.listen(16)
        os.link(temporary, path)  # appears whole, already 0600, and never replaces a rival
    except FileExistsError:
        listener.close()
        raise location.LocationRefused("an agent is already running for this wallet") from None
    except OSError as exc:
        listener.close()
        raise location.LocationRefused(f"cannot create the socket ({exc.strerror})") from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    return listener


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(wire.IO_TIMEOUT_SECONDS)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def main(argv: list[str]) -> int:
    """Run an agent on ``--socket PATH``; prints ``ready`` (or ``refused: why``) on stdout."""
    parser = argparse.ArgumentParser(prog="python -m healthwallet.agent")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument(
        "--first-key-seconds", type=float, default=FIRST_KEY_SECONDS, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    hardening.disable_core_dumps()  # before any key arrives: no core file, no ptrace by peers
    os.umask(0o077)
    try:
        listener = bind_socket(args.socket)
    except location.LocationRefused as exc:
        sys.stdout.write(f"refused: {exc}\n")
        sys.stdout.flush()
        return 2
    identity = os.lstat(args.socket)
    table = KeyTable()
    try:
        sys.stdout.buffer.write(READY)
        sys.stdout.flush()
        _detach_stdio()
        wait = min(max(args.first_key_seconds, 0.1), FIRST_KEY_SECONDS)
        serve(listener, table, os.geteuid(), wait)
    finally:
        table.close()
        listener.close()
        try:
            now = os.lstat(args.socket)
            if (now.st_dev, now.st_ino) == (identity.st_dev, identity.st_ino):
                os.unlink(args.socket)
        except OSError:
            pass
    return 0
