"""The wallet's audit log: append-only JSON lines, hash-chained and signed.

Each line of ``<home>/audit.log`` is one entry::

    {"seq": n, "time": ISO-8601, "event": name, "details": {...}, "prev": hex, "hash": hex,
     "sig": base64url}

``hash`` is SHA-256 of the RFC 8785 (JCS) form of ``{seq, time, event, details, prev}``;
``prev`` is the previous entry's hash (64 zeros for the first); ``sig`` is the wallet
identity's Ed25519 signature over ``"healthwallet-audit/v1\\n" || hash``. Details hold ids,
DIDs, URLs, counts and times only, never health data: values with spaces are refused, so
labels and prose cannot slip in. A chain shows edits, deletions and reordering inside the log;
cutting entries off the end is only visible against a head kept elsewhere (``expected_head``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import jsonutil, keys
from .envelope import b64e, canonical_json
from .errors import BadInputError, StorageError, UsageError
from .fsutil import ensure_private_dir, exclusive_lock, storage_error

GENESIS = "0" * 64
_SIG_PREFIX = b"healthwallet-audit/v1\n"
_EVENT_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}\Z")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
# Identifier-like text only: ids, DIDs, URLs, hex digests, ISO times. No whitespace.
_VALUE_RE = re.compile(r"^[A-Za-z0-9:._#/?=%+@~!$&'()*,;\[\]-]{0,1024}\Z")
_MAX_LIST = 10_000

Detail = str | int | bool | None | list[str]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_details(details: Mapping[str, Any]) -> dict[str, Detail]:
    clean: dict[str, Detail] = {}
    for key, value in details.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise UsageError(f"audit detail key {key!r} is not allowed")
        if isinstance(value, bool) or value is None or type(value) is int:
            clean[key] = value
        elif isinstance(value, str) and _VALUE_RE.match(value):
            clean[key] = value
        elif (
            isinstance(value, list)
            and len(value) <= _MAX_LIST
            and all(isinstance(v, str) and _VALUE_RE.match(v) for v in value)
        ):
            clean[key] = list(value)
        else:
            # Never echo the value: it may be exactly the health data we keep out.
            raise UsageError(f"audit detail {key} must be an id, DID, URL, number or time")
    return clean


def entry_hash(seq: int, time: str, event: str, details: Mapping[str, Any], prev: str) -> str:
    """The hex SHA-256 an entry's fields chain to."""
    body = {"details": dict(details), "event": event, "prev": prev, "seq": seq, "time": time}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """Result of checking the log: ok, how many entries, and the first bad one."""

    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON value."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "first_bad": self.first_bad,
            "reason": self.reason,
        }


class AuditLog:
    """The audit log of one wallet home, signed by the wallet identity."""

    def __init__(
        self,
        home: Path,
        identity: keys.Identity,
        clock: Clock = _utc_now,
        retired: Sequence[keys.Identity] = (),
    ) -> None:
        self.home = home
        self.identity = identity
        # Entries written before a key rotation are signed by a retired identity.
        self.retired = tuple(retired)
        self.clock = clock
        self.path = home / "audit.log"
        self._lock = home / "audit.lock"

    def _last_line(self) -> bytes | None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                end = handle.tell()
                position, tail = end, b""
                while position > 0:
                    step = min(4096, position)
                    position -= step
                    handle.seek(position)
                    tail = handle.read(step) + tail
                    lines = tail.rstrip(b"\n").split(b"\n")
                    if len(lines) > 1 or position == 0:
                        return lines[-1] if lines[-1] else None
        except FileNotFoundError:
            return None
        return None

    def append(self, event: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Append one signed entry and return it."""
        if not _EVENT_RE.match(event):
            raise UsageError(f"audit event name {event!r} is not allowed")
        clean = _check_details(details or {})
        ensure_private_dir(self.home)
        with exclusive_lock(self._lock):
            last = self._last_line()
            if last is None:
                seq, prev = 1, GENESIS
            else:
                try:
                    previous = jsonutil.loads(last)
                    seq, prev = int(previous["seq"]) + 1, str(previous["hash"])
                except (ValueError, KeyError, TypeError):
                    raise BadInputError(
                        "the audit log's last entry is damaged",
                        "run `healthwallet log`: it names the first entry that does not verify",
                    ) from None
            time = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            digest = entry_hash(seq, time, event, clean, prev)
            signature = self.identity.sign(_SIG_PREFIX + bytes.fromhex(digest))
            entry: dict[str, Any] = {
                "seq": seq,
                "time": time,
                "event": event,
                "details": clean,
                "prev": prev,
                "hash": digest,
                "sig": b64e(signature),
            }
            line = canonical_json(entry) + b"\n"
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise storage_error(exc, "the audit log") from None
        return entry

    def read(self) -> list[dict[str, Any]]:
        """Every entry, in order (unchecked; see :meth:`verify_chain`)."""
        entries: list[dict[str, Any]] = []
        try:
            with self.path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    try:
                        entry = jsonutil.loads(line)
                    except ValueError:
                        raise BadInputError(f"audit log line {number} is not JSON") from None
                    if not isinstance(entry, dict):
                        raise BadInputError(f"audit log line {number} is not an entry")
                    entries.append(entry)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot read the audit log ({exc.strerror})") from None
        return entries

    def verify_chain(
        self, signer_did: str | None = None, expected_head: str | None = None
    ) -> ChainReport:
        """Check every entry's hash, link and signature; name the first bad entry."""
        public_keys = (
            [keys.ed25519_from_did(signer_did)]
            if signer_did
            else [self.identity.public_key, *(r.public_key for r in self.retired)]
        )
        prev, count = GENESIS, 0
        try:
            with self.path.open("rb") as handle:
                lines = list(handle)
        except FileNotFoundError:
            lines = []
        for number, line in enumerate(lines, start=1):
            reason = _entry_problem(line, number, prev, public_keys)
            if reason:
                return ChainReport(False, count, prev, first_bad=number, reason=reason)
            prev = json.loads(line)["hash"]
            count += 1
        if expected_head is not None and expected_head != prev:
            return ChainReport(
                False, count, prev, first_bad=count + 1, reason="log ends before the expected head"
            )
        return ChainReport(True, count, prev)


def _entry_problem(line: bytes, seq: int, prev: str, public_keys: Sequence[bytes]) -> str:
    """Why entry ``seq`` is bad, or '' when it is good."""
    try:
        entry = jsonutil.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(entry, dict) or set(entry) != {
        "seq",
        "time",
        "event",
        "details",
        "prev",
        "hash",
        "sig",
    }:
        return "missing or unknown fields"
    if entry["seq"] != seq or type(entry["seq"]) is not int:
        return "sequence number out of order"
    if entry["prev"] != prev:
        return "does not link to the previous entry"
    if not isinstance(entry["details"], dict) or not isinstance(entry["time"], str):
        return "malformed fields"
    try:
        digest = entry_hash(seq, entry["time"], entry["event"], entry["details"], prev)
    except (TypeError, ValueError):
        return "malformed fields"
    if entry["hash"] != digest:
        return "hash does not match its contents"
    try:
        signature = keys.b64url_decode(str(entry["sig"]))
    except ValueError:
        return "signature is malformed"
    message = _SIG_PREFIX + bytes.fromhex(digest)
    if not any(keys.verify_signature(key, message, signature) for key in public_keys):
        return "signature does not verify"
    return ""
