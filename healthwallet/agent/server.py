"""The agent's request loop: one short exchange per connection, only with peers of our uid."""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from . import wire
from .keytable import KeyTable
from .wire import KEY_BYTES

MAX_SECONDS = 12 * 3600  # the longest an unlock may last
FIRST_KEY_SECONDS = 30.0  # an agent that is given no key this soon after starting leaves
_KEY_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Outcome:
    """What one exchange asks of the loop."""

    reply: dict[str, Any] | None
    stop: bool = False


def answer(table: KeyTable, request: dict[str, Any]) -> Outcome:
    """The reply to one request (WireError for a malformed one)."""
    if request.get("v") != wire.PROTOCOL_VERSION:
        raise wire.WireError("unknown protocol version")
    op = request.get("op")
    if op == "get":
        key = table.get(_key_id(request))
        if key is None:
            return Outcome({"ok": False, "error": "not-held"})
        return Outcome({"ok": True, "key": key.hex()})
    if op == "add":
        key_id = _key_id(request)
        key = wire.hex_field(request, "key", KEY_BYTES)
        seconds = wire.int_field(request, "seconds", 1, MAX_SECONDS)
        try:
            table.add(key_id, key, seconds)
        except OverflowError:
            return Outcome({"ok": False, "error": "full"})
        return Outcome({"ok": True})
    if op == "status":
        keys = [{"key_id": k, "seconds_left": s} for k, s in table.seconds_left().items()]
        return Outcome(
            {"ok": True, "pid": os.getpid(), "keys": keys, "memory_locked": table.memory_locked}
        )
    if op == "lock":
        return Outcome({"ok": True, "forgotten": table.forget_all()}, stop=True)
    raise wire.WireError("unknown operation")


def _key_id(request: dict[str, Any]) -> str:
    value = request.get("key_id")
    if not isinstance(value, str) or not _KEY_ID.match(value):
        raise wire.WireError("bad field key_id")
    return value


def serve(
    listener: socket.socket,
    table: KeyTable,
    allowed_uid: int,
    first_key_seconds: float = FIRST_KEY_SECONDS,
) -> None:
    """Answer requests until every key is forgotten (timeout or `lock`), or none ever came.

    A peer whose uid is not ``allowed_uid`` is hung up on before a byte is read; a malformed,
    oversized or slow request ends its connection and nothing else.
    """
    started = table.clock()
    while True:
        table.expire()
        deadline = table.next_deadline()
        if deadline is None:
            if table.held_once:
                return  # every key was forgotten: nothing left to serve
            deadline = started + first_key_seconds
        wait = deadline - table.clock()
        if wait <= 0:
            return
        listener.settimeout(min(wait, 60.0))
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            if _exchange(conn, table, allowed_uid):
                return


def _exchange(conn: socket.socket, table: KeyTable, allowed_uid: int) -> bool:
    """One request and its reply; True when the agent should stop."""
    try:
        if wire.peer_uid(conn) != allowed_uid:
            return False
        deadline = time.monotonic() + wire.IO_TIMEOUT_SECONDS
        outcome = answer(table, wire.recv_message(conn, deadline))
        if outcome.reply is not None:
            wire.send_message(conn, outcome.reply, deadline)
        return outcome.stop
    except (wire.WireError, OSError):
        return False
