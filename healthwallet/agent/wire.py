"""The agent's wire format: one length-prefixed JSON object each way, bounded and timed."""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from typing import Any

PROTOCOL_VERSION = 1
KEY_BYTES = 32  # an Argon2id-derived keystore-file key
READY = b"ready\n"  # what a new agent writes on its start-up pipe once it listens
MAX_FRAME_BYTES = 4096  # a request or reply is a few hundred bytes; anything larger is hostile
IO_TIMEOUT_SECONDS = 2.0  # for one whole exchange, on either side
_LENGTH = struct.Struct(">I")
_SO_PEERCRED_FORMAT = "3i"  # struct ucred: pid, uid, gid (Linux)


class WireError(Exception):
    """A peer or frame the agent protocol does not accept (never shown with secret content)."""


def peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or not sys.platform.startswith("linux"):
        raise WireError("this platform cannot tell who is at the other end of a socket")
    raw = conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize(_SO_PEERCRED_FORMAT))
    _pid, uid, _gid = struct.unpack(_SO_PEERCRED_FORMAT, raw)
    return int(uid)


def send_message(conn: socket.socket, message: dict[str, Any], deadline: float) -> None:
    """Write one frame before ``deadline`` (time.monotonic)."""
    body = json.dumps(message, separators=(",", ":")).encode("ascii")
    if len(body) > MAX_FRAME_BYTES:
        raise WireError("message too large")
    _set_timeout(conn, deadline)
    try:
        conn.sendall(_LENGTH.pack(len(body)) + body)
    except OSError as exc:
        raise WireError(f"write failed ({type(exc).__name__})") from None


def recv_message(conn: socket.socket, deadline: float) -> dict[str, Any]:
    """Read one frame before ``deadline``: a JSON object of at most MAX_FRAME_BYTES."""
    (length,) = _LENGTH.unpack(_recv_exactly(conn, _LENGTH.size, deadline))
    if not 0 < length <= MAX_FRAME_BYTES:
        raise WireError("frame length out of bounds")
    body = _recv_exactly(conn, length, deadline)
    try:
        message = json.loads(body.decode("ascii"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):  # 4 KiB of "[" nests too deep
        raise WireError("frame is not ASCII JSON") from None
    if not isinstance(message, dict):
        raise WireError("frame is not a JSON object")
    return message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _set_timeout(conn: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise WireError("timed out")
    conn.settimeout(remaining)


def _recv_exactly(conn: socket.socket, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    missing = size
    while missing:
        _set_timeout(conn, deadline)
        try:
            chunk = conn.recv(missing)
        except OSError as exc:
            raise WireError(f"read failed ({type(exc).__name__})") from None
        if not chunk:
            raise WireError("the peer closed the connection mid-frame")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def hex_field(message: dict[str, Any], name: str, size: int) -> bytes:
    """Field ``name`` as exactly ``size`` bytes written in lower-case hex; WireError otherwise."""
    value = message.get(name)
    if not isinstance(value, str) or len(value) != 2 * size or value != value.lower():
        raise WireError(f"bad field {name}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise WireError(f"bad field {name}") from None


def int_field(message: dict[str, Any], name: str, low: int, high: int) -> int:
    """Field ``name`` as an int in [low, high]; WireError otherwise (a bool is not an int)."""
    value = message.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WireError(f"bad field {name}")
    return value
