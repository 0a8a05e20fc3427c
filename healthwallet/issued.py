"""The patient's register of issued grants, and the status lists that revoke them.

State lives in the wallet home: ``grants.sqlite`` (one row per grant: id, recipient, expiry,
status list URL and index, revoked flag, creation time) and ``status/<name>.json`` (the signed
StatusList2021 credentials, named as the last segment of their URL, rewritten on every
revocation so they can be hosted as they are). A grant's index is drawn at random among the
free slots of a 131072-entry list, so the index says nothing about how many grants the patient
has issued (StatusList2021 §6.1, "Privacy"). A research consent's slot is in a list of its
study's own, signed by the per-study identity, with a random name (healthwallet.studyid).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict

from . import grants, statuslist, studyid
from .audit import AuditLog
from .credentials import Format
from .didweb import KeyAgreement
from .errors import KeystoreError, NotFoundError, StorageError, UsageError
from .fsutil import atomic_write_bytes, ensure_private_dir, exclusive_lock, storage_error
from .keys import Identity

LIST_SIZE = 131072
# Start a fresh list once half the slots are taken, so random draws stay quick and a list
# still hides how many grants it holds.
LIST_FILL_LIMIT = LIST_SIZE // 2
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# A status list's file name, taken from its URL (the register is read as hostile input).
_LIST_FILE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\.json\Z")

Clock = Callable[[], datetime]
RandomBytes = Callable[[int], bytes]
GrantState = Literal["active", "expired", "revoked"]


class IssuedGrant(TypedDict):
    """One issued grant as `grant list` shows it."""

    grant_id: str
    recipient: str
    expires: str
    created: str
    status: GrantState
    status_list: str
    status_index: int
    kind: str  # "grant" (a doctor's access) or "consent" (a research share)


@dataclass(frozen=True)
class Reservation:
    """A status list slot held for a grant that is being written."""

    grant_id: str
    list_no: int
    list_url: str
    index: int

    @property
    def entry(self) -> dict[str, Any]:
        """The credentialStatus (StatusList2021Entry) for this slot."""
        return statuslist.status_entry(self.list_url, self.index)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_base_url(base: str) -> str:
    """Check a status list base URL (https, or http on loopback, or file) and end it with '/'."""
    parsed = urllib.parse.urlsplit(base)
    loopback_http = parsed.scheme == "http" and parsed.hostname in _LOOPBACK
    if not (parsed.scheme in ("https", "file") or loopback_http) or (
        parsed.scheme != "file" and not parsed.hostname
    ):
        raise UsageError(
            "a status list base URL must be https:// (or http:// on this machine only)",
            "for example https://example.org/healthwallet/status/",
        )
    if parsed.query or parsed.fragment:
        raise UsageError("a status list base URL has no query or fragment")
    return base if base.endswith("/") else base + "/"


class IssuedGrants:
    """Issued grants of one wallet, their status list slots and revocations."""

    def __init__(
        self,
        home: Path,
        identity: Identity,
        *,
        status_base_url: str | None = None,
        audit: AuditLog | None = None,
        clock: Clock = _utc_now,
        random_bytes: RandomBytes = os.urandom,
        status_format: Format = "ldp",
        retired: Sequence[Identity] = (),
    ) -> None:
        self.home = home
        self.identity = identity
        # A status list is signed by the identity that issued its grants: after a key
        # rotation, lists of grants issued under a retired DID are still signed with it.
        self.retired = tuple(retired)
        self._signers = {i.did: i for i in (*self.retired, identity)}
        self.audit = audit
        self.clock = clock
        self.random_bytes = random_bytes
        self.status_format: Format = status_format
        self.status_dir = home / "status"
        self.db_path = home / "grants.sqlite"
        self.status_base_url = normalize_base_url(
            status_base_url or self.status_dir.resolve().as_uri()
        )

    # -- storage ---------------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        ensure_private_dir(self.home)
        if not self.db_path.exists():
            try:
                os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise storage_error(exc, "the grants register") from None
        try:
            db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        except sqlite3.Error:
            raise StorageError("cannot open the grants register") from None
        try:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS status_lists (
                    list_no INTEGER PRIMARY KEY,
                    base TEXT NOT NULL,
                    url TEXT NOT NULL UNIQUE,
                    created TEXT NOT NULL,
                    issuer TEXT
                );
                CREATE TABLE IF NOT EXISTS grants (
                    grant_id TEXT PRIMARY KEY,
                    recipient TEXT NOT NULL,
                    expires TEXT NOT NULL,
                    list_no INTEGER NOT NULL REFERENCES status_lists(list_no),
                    list_url TEXT NOT NULL,
                    status_index INTEGER NOT NULL,
                    revoked INTEGER NOT NULL DEFAULT 0,
                    revoked_at TEXT,
                    state TEXT NOT NULL,
                    created TEXT NOT NULL,
                    UNIQUE (list_no, status_index)
                );
                CREATE TABLE IF NOT EXISTS consents (
                    grant_id TEXT PRIMARY KEY REFERENCES grants(grant_id),
                    study TEXT NOT NULL
                );
                """
            )
            columns = {r[1] for r in db.execute("PRAGMA table_info(status_lists)")}
            if "issuer" not in columns:  # registers made before key rotation existed
                db.execute("ALTER TABLE status_lists ADD COLUMN issuer TEXT")
            # Lists with no recorded issuer predate any rotation: the oldest identity made them.
            oldest = self.retired[0] if self.retired else self.identity
            db.execute("UPDATE status_lists SET issuer = ? WHERE issuer IS NULL", (oldest.did,))
            yield db
        except sqlite3.Error as exc:
            raise StorageError(f"the grants register failed ({exc.__class__.__name__})") from None
        finally:
            db.close()

    # -- issuing ---------------------------------------------------------------------------------

    def reserve(
        self,
        recipient_did: str,
        expires: datetime,
        grant_id: str | None = None,
        *,
        study: str | None = None,
    ) -> Reservation:
        """Hold a random free status list slot for a new grant, or for a research consent
        (``study``): then in that study's own list, signed by the per-study identity."""
        grant_id = grant_id or grants.new_grant_id(self.random_bytes)
        issuer = self.identity
        fill_limit = LIST_FILL_LIMIT
        if study is not None:
            studyid.require_hostable(self.status_base_url)
            issuer = studyid.study_identity(self.identity, study)
            fill_limit = (studyid.INDEX_HIGH - studyid.INDEX_LOW) // 2
        created = _iso(self.clock())
        new_list: int | None = None
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT l.list_no, l.url, COUNT(g.grant_id) FROM status_lists l "
                    "LEFT JOIN grants g ON g.list_no = l.list_no WHERE l.base = ? "
                    "AND l.issuer = ? GROUP BY l.list_no ORDER BY l.list_no DESC LIMIT 1",
                    (self.status_base_url, issuer.did),
                ).fetchone()
                if row is None or row[2] >= fill_limit:
                    top = db.execute("SELECT COALESCE(MAX(list_no), 0) FROM status_lists")
                    list_no = int(top.fetchone()[0]) + 1
                    list_url = (
                        f"{self.status_base_url}{list_no}.json"
                        if study is None
                        else studyid.new_list_url(self.status_base_url, self.random_bytes)
                    )
                    db.execute(
                        "INSERT INTO status_lists (list_no, base, url, created, issuer) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (list_no, self.status_base_url, list_url, created, issuer.did),
                    )
                    new_list = list_no
                else:
                    list_no, list_url = int(row[0]), str(row[1])
                index = self._free_index(db, list_no, study is not None)
                db.execute(
                    "INSERT INTO grants (grant_id, recipient, expires, list_no, list_url, "
                    "status_index, state, created) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (grant_id, recipient_did, _iso(expires), list_no, list_url, index, created),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if new_list is not None:
            self._write_status_list(new_list, issuer)
        return Reservation(grant_id, list_no, list_url, index)

    def _free_index(self, db: sqlite3.Connection, list_no: int, per_study: bool = False) -> int:
        while True:
            # LIST_SIZE is a power of two, so the modulo draws uniformly.
            index = (
                studyid.draw_index(self.random_bytes)
                if per_study
                else int.from_bytes(self.random_bytes(4), "big") % LIST_SIZE
            )
            taken = db.execute(
                "SELECT 1 FROM grants WHERE list_no = ? AND status_index = ?", (list_no, index)
            ).fetchone()
            if taken is None:
                return index

    def confirm(self, reservation: Reservation) -> None:
        """Mark a reserved grant as issued."""
        with self._db() as db:
            db.execute(
                "UPDATE grants SET state = 'issued' WHERE grant_id = ?", (reservation.grant_id,)
            )

    def confirm_consent(self, reservation: Reservation, study: str) -> None:
        """Mark a reserved slot as an issued research consent (revoked like a grant)."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO consents (grant_id, study) VALUES (?, ?)",
                    (reservation.grant_id, study),
                )
                db.execute(
                    "UPDATE grants SET state = 'issued' WHERE grant_id = ?",
                    (reservation.grant_id,),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def release(self, reservation: Reservation) -> None:
        """Give back the slot of a grant that was never written."""
        with self._db() as db:
            db.execute(
                "DELETE FROM grants WHERE grant_id = ? AND state = 'pending'",
                (reservation.grant_id,),
            )

    def issue(
        self,
        out: BinaryIO,
        records: Sequence[grants.GrantRecord],
        recipient_did: str,
        *,
        purpose: str,
        expires: datetime,
        fmt: Format = "ldp",
        anchors: Mapping[str, Mapping[str, Any]] | None = None,
        spool_dir: Path | None = None,
        recipient_key: KeyAgreement | None = None,
    ) -> grants.GrantSummary:
        """Write a grant to ``out`` and register it (slot, audit entry).

        ``recipient_key``: a did:web recipient's resolved key-agreement key."""
        reservation = self.reserve(recipient_did, expires)
        try:
            summary = grants.issue_grant(
                out,
                self.identity,
                recipient_did,
                records,
                purpose=purpose,
                expires=expires,
                credential_status=reservation.entry,
                fmt=fmt,
                now=self.clock(),
                grant_id=reservation.grant_id,
                anchors=anchors,
                random_bytes=self.random_bytes,
                spool_dir=spool_dir,
                recipient_key=recipient_key,
            )
        except BaseException:
            self.release(reservation)
            raise
        self.confirm(reservation)
        if self.audit is not None:
            self.audit.append(
                "grant.issued",
                {
                    "grant_id": summary["grant_id"],
                    "recipient": recipient_did,
                    "expires": summary["expires"],
                    "records": summary["records"],
                    "status_list": reservation.list_url,
                    "status_index": reservation.index,
                },
            )
        return summary

    # -- revoking and listing --------------------------------------------------------------------

    def revoke(self, grant_id: str) -> dict[str, Any]:
        """Revoke a grant: set its status bit and republish its signed status list."""
        now = _iso(self.clock())
        with self._db() as db:
            row = db.execute(
                "SELECT list_no, list_url, status_index, revoked FROM grants "
                "WHERE grant_id = ? AND state = 'issued'",
                (grant_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"no issued grant {grant_id}", "list your grants with `healthwallet grants`"
                )
            list_no, list_url, index, already = int(row[0]), str(row[1]), int(row[2]), bool(row[3])
            consent = (
                db.execute("SELECT 1 FROM consents WHERE grant_id = ?", (grant_id,)).fetchone()
                is not None
            )
            if not already:
                db.execute(
                    "UPDATE grants SET revoked = 1, revoked_at = ? WHERE grant_id = ?",
                    (now, grant_id),
                )
        path = self._write_status_list(list_no)
        if self.audit is not None and not already:
            self.audit.append(
                "share.revoked" if consent else "grant.revoked",
                {
                    "share_id" if consent else "grant_id": grant_id,
                    "status_list": list_url,
                    "status_index": index,
                },
            )
        return {
            "grant_id": grant_id,
            "kind": "consent" if consent else "grant",
            "revoked": True,
            "already_revoked": already,
            "status_list": list_url,
            "status_index": index,
            "status_file": str(path),
        }

    def list_grants(self, now: datetime | None = None) -> list[IssuedGrant]:
        """Every issued grant with its state at ``now``: active, expired or revoked."""
        moment = (now or self.clock()).astimezone(UTC)
        with self._db() as db:
            rows = db.execute(
                "SELECT g.grant_id, g.recipient, g.expires, g.created, g.revoked, g.list_url,"
                " g.status_index, c.study FROM grants g"
                " LEFT JOIN consents c ON c.grant_id = g.grant_id"
                " WHERE g.state = 'issued' ORDER BY g.created, g.grant_id"
            ).fetchall()
        listed: list[IssuedGrant] = []
        for grant_id, recipient, expires, created, revoked, list_url, index, study in rows:
            state: GrantState
            if revoked:
                state = "revoked"
            elif datetime.fromisoformat(expires) <= moment:
                state = "expired"
            else:
                state = "active"
            listed.append(
                {
                    "grant_id": grant_id,
                    "recipient": recipient,
                    "expires": expires,
                    "created": created,
                    "status": state,
                    "status_list": list_url,
                    "status_index": int(index),
                    "kind": "consent" if study is not None else "grant",
                }
            )
        return listed

    # -- status lists ----------------------------------------------------------------------------

    def status_list_credential(
        self, list_no: int, signer: Identity | None = None
    ) -> dict[str, Any] | str:
        """The signed status list credential of list ``list_no``, as of now."""
        with self._db() as db:
            row = db.execute(
                "SELECT url, issuer FROM status_lists WHERE list_no = ?", (list_no,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no status list {list_no}")
            revoked = db.execute(
                "SELECT status_index FROM grants WHERE list_no = ? AND revoked = 1", (list_no,)
            ).fetchall()
            study = self._list_study(db, list_no)
        bits = statuslist.StatusList(size=LIST_SIZE)
        for (index,) in revoked:
            bits.set(int(index), True)
        signer = signer or self._signers.get(str(row[1])) or self._study_signer(str(row[1]), study)
        if signer is None:
            raise KeystoreError(
                f"status list {list_no} was issued by a key this wallet no longer holds",
                "restore the wallet's retired keys (see `healthwallet id --history`)",
            )
        return statuslist.status_list_credential(
            str(row[0]), bits, signer, self.clock(), fmt=self.status_format
        )

    def _list_study(self, db: sqlite3.Connection, list_no: int) -> str | None:
        """The study of the consents in a per-study list (None for the patient's own lists)."""
        row = db.execute(
            "SELECT c.study FROM consents c JOIN grants g ON g.grant_id = c.grant_id "
            "WHERE g.list_no = ? LIMIT 1",
            (list_no,),
        ).fetchone()
        return None if row is None else str(row[0])

    def _study_signer(self, issuer_did: str, study: str | None) -> Identity | None:
        """The per-study identity (of the current or a retired key) that signs this list."""
        if not study:
            return None
        for identity in (self.identity, *self.retired):
            candidate = studyid.study_identity(identity, study)
            if candidate.did == issuer_did:
                return candidate
        return None

    def _list_numbers(self) -> list[int]:
        with self._db() as db:
            return [int(r[0]) for r in db.execute("SELECT list_no FROM status_lists ORDER BY 1")]

    def _holds_grants(self, list_no: int) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT 1 FROM grants WHERE list_no = ? AND state = 'issued' LIMIT 1", (list_no,)
            )
            return row.fetchone() is not None

    def _list_file_name(self, list_no: int) -> str:
        """The list's file name: the last segment of its URL, so a published copy is found
        where the URL points (``<n>.json`` for lists made before per-study names)."""
        with self._db() as db:
            row = db.execute(
                "SELECT url FROM status_lists WHERE list_no = ?", (list_no,)
            ).fetchone()
        name = str(row[0]).rsplit("/", 1)[-1] if row is not None else ""
        return name if _LIST_FILE_RE.match(name) else f"{list_no}.json"

    def _write_status_list(self, list_no: int, signer: Identity | None = None) -> Path:
        ensure_private_dir(self.status_dir)
        path = self.status_dir / self._list_file_name(list_no)
        # Read and write under one lock: the last writer has read every committed revocation.
        with exclusive_lock(self.home / "status.lock"):
            credential = self.status_list_credential(list_no, signer)
            atomic_write_bytes(path, _json_bytes(credential), "a status list")
        return path

    def publish(self, out_dir: Path) -> list[Path]:
        """Re-sign every status list and write copies to ``out_dir`` for hosting."""
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "the publish directory") from None
        written: list[Path] = []
        for list_no in self._list_numbers():
            try:
                source = self._write_status_list(list_no)
            except KeystoreError:
                if self._holds_grants(list_no):
                    raise
                continue  # a per-study list no issued consent names (its slot was given back)
            target = out_dir / source.name
            if target.resolve() != source.resolve():
                tmp = target.with_name(f".{target.name}.tmp")
                try:
                    tmp.write_bytes(source.read_bytes())
                    tmp.chmod(0o644)  # status lists are public by design: bits, no health data
                    os.replace(tmp, target)
                except OSError as exc:
                    tmp.unlink(missing_ok=True)
                    raise storage_error(exc, "a published status list") from None
            written.append(target)
        return written


def _json_bytes(credential: Mapping[str, Any] | str) -> bytes:
    if isinstance(credential, str):
        return credential.encode("ascii") + b"\n"
    return json.dumps(credential, indent=2, sort_keys=True).encode("utf-8") + b"\n"
