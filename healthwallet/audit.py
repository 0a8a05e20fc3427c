"""The wallet's audit log: append-only JSON lines, sealed, hash-chained and signed.

Each line of ``<home>/audit.log`` is one entry (v2, see docs/format.md "Audit log")::

    {"v": 2, "seq": n, "sealed": base64url, "prev": hex, "hash": hex, "sig": base64url}

``sealed`` is ``{time, event, details}`` sealed under the wallet's metadata key (metaseal.py),
so a copy of the wallet home shows how many entries there are and nothing of what they say.
``hash`` is SHA-256 of the RFC 8785 (JCS) form of ``{v, seq, sealed, prev}``; ``prev`` is the
previous entry's hash (64 zeros for the first); ``sig`` is the wallet identity's Ed25519
signature over ``"healthwallet-audit/v2\\n" || hash``. The chain is checked without opening
any seal. Details hold ids, DIDs, URLs, counts and times only, never health data: values with
spaces are refused, so labels and prose cannot slip in. A chain shows edits, deletions and
reordering inside the log; cutting entries off the end is only visible against a head kept
elsewhere (``expected_head``). A v1 log (plain entries) is sealed on the wallet's first unlock
(:meth:`AuditLog.seal_legacy`).
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
from .atrest import LOG_FILE, plain_audit_log
from .envelope import b64d, b64e, canonical_json
from .errors import BadInputError, StorageError, UsageError, VerificationError
from .fsutil import ensure_private_dir, exclusive_lock, storage_error
from .metaseal import MetaSeal
from .safewrite import atomic_write_bytes

GENESIS = "0" * 64
_SIG_PREFIX = b"healthwallet-audit/v1\n"
_SIG_PREFIX_V2 = b"healthwallet-audit/v2\n"
_AD_V2 = b"healthwallet-audit/v2\0"
_V1_FIELDS = {"seq", "time", "event", "details", "prev", "hash", "sig"}
_V2_FIELDS = {"v", "seq", "sealed", "prev", "hash", "sig"}
SEALED_EVENT = "audit.sealed"  # closes the entries carried over from a v1 log
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
    """The hex SHA-256 a v1 (plain) entry's fields chain to."""
    body = {"details": dict(details), "event": event, "prev": prev, "seq": seq, "time": time}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def sealed_entry_hash(seq: int, sealed: str, prev: str) -> str:
    """The hex SHA-256 a v2 (sealed) entry's fields chain to."""
    body = {"prev": prev, "sealed": sealed, "seq": seq, "v": 2}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _body_ad(seq: int) -> bytes:
    return _AD_V2 + str(seq).encode("ascii")


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
    """The audit log of one wallet home, signed by the wallet identity, sealed under its seed."""

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
        self.path = home / LOG_FILE
        self._lock = home / "audit.lock"
        self._seal = MetaSeal(identity, self.retired)

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

    def _entry_line(self, seq: int, prev: str, time: str, event: str, details: Any) -> bytes:
        sealed = b64e(
            self._seal.seal({"details": details, "event": event, "time": time}, _body_ad(seq))
        )
        digest = sealed_entry_hash(seq, sealed, prev)
        signature = self.identity.sign(_SIG_PREFIX_V2 + bytes.fromhex(digest))
        entry = {
            "v": 2,
            "seq": seq,
            "sealed": sealed,
            "prev": prev,
            "hash": digest,
            "sig": b64e(signature),
        }
        return canonical_json(entry) + b"\n"

    def append(self, event: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Append one signed, sealed entry and return it (unsealed)."""
        if not _EVENT_RE.match(event):
            raise UsageError(f"audit event name {event!r} is not allowed")
        clean = _check_details(details or {})
        ensure_private_dir(self.home, symlinks="owned")
        with exclusive_lock(self._lock):
            self._seal_legacy_locked()
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
            line = self._entry_line(seq, prev, time, event, clean)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise storage_error(exc, "the audit log") from None
        return self._unsealed(json.loads(line))

    # -- migration from v1 -----------------------------------------------------------------------

    def seal_legacy(self) -> bool:
        """Rewrite a v1 (plain) log as sealed entries; True if there was one to rewrite."""
        if not plain_audit_log(self.path):
            return False
        with exclusive_lock(self._lock):
            return self._seal_legacy_locked()

    def _seal_legacy_locked(self) -> bool:
        if not plain_audit_log(self.path):
            return False
        # The v1 chain is checked before its signatures are replaced: its verdict is carried
        # into the sealed log, so damage done before sealing stays visible afterwards.
        report = self.verify_chain()
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError as exc:
            raise storage_error(exc, "the audit log") from None
        out: list[bytes] = []
        prev = GENESIS
        for number, line in enumerate(lines, start=1):
            time, event, details = _v1_content(line, number)
            out.append(self._entry_line(number, prev, time, event, details))
            prev = json.loads(out[-1])["hash"]
        summary = _check_details(
            {
                "v1_entries": len(lines),
                "v1_ok": report.ok,
                "v1_head": report.head,
                "v1_first_bad": report.first_bad,
            }
        )
        now = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(self._entry_line(len(lines) + 1, prev, now, SEALED_EVENT, summary))
        atomic_write_bytes(self.path, b"".join(out), "the audit log")
        return True

    # -- reading ---------------------------------------------------------------------------------

    def _unsealed(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A v2 entry with its sealed content opened (``event`` "unreadable" if it will not)."""
        if entry.get("v") != 2:
            return entry
        shown = {k: entry.get(k) for k in ("seq", "prev", "hash", "sig")}
        try:
            seq = entry["seq"]
            if type(seq) is not int:
                raise ValueError("bad sequence number")
            content = self._seal.open(
                b64d(entry.get("sealed"), "an audit entry"), _body_ad(seq), "an audit entry"
            )
            if not isinstance(content, dict):
                raise ValueError("not an entry")
            shown.update(
                time=content["time"], event=content["event"], details=dict(content["details"])
            )
        except (UsageError, ValueError, KeyError, TypeError, VerificationError):
            shown.update(time=None, event="unreadable", details={})
        return shown

    def read(self) -> list[dict[str, Any]]:
        """Every entry, in order, unsealed (unchecked; see :meth:`verify_chain`)."""
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
                    entries.append(self._unsealed(entry))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot read the audit log ({exc.strerror})") from None
        return entries

    def verify_chain(
        self, signer_did: str | None = None, expected_head: str | None = None
    ) -> ChainReport:
        """Check every entry's hash, link and signature; name the first bad entry.

        A log sealed from a damaged v1 log stays bad: its ``audit.sealed`` entry names the
        first entry that was bad before sealing."""
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
        damaged_before: ChainReport | None = None
        for number, line in enumerate(lines, start=1):
            reason = _entry_problem(line, number, prev, public_keys)
            if reason:
                return ChainReport(False, count, prev, first_bad=number, reason=reason)
            entry = json.loads(line)
            prev = entry["hash"]
            count += 1
            if entry.get("v") == 2 and signer_did is None and damaged_before is None:
                damaged_before = _damage_before_sealing(self._unsealed(entry))
        if damaged_before is not None:
            return ChainReport(False, count, prev, damaged_before.first_bad, damaged_before.reason)
        if expected_head is not None and expected_head != prev:
            return ChainReport(
                False, count, prev, first_bad=count + 1, reason="log ends before the expected head"
            )
        return ChainReport(True, count, prev)


def _v1_content(line: bytes, number: int) -> tuple[str, str, Any]:
    """Time, event and details of v1 line ``number``, or an ``audit.unreadable`` stand-in."""
    try:
        entry = jsonutil.loads(line)
        if isinstance(entry, dict) and isinstance(entry.get("time"), str):
            event = str(entry["event"])
            if _EVENT_RE.match(event) and _VALUE_RE.match(entry["time"]):
                return entry["time"], event, _check_details(entry["details"])
    except (ValueError, KeyError, TypeError, AttributeError, UsageError):
        pass
    return "", "audit.unreadable", {"v1_line": number}


def _damage_before_sealing(entry: Mapping[str, Any]) -> ChainReport | None:
    """The v1 chain's verdict an ``audit.sealed`` entry carries, when it was bad."""
    if entry.get("event") != SEALED_EVENT:
        return None
    details = entry.get("details", {})
    if details.get("v1_ok") is not False:
        return None
    first_bad = details.get("v1_first_bad")
    return ChainReport(
        False,
        0,
        "",
        first_bad=first_bad if type(first_bad) is int else 1,
        reason="the log was damaged before it was sealed",
    )


def _entry_problem(line: bytes, seq: int, prev: str, public_keys: Sequence[bytes]) -> str:
    """Why entry ``seq`` is bad, or '' when it is good."""
    try:
        entry = jsonutil.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(entry, dict) or set(entry) not in (_V1_FIELDS, _V2_FIELDS):
        return "missing or unknown fields"
    if entry["seq"] != seq or type(entry["seq"]) is not int:
        return "sequence number out of order"
    if entry["prev"] != prev:
        return "does not link to the previous entry"
    v2 = "v" in entry
    if v2:
        if entry["v"] != 2 or not isinstance(entry["sealed"], str):
            return "malformed fields"
        digest = sealed_entry_hash(seq, entry["sealed"], prev)
    else:
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
    message = (_SIG_PREFIX_V2 if v2 else _SIG_PREFIX) + bytes.fromhex(digest)
    if not any(keys.verify_signature(key, message, signature) for key in public_keys):
        return "signature does not verify"
    return ""
