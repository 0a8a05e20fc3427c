"""Talking to a wallet's agent: checked before connecting, checked after, never trusted more."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import KeystoreError
from . import location, wire
from .wire import KEY_BYTES


class AgentError(KeystoreError):
    """The unlock agent cannot be used: not running, refused, or something else is there."""

    default_hint = "run `healthwallet unlock` again, or unset HEALTHWALLET_AGENT_SOCK"


class AgentNotRunningError(AgentError):
    """No agent listens for this wallet (no socket, or a stale one)."""

    default_hint = "unlock the wallet with `healthwallet unlock`"


@dataclass(frozen=True)
class AgentStatus:
    """What an agent says about itself: its pid, the seconds left per key id, mlock."""

    pid: int
    seconds_left: dict[str, int]
    memory_locked: bool


class AgentClient:
    """The agent at one socket path; one connection per request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the reply; AgentError if the agent is unusable."""
        if not os.path.lexists(self.path):
            raise AgentNotRunningError("no agent is running for this wallet")
        try:
            location.check_socket(self.path)
        except location.LocationRefused as exc:
            raise AgentError(str(exc)) from None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + wire.IO_TIMEOUT_SECONDS
        try:
            conn.settimeout(wire.IO_TIMEOUT_SECONDS)
            conn.connect(os.fspath(self.path))
            if wire.peer_uid(conn) != os.geteuid():
                raise AgentError("the process behind the agent socket runs as another user")
            wire.send_message(conn, {"v": wire.PROTOCOL_VERSION, **message}, deadline)
            reply = wire.recv_message(conn, deadline)
        except (ConnectionRefusedError, FileNotFoundError):
            raise AgentNotRunningError("no agent is running for this wallet") from None
        except OSError as exc:
            raise AgentError(f"no agent answers at {self.path} ({type(exc).__name__})") from None
        except wire.WireError as exc:
            raise AgentError(f"the agent did not answer properly ({exc})") from None
        finally:
            conn.close()
        if reply.get("ok") is not True:
            raise AgentError(f"the agent refused ({_word(reply.get('error'))})")
        return reply

    def file_key(self, key_id: str) -> bytes | None:
        """The derived key the agent holds under ``key_id``; None for any failure at all."""
        try:
            reply = self.request({"op": "get", "key_id": key_id})
            return wire.hex_field(reply, "key", KEY_BYTES)
        except (AgentError, wire.WireError):
            return None

    def add(self, key_id: str, key: bytes, seconds: int) -> None:
        """Have the agent hold ``key`` under ``key_id`` for ``seconds``."""
        self.request({"op": "add", "key_id": key_id, "key": key.hex(), "seconds": seconds})

    def lock(self) -> int:
        """Have the agent forget every key and leave; how many it held."""
        reply = self.request({"op": "lock"})
        try:
            return wire.int_field(reply, "forgotten", 0, 1 << 16)
        except wire.WireError as exc:
            raise AgentError(f"the agent did not answer properly ({exc})") from None

    def status(self) -> AgentStatus:
        """What the agent holds."""
        reply = self.request({"op": "status"})
        try:
            pid = wire.int_field(reply, "pid", 1, 1 << 31)
            keys = reply.get("keys")
            if not isinstance(keys, list) or len(keys) > 256:
                raise wire.WireError("bad field keys")
            left: dict[str, int] = {}
            for item in keys:
                if not isinstance(item, dict) or not isinstance(item.get("key_id"), str):
                    raise wire.WireError("bad field keys")
                left[item["key_id"][:64]] = wire.int_field(item, "seconds_left", 0, 1 << 31)
            locked = reply.get("memory_locked")
            if not isinstance(locked, bool):
                raise wire.WireError("bad field memory_locked")
        except wire.WireError as exc:
            raise AgentError(f"the agent did not answer properly ({exc})") from None
        return AgentStatus(pid, left, locked)


def _word(value: object) -> str:
    text = value if isinstance(value, str) else "no reason given"
    return "".join(c for c in text[:40] if c.isalnum() or c in "-_ ")
