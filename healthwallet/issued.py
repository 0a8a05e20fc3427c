"""The patient's register of issued grants, and the status lists that revoke them.

State lives in the wallet home: ``grants.sqlite`` (one row per grant: id, status list slot,
revoked flag, and sealed under the wallet's metadata key its recipient, expiry, creation time,
kind and study; see docs/format.md "Grant register") and ``status/<n>.json`` (the signed
StatusList2021 credentials, rewritten on every revocation so they can be hosted as they are).
A grant's index is drawn at random among the free slots of a 131072-entry list, so the index
says nothing about how many grants the patient has issued (StatusList2021 §6.1, "Privacy").
A research consent's slot is in a list of its study's own, signed by the per-study identity,
with a random name (healthwallet.studyid).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict

from . import grants, statuslist, studyid
from .atrest import REGISTER_FILE, is_v1_register, plain_register
from .audit import AuditLog
from .credentials import Format
from .didweb import KeyAgreement
from .errors import KeystoreError, NotFoundError, StorageError, UsageError
from .fsutil import ensure_private_dir, exclusive_lock, storage_error
from .keys import Identity
from .metaseal import MetaSeal
from .safewrite import OutputDir, atomic_write_bytes
from .urls import parse_url

LIST_SIZE = 131072
# Start a fresh list once half the slots are taken, so random draws stay quick and a list
# still hides how many grants it holds.
LIST_FILL_LIMIT = LIST_SIZE // 2
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_AD_ROW = b"healthwallet-register/v2\0"
# v2: who, until when, what for and which study are sealed (metaseal.py); the slot and the
# revoked flag stay plain, as the hosted status lists show them anyway.
_GRANTS_TABLE = """
    CREATE TABLE IF NOT EXISTS {name} (
        grant_id TEXT PRIMARY KEY,
        list_no INTEGER NOT NULL REFERENCES status_lists(list_no),
        status_index INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        sealed BLOB NOT NULL,
        UNIQUE (list_no, status_index)
    );
"""
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
    parsed = parse_url(base, "the status-url", ("https", "http", "file"))
    loopback_http = parsed.scheme == "http" and parsed.host in _LOOPBACK
    if not (parsed.scheme in ("https", "file") or loopback_http):
        raise UsageError(
            "a status list base URL must be https:// (or http:// on this machine only)",
            "for example https://example.org/healthwallet/status/",
        )
    if "?" in base:
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
        self.db_path = home / REGISTER_FILE
        # Nonces come from the OS even when slot draws are pinned (tests): never reused.
        self._seal = MetaSeal(identity, self.retired)
        self.status_base_url = normalize_base_url(
            status_base_url or self.status_dir.resolve().as_uri()
        )

    # -- storage ---------------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        ensure_private_dir(self.home, symlinks="owned")
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
            # Freed pages are zeroed, so nothing rewritten or deleted lingers in the file.
            db.execute("PRAGMA secure_delete=ON")
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS status_lists (
                    list_no INTEGER PRIMARY KEY,
                    base TEXT NOT NULL,
                    url TEXT NOT NULL UNIQUE,
                    created TEXT NOT NULL,
                    issuer TEXT
                );
                """
                + _GRANTS_TABLE.format(name="grants")
            )
            if is_v1_register(db):
                self._seal_v1_rows(db)
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
                sealed = self._seal_row(
                    grant_id,
                    {"recipient": recipient_did, "expires": _iso(expires), "created": created},
                )
                db.execute(
                    "INSERT INTO grants (grant_id, list_no, status_index, state, sealed) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    (grant_id, list_no, index, sealed),
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
        self.confirm_as(reservation, kind="consent", study=study)

    def confirm_as(self, reservation: Reservation, **content: str) -> None:
        """Mark a reserved slot as issued, for a ``kind`` other than a grant (consent,
        credential): revoked like a grant."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = self._open_row(db, reservation.grant_id)
                row.update(content)
                db.execute(
                    "UPDATE grants SET state = 'issued', sealed = ? WHERE grant_id = ?",
                    (self._seal_row(reservation.grant_id, row), reservation.grant_id),
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
        vouched_by: str | None = None,
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
                vouched_by=vouched_by,
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
                    **({"vouched_by": vouched_by} if vouched_by else {}),
                },
            )
        return summary

    # -- revoking and listing --------------------------------------------------------------------

    def revoke(self, grant_id: str) -> dict[str, Any]:
        """Revoke a grant: set its status bit and republish its signed status list."""
        now = _iso(self.clock())
        with self._db() as db:
            row = db.execute(
                "SELECT g.list_no, l.url, g.status_index, g.revoked FROM grants g "
                "JOIN status_lists l ON l.list_no = g.list_no "
                "WHERE g.grant_id = ? AND g.state = 'issued'",
                (grant_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"no issued grant {grant_id}", "list your grants with `healthwallet grants`"
                )
            list_no, list_url, index, already = int(row[0]), str(row[1]), int(row[2]), bool(row[3])
            content = self._open_row(db, grant_id)
            consent = content.get("kind") == "consent"
            if not already:
                content["revoked_at"] = now
                db.execute(
                    "UPDATE grants SET revoked = 1, sealed = ? WHERE grant_id = ?",
                    (self._seal_row(grant_id, content), grant_id),
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
                "SELECT g.grant_id, g.sealed, g.revoked, l.url, g.status_index FROM grants g"
                " JOIN status_lists l ON l.list_no = g.list_no WHERE g.state = 'issued'"
            ).fetchall()
        listed: list[IssuedGrant] = []
        for grant_id, sealed, revoked, list_url, index in rows:
            content = self._seal.open(sealed, _AD_ROW + grant_id.encode(), "a grant register row")
            expires, created = str(content["expires"]), str(content["created"])
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
                    "recipient": str(content["recipient"]),
                    "expires": expires,
                    "created": created,
                    "status": state,
                    "status_list": list_url,
                    "status_index": int(index),
                    "kind": str(content.get("kind", "grant")),
                }
            )
        listed.sort(key=lambda g: (g["created"], g["grant_id"]))
        return listed

    # -- sealed rows -----------------------------------------------------------------------------

    def _seal_row(self, grant_id: str, content: Mapping[str, Any]) -> bytes:
        return self._seal.seal(dict(content), _AD_ROW + grant_id.encode())

    def _open_row(self, db: sqlite3.Connection, grant_id: str) -> dict[str, Any]:
        row = db.execute("SELECT sealed FROM grants WHERE grant_id = ?", (grant_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no grant {grant_id}")
        content = self._seal.open(row[0], _AD_ROW + grant_id.encode(), "a grant register row")
        if not isinstance(content, dict):
            raise StorageError("a grant register row is not an object")
        return content

    def seal_legacy(self) -> bool:
        """Seal a v1 register's plain rows (first unlock after upgrading); True if it had any."""
        if not plain_register(self.db_path):
            return False
        with self._db():
            pass  # opening seals (see _seal_v1_rows)
        return True

    def _seal_v1_rows(self, db: sqlite3.Connection) -> None:
        """Move v1 rows (recipient, expiry, study in the clear) into the sealed v2 table."""
        db.execute("BEGIN IMMEDIATE")
        try:
            if not is_v1_register(db):  # another process sealed it meanwhile
                db.execute("ROLLBACK")
                return
            # Registers from before research sharing have no consents table.
            db.execute(
                "CREATE TABLE IF NOT EXISTS consents (grant_id TEXT PRIMARY KEY, study TEXT)"
            )
            rows = db.execute(
                "SELECT g.grant_id, g.recipient, g.expires, g.created, g.revoked_at, g.list_no,"
                " g.status_index, g.revoked, g.state, c.study FROM grants g"
                " LEFT JOIN consents c ON c.grant_id = g.grant_id"
            ).fetchall()
            db.execute(_GRANTS_TABLE.format(name="grants_v2"))
            for grant_id, recipient, expires, created, revoked_at, *slot, state, study_id in rows:
                content: dict[str, Any] = {
                    "recipient": recipient,
                    "expires": expires,
                    "created": created,
                }
                if revoked_at is not None:
                    content["revoked_at"] = revoked_at
                if study_id is not None:
                    content.update(kind="consent", study=study_id)
                db.execute(
                    "INSERT INTO grants_v2 (grant_id, list_no, status_index, revoked, state,"
                    " sealed) VALUES (?, ?, ?, ?, ?, ?)",
                    (grant_id, *slot, state, self._seal_row(grant_id, content)),
                )
            db.execute("DROP TABLE grants")
            db.execute("DROP TABLE IF EXISTS consents")
            db.execute("ALTER TABLE grants_v2 RENAME TO grants")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("VACUUM")  # rebuild the file: no page keeps the plain rows
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # nor a WAL file, in WAL mode

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
        # The study is sealed in each consent's row (register v2): open the list's rows until
        # one is a consent.
        grant_ids = db.execute(
            "SELECT grant_id FROM grants WHERE list_no = ? AND state = 'issued'", (list_no,)
        ).fetchall()
        for (grant_id,) in grant_ids:
            content = self._open_row(db, str(grant_id))
            if content.get("kind") == "consent" and isinstance(content.get("study"), str):
                return str(content["study"])
        return None

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
        written: list[Path] = []
        with OutputDir(out_dir, create=True, what="the publish directory") as target_dir:
            into_home = self.status_dir.is_dir() and os.path.samestat(
                os.fstat(target_dir.fd), os.stat(self.status_dir)
            )
            for list_no in self._list_numbers():
                try:
                    source = self._write_status_list(list_no)
                except KeystoreError:
                    if self._holds_grants(list_no):
                        raise
                    continue  # a per-study list no issued consent names (its slot was given back)
                target = out_dir / source.name
                if not into_home:
                    # status lists are public by design: bits, no health data
                    target_dir.write_bytes(source.name, source.read_bytes(), mode=0o644)
                written.append(target)
        return written


def _json_bytes(credential: Mapping[str, Any] | str) -> bytes:
    if isinstance(credential, str):
        return credential.encode("ascii") + b"\n"
    return json.dumps(credential, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def active_grants_holding(
    record_id: str, audit_entries: Iterable[Mapping[str, Any]], grants: Iterable[IssuedGrant]
) -> list[IssuedGrant]:
    """The active (unexpired, unrevoked) grants that carry ``record_id``, as the audit log's
    `grant.issued` entries name their records."""
    holding = {
        str(entry["details"].get("grant_id"))
        for entry in audit_entries
        if entry.get("event") == "grant.issued"
        and isinstance(entry.get("details"), Mapping)
        and record_id in (entry["details"].get("records") or [])
    }
    return [g for g in grants if g["status"] == "active" and g["grant_id"] in holding]
