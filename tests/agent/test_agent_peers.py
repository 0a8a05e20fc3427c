"""The agent socket is hostile in both directions: another uid, bad frames, slow peers.

A process of another user is made by forking this test and dropping to `nobody` (root only),
so both SO_PEERCRED checks run against a real process of another uid.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path

import pytest
from agent_helpers import AgentWallet, agent_pids, agent_wallet
from conftest import require

__all__ = ["agent_wallet"]

NOBODY = 65534
NEEDS_PASSPHRASE = "a passphrase is needed and there is no terminal to ask for it"


def _frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def _exchange(path: Path, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send ``raw`` on a fresh connection and return everything read until the agent hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        chunks = []
        try:
            if raw:
                conn.sendall(raw)
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # hung up on before or while we wrote
        return b"".join(chunks)


def _agent_socket(wallet: AgentWallet) -> Path:
    (path,) = (wallet.runtime / "healthwallet").glob("agent-*.sock")
    return path


def _as_nobody(task: object) -> int:
    """Run ``task()`` in a forked child as uid/gid nobody; the child's exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = int(task())  # type: ignore[operator]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def root_only() -> None:
    require(os.geteuid() == 0, "root, to act as another user")


def test_peer_of_another_uid_gets_no_answer(agent_wallet: AgentWallet, root_only: None) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    path = _agent_socket(wallet)
    # Loosen every file permission, as a careless admin might: the peer check still holds.
    for folder in (wallet.runtime, path.parent):
        folder.chmod(0o711)
    path.chmod(0o666)
    key_id_request = _frame({"v": 1, "op": "status"})

    def ask() -> int:
        reply = _exchange(path, key_id_request)
        return 0 if reply == b"" else 3  # hung up on, nothing said

    try:
        assert _as_nobody(ask) == 0
    finally:
        for folder in (wallet.runtime, path.parent):
            folder.chmod(0o700)
        path.chmod(0o600)
    assert wallet.bare("unlock", "--status").code == 0  # the agent is still there for us


def test_socket_served_by_another_uid_is_refused(
    agent_wallet: AgentWallet, tmp_path: Path, root_only: None
) -> None:
    wallet = agent_wallet
    theirs = wallet.runtime / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    wallet.runtime.chmod(0o711)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a fake agent of another user
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(theirs / "fake.sock"))
            listener.listen(4)
            os.write(write_end, b"ready")
            listener.settimeout(120)
            while True:
                conn, _ = listener.accept()
                with conn:
                    try:
                        conn.sendall(_frame({"ok": True, "key": "00" * 32, "forgotten": 1}))
                    except OSError:
                        pass  # the client hung up first, as it should
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 5) == b"ready"
        fake = theirs / "fake.sock"
        # Where it lives: a folder and a socket of another user.
        env = {"HEALTHWALLET_AGENT_SOCK": str(fake)}
        result = wallet.bare("lock", env=env)
        assert result.code == 4, result
        assert f"error: the directory {theirs} belongs to another user" in result.err
        # Moved into a folder of ours and given to us, it still runs as another user.
        mine = wallet.runtime / "mine"
        mine.mkdir(mode=0o700)
        os.chown(fake, 0, 0)
        fake.chmod(0o600)
        fake.rename(mine / "agent.sock")
        env = {"HEALTHWALLET_AGENT_SOCK": str(mine / "agent.sock")}
        result = wallet.bare("lock", env=env)
        assert result.code == 4, result
        assert "error: the process behind the agent socket runs as another user" in result.err
        listed = wallet.bare("record", "list", env=env)
        assert listed.code == 4 and NEEDS_PASSPHRASE in listed.err
        refused = wallet.with_passphrase("unlock", env=env)
        assert refused.code == 4 and "runs as another user" in refused.err
    finally:
        os.close(read_end)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        wallet.runtime.chmod(0o700)


MALFORMED = {
    "oversized": struct.pack(">I", 1 << 20) + b"{}",  # a length far beyond the bound
    "empty": struct.pack(">I", 0),
    "not-json": struct.pack(">I", 7) + b"{nope!}",
    "bad-key-id": _frame({"v": 1, "op": "get", "key_id": "../../../etc/passwd"}),
    "bad-key-hex": _frame({"v": 1, "op": "add", "key_id": "0" * 32, "key": "zz" * 32, "seconds": 5}),
    "bool-seconds": _frame(
        {"v": 1, "op": "add", "key_id": "0" * 32, "key": "00" * 32, "seconds": True}
    ),
    "version": _frame({"v": 2, "op": "status"}),
    "unknown-op": _frame({"v": 1, "op": "shell"}),
    "not-object": struct.pack(">I", 9) + b"[1, 2, 3]",
    "deeply-nested": struct.pack(">I", 4000) + b"[" * 4000,  # within the bound, past recursion
    "truncated": b"\x00\x00",
}


def test_malformed_frame_ends_only_its_connection(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    for name, raw in MALFORMED.items():
        assert _exchange(_agent_socket(wallet), raw) == b"", name
    assert wallet.bare("record", "list").code == 0  # still serving, key still held


def test_silent_peer_is_dropped_after_the_exchange_timeout(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    started = time.monotonic()
    assert _exchange(_agent_socket(wallet), b"", timeout=20) == b""
    assert time.monotonic() - started < 10
    assert wallet.bare("record", "list").code == 0


def test_agent_started_without_a_key_leaves_on_its_own(tmp_path: Path) -> None:
    import subprocess
    import sys

    from agent_helpers import runtime_dir

    with runtime_dir() as runtime:
        folder = runtime / "a"
        proc = subprocess.Popen(
            [sys.executable, "-m", "healthwallet.agent", "--socket", str(folder / "s.sock"),
             "--first-key-seconds", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            assert (folder / "s.sock").exists()
            assert proc.wait(timeout=15) == 0
            assert not (folder / "s.sock").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert not agent_pids(str(runtime))

