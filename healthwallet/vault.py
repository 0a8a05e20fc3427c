"""The encrypted record vault: blobs on disk, an encrypted index in SQLite.

Each record has a random content key. Its bytes are encrypted in chunks with
secretstream into ``blobs/<id>``; its metadata (label, type, tags, file name, size,
salt, commitment) is sealed under the same content key; the content key is wrapped
under the vault key. The record id is bound into every seal as associated data, so
blobs, keys and metadata cannot be swapped between records. Only the id, the
insertion order and the wrapped values are stored in the clear.

Writes are atomic: the blob is written to a temp file, fsynced and renamed, and only
then is the index row committed. A crash leaves at most an orphaned blob or temp
file, which the next writer (holding the lock) removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from . import stream
from .addhooks import ContentGate, PreparedContent
from .chunkio import ChunkReader, ProgressCallback, consumer, counted
from .errors import (
    HealthWalletError,
    KeystoreError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from .filetypes import check_input_file, detect_type
from .fsutil import (
    LOCK_FILE,
    ensure_private_dir,
    exclusive_lock,
    open_private,
    refuse_links_in_home,
    storage_error,
)
from .hashthread import hashing
from .idprefix import resolve_id
from .safewrite import OutputDir
from .stream import RandomBytes
from .timeutil import Clock, utc_now

INDEX_FILE = "vault.sqlite"
BLOB_DIR = "blobs"
STAGING_DIR = ".tmp-staging"  # blobs being written; never backed up (name starts `.tmp-`)
_BLOBS = "the record folder"
SCHEMA_VERSION = 1

_AD_BLOB = b"hw-blob/v1\0"
_AD_META = b"hw-meta/v1\0"
_AD_KEY = b"hw-key/v1\0"
_KEY_ID_CONTEXT = b"hw-vault-kid-v1"
REWRAP_BATCH = 500
_RECORD_ID = re.compile(r"[0-9a-f]{16}")  # _new_id: 8 random bytes in hex


@dataclass(frozen=True)
class Record:
    """One record's decrypted metadata."""

    id: str
    type: str
    media_type: str
    label: str
    tags: list[str]
    name: str
    size: int
    added: str
    salt: bytes = field(repr=False)
    commitment: str
    resource_counts: dict[str, int] = field(default_factory=dict)
    clinical_date: str = ""
    title: str = ""

    def summary(self) -> dict[str, Any]:
        """The JSON shape `record list` prints."""
        return {
            "id": self.id,
            "type": self.type,
            "media_type": self.media_type,
            "label": self.label,
            "tags": self.tags,
            "size": self.size,
            "added": self.added,
            "resource_counts": self.resource_counts,
            "clinical_date": self.clinical_date,
            "title": self.title,
        }


def vault_key_id(vault_key: bytes) -> str:
    """A public fingerprint of a vault key (keyed BLAKE2b), to tell which key wraps the records."""
    return hashlib.blake2b(
        b"", key=vault_key, person=_KEY_ID_CONTEXT.ljust(16, b"\0"), digest_size=16
    ).hexdigest()


def _tighten(path: Path) -> None:
    """chmod 0600 through a descriptor opened without following a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class Vault:
    """The record store of one wallet home."""

    def __init__(
        self,
        home: Path,
        vault_key: bytes,
        now: Clock = utc_now,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.home = home
        self._vault_key = vault_key
        self._now = now
        self._random = random_bytes
        self._db: sqlite3.Connection | None = None
        self._blobs: OutputDir | None = None
        self._staging: OutputDir | None = None
        self.recovered = 0

    # -- storage plumbing -------------------------------------------------------------
    @property
    def blob_dir(self) -> Path:
        """Directory of encrypted blobs."""
        return self.home / BLOB_DIR

    def blob_path(self, record_id: str) -> Path:
        """Where a record's blob lives; VerificationError for an id that is not a record id
        (ids come from the index, which is as hostile as any file)."""
        if not _RECORD_ID.fullmatch(record_id):
            raise VerificationError(
                "the record index holds an id that is not a record id",
                "run `healthwallet doctor`; restore the wallet from a backup",
            )
        return self.blob_dir / record_id

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            refuse_links_in_home(self.home)
            if (self.home / STAGING_DIR).is_dir():
                with contextlib.suppress(StorageError):  # a read-only home: tidied next write
                    self._staging_dir().close()
            path = self.home / INDEX_FILE
            if not path.exists():
                self._create_file(path)
            try:
                db = sqlite3.connect(path, timeout=60, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA secure_delete=ON")
            except sqlite3.DatabaseError as exc:
                raise StorageError(
                    f"the record index cannot be opened ({exc})",
                    "run `healthwallet doctor`; restore from a backup if it is damaged",
                ) from None
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    _tighten(path.with_name(path.name + suffix))
            self._db = db
        return self._db

    @staticmethod
    def _ensure_schema(db: sqlite3.Connection) -> None:
        """Create the tables if missing (writers only; readers never write)."""
        db.execute(
            "CREATE TABLE IF NOT EXISTS records ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT NOT NULL UNIQUE,"
            " wrapped_key BLOB NOT NULL,"
            " meta BLOB NOT NULL)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS vault_meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT OR IGNORE INTO vault_meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        # Ids whose blob may exist without a committed row (a write or delete in flight):
        # recovery looks only here, so it costs O(pending), not O(records).
        db.execute("CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY)")

    def _create_file(self, path: Path) -> None:
        ensure_private_dir(self.home, symlinks="owned")
        try:
            open_private(path).close()
        except FileExistsError:
            pass
        except OSError as exc:
            raise storage_error(exc, "the record index") from None

    def close(self) -> None:
        """Close the index."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def initialize(self, owner_did: str | None = None) -> None:
        """Create an empty vault (index and blob directory) whose keys belong to ``owner_did``."""
        ensure_private_dir(self.blob_dir)
        db = self._connect()
        self._ensure_schema(db)
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR REPLACE INTO vault_meta VALUES ('key_id', ?)",
                (vault_key_id(self._vault_key),),
            )
            if owner_did is not None:
                db.execute(
                    "INSERT OR REPLACE INTO vault_meta VALUES ('key_owner', ?)", (owner_did,)
                )
        self.close()

    def _meta_value(self, name: str) -> str | None:
        try:
            row = (
                self._connect()
                .execute("SELECT value FROM vault_meta WHERE key=?", (name,))
                .fetchone()
            )
        except sqlite3.OperationalError:
            return None  # no table yet: an empty vault that was never written
        return None if row is None else str(row[0])

    def key_owner(self) -> str | None:
        """The DID whose vault key wraps the record keys (None for vaults made before v0.1)."""
        return self._meta_value("key_owner")

    def _check_key(self) -> None:
        """KeystoreError when the records are wrapped under another key (a rotation happened)."""
        stored = self._meta_value("key_id")
        if stored is not None and stored != vault_key_id(self._vault_key):
            raise KeystoreError(
                "the wallet's key changed while this command was running (key rotation)",
                "run the command again",
            )

    @contextlib.contextmanager
    def _writing(self, take_lock: bool = True) -> Iterator[sqlite3.Connection]:
        """Hold the wallet's exclusive lock and clean up after crashed writers.

        ``take_lock=False`` is for a caller that already holds the wallet lock.
        """
        ensure_private_dir(self.blob_dir)
        ensure_private_dir(self.home / STAGING_DIR)
        lock = exclusive_lock(self.home / LOCK_FILE) if take_lock else contextlib.nullcontext(None)
        with (
            lock,
            OutputDir(self.blob_dir, symlinks="refuse", sweep=False, what=_BLOBS) as blobs,
            self._staging_dir() as staging,
        ):
            db = self._connect()
            self._ensure_schema(db)
            self._check_key()
            self.recovered += self._recover(db, blobs)
            self._blobs, self._staging = blobs, staging
            try:
                yield db
            finally:
                self._blobs = self._staging = None

    def _staging_dir(self) -> OutputDir:
        """Where blobs are written before they are renamed into blobs/; opening it removes
        what a killed writer left there (so every command, reader or writer, tidies it)."""
        return OutputDir(
            self.home / STAGING_DIR,
            symlinks="refuse",
            what="the wallet's staging folder",
            random_bytes=self._random,
        )

    def _writers_dirs(self) -> tuple[OutputDir, OutputDir]:
        assert self._blobs is not None and self._staging is not None, "only inside _writing"
        return self._blobs, self._staging

    def _recover(self, db: sqlite3.Connection, blobs: OutputDir) -> int:
        """Undo writes and deletes that a killed writer left half-done (listed in `pending`)."""
        removed = 0
        for (record_id,) in db.execute("SELECT id FROM pending").fetchall():
            # An id that is not a record id never becomes a path: the row alone goes.
            if (
                isinstance(record_id, str)
                and _RECORD_ID.fullmatch(record_id)
                and db.execute("SELECT 1 FROM records WHERE id=?", (record_id,)).fetchone() is None
            ):
                for name in (record_id, f".tmp-{record_id}"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=blobs.fd)
                        removed += 1
            db.execute("DELETE FROM pending WHERE id=?", (record_id,))
        return removed

    def _sweep(self, db: sqlite3.Connection) -> int:
        """Remove any blob or temp file with no index row (a full scan, for `doctor`)."""
        known = {row[0] for row in db.execute("SELECT id FROM records")}
        removed = 0
        blobs, _ = self._writers_dirs()
        for entry in os.scandir(blobs.fd):
            if entry.is_dir(follow_symlinks=False):
                continue  # not something a writer leaves: reported by nobody, removed by nobody
            if entry.name.startswith(".tmp-") or entry.name not in known:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=blobs.fd)
                removed += 1
        return removed

    def _new_id(self, db: sqlite3.Connection) -> str:
        while True:
            record_id = self._random(8).hex()
            if db.execute("SELECT 1 FROM records WHERE id=?", (record_id,)).fetchone() is None:
                return record_id

    # -- sealing ------------------------------------------------------------------------
    def _unwrap(self, record_id: str, wrapped: bytes) -> bytes:
        return stream.open_bytes(self._vault_key, wrapped, _AD_KEY + record_id.encode())

    def _decode(self, record_id: str, wrapped: bytes, meta: bytes) -> tuple[Record, bytes]:
        key = self._unwrap(record_id, wrapped)
        return self._decode_meta(record_id, key, meta), key

    @staticmethod
    def _decode_meta(record_id: str, key: bytes, meta: bytes) -> Record:
        raw = json.loads(stream.open_bytes(key, meta, _AD_META + record_id.encode()))
        return Record(
            id=record_id,
            type=raw["type"],
            media_type=raw["media_type"],
            label=raw["label"],
            tags=list(raw["tags"]),
            name=raw["name"],
            size=int(raw["size"]),
            added=raw["added"],
            salt=bytes.fromhex(raw["salt"]),
            commitment=raw["commitment"],
            resource_counts=dict(raw.get("resource_counts", {})),
            clinical_date=str(raw.get("clinical_date", "")),
            title=str(raw.get("title", "")),
        )

    # -- operations ---------------------------------------------------------------------
    def add(
        self,
        path: Path | PreparedContent,
        record_type: str | None = None,
        label: str | None = None,
        tags: list[str] | None = None,
        on_progress: ProgressCallback | None = None,
        gate: ContentGate | None = None,
    ) -> Record:
        """Encrypt ``path`` (a file, or prepared content) into the vault and return its record.

        ``gate`` sees the plaintext and may refuse the record before its row is committed
        (dedupe.py: content already in the vault)."""
        if isinstance(path, PreparedContent):
            kind, media_type, found = path.record_type, path.media_type, path.found
        else:
            check_input_file(path)
            kind, media_type, found = detect_type(path, record_type)
        with self._writing() as db:
            record_id = self._new_id(db)
            content_key = self._random(stream.KEY_BYTES)
            salt = self._random(32)
            hasher = hashlib.sha256(salt)
            blobs, staging = self._writers_dirs()
            db.execute("INSERT INTO pending (id) VALUES (?)", (record_id,))
            tmp, dst = staging.new_temp()
            try:
                with path.open("rb") as src, dst, hashing() as worker, hashing() as gating:
                    # The gate's keyed digest (dedupe.py) runs on a worker of its own.
                    gated = [gating.feed(gate)] if gate is not None else []
                    size = stream.encrypt_stream(
                        content_key,
                        src,
                        dst,
                        _AD_BLOB + record_id.encode(),
                        consumer(worker.feed(hasher), on_progress, *gated),
                    )
                    dst.flush()
                    os.fsync(dst.fileno())
                staging.place(tmp, record_id, into=blobs)
            except OSError as exc:
                staging.discard(tmp)
                raise storage_error(exc, "a record") from None
            record = Record(
                id=record_id,
                type=kind,
                media_type=media_type,
                label=label if label is not None else path.name,
                tags=sorted(set(tags or [])),
                name=path.name,
                size=size,
                added=self._now().isoformat(timespec="seconds"),
                salt=salt,
                commitment=hasher.hexdigest(),
                resource_counts=found.resource_counts,
                clinical_date=found.clinical_date,
                title=found.title,
            )
            meta = dict(
                record.summary(),
                name=record.name,
                salt=salt.hex(),
                commitment=record.commitment,
            )
            sealed_meta = stream.seal_bytes(
                content_key, json.dumps(meta).encode(), _AD_META + record_id.encode(), self._random
            )
            wrapped = stream.seal_bytes(
                self._vault_key, content_key, _AD_KEY + record_id.encode(), self._random
            )
            try:
                with db:  # one transaction: the row appears and the intent goes together
                    db.execute("BEGIN IMMEDIATE")
                    if gate is not None:
                        gate.admit(db, record_id)
                    db.execute(
                        "INSERT INTO records (id, wrapped_key, meta) VALUES (?, ?, ?)",
                        (record_id, wrapped, sealed_meta),
                    )
                    db.execute("DELETE FROM pending WHERE id=?", (record_id,))
            except sqlite3.OperationalError as exc:
                (self.blob_dir / record_id).unlink(missing_ok=True)
                raise StorageError(f"cannot update the record index ({exc})") from None
            except HealthWalletError:  # the gate refused it: nothing was committed
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(record_id, dir_fd=blobs.fd)
                db.execute("DELETE FROM pending WHERE id=?", (record_id,))
                raise
        return record

    @contextlib.contextmanager
    def index_writer(self) -> Iterator[sqlite3.Connection]:
        """The index, under the wallet's lock, for tables kept beside the records (dedupe.py)."""
        with self._writing() as db:
            yield db

    def records(self, record_type: str | None = None, tag: str | None = None) -> list[Record]:
        """All records in the order they were added, optionally filtered."""
        out = []
        for record_id, wrapped, meta in self._connect().execute(
            "SELECT id, wrapped_key, meta FROM records ORDER BY seq"
        ):
            try:
                record, _ = self._decode(record_id, wrapped, meta)
            except (VerificationError, ValueError, KeyError):
                continue  # a damaged row is reported by `doctor`, not hidden
            if record_type is not None and record.type != record_type:
                continue
            if tag is not None and tag not in record.tags:
                continue
            out.append(record)
        return out

    def resolve_id(self, record_id: str) -> str:
        """The full id for an id or a unique prefix of at least 4 characters."""
        typed = record_id.strip().lower()
        db = self._connect()
        if db.execute("SELECT 1 FROM records WHERE id=?", (typed,)).fetchone():
            return typed
        bare = typed.removeprefix("urn:uuid:")
        candidates: list[str] = []
        if bare and all(c in "0123456789abcdef" for c in bare):
            # Only the ids that start with the prefix are read.
            candidates = [
                str(r[0])
                for r in db.execute("SELECT id FROM records WHERE id LIKE ?", (bare + "%",))
            ]
        return resolve_id(typed, candidates, kind="record", list_command="record list")

    def _fetch(self, record_id: str) -> tuple[str, bytes, bytes]:
        """(full id, wrapped key, sealed metadata) of a record, as stored."""
        full = self.resolve_id(record_id)
        row = (
            self._connect()
            .execute("SELECT wrapped_key, meta FROM records WHERE id=?", (full,))
            .fetchone()
        )
        if row is None:
            raise NotFoundError("no such record", "list records with `healthwallet record list`")
        return full, bytes(row[0]), bytes(row[1])

    def _row(self, record_id: str) -> tuple[Record, bytes]:
        return self._decode_checked(*self._fetch(record_id))

    def _decode_checked(self, full: str, wrapped: bytes, meta: bytes) -> tuple[Record, bytes]:
        """Decode a stored row, reporting damage as VerificationError naming the record."""
        try:
            return self._decode(full, wrapped, meta)
        except (ValueError, KeyError):
            raise VerificationError(f"record {full}: its metadata is damaged") from None
        except VerificationError:
            self._check_key()
            raise VerificationError(
                f"record {full}: its key or metadata failed authentication",
                "run `healthwallet doctor`; restore the wallet from a backup",
            ) from None

    def get(self, record_id: str) -> Record:
        """One record's metadata."""
        return self._row(record_id)[0]

    def _chunks(self, record: Record, key: bytes) -> Iterator[bytes]:
        try:
            handle = self.blob_path(record.id).open("rb")
        except FileNotFoundError:
            raise VerificationError(
                f"record {record.id}: its encrypted content is missing",
                "restore the wallet from a backup",
            ) from None
        with handle:
            yield from stream.decrypt_chunks(key, handle, _AD_BLOB + record.id.encode())

    def verify(self, record_id: str, on_progress: ProgressCallback | None = None) -> Record:
        """Decrypt a record fully and check its commitment; VerificationError on any damage."""
        return self.export_into(record_id, None, on_progress)

    def export_into(
        self, record_id: str, dst: BinaryIO | None, on_progress: ProgressCallback | None = None
    ) -> Record:
        """Write a record's bytes to ``dst`` in one pass, checking its commitment at the end.

        On VerificationError ``dst`` holds unchecked bytes: write only where the caller can
        discard them (a temp file renamed on success); :meth:`read_into` is for the rest.
        """
        record, key = self._row(record_id)
        hasher = hashlib.sha256(record.salt)
        size = 0
        try:
            with hashing() as worker:
                consume = consumer(worker.feed(hasher), on_progress)
                for chunk in self._chunks(record, key):
                    consume(chunk)
                    if dst is not None:
                        dst.write(chunk)
                    size += len(chunk)
        except VerificationError as exc:
            raise VerificationError(
                f"record {record.id}: {exc.message}", "restore the wallet from a backup"
            ) from None
        if hasher.hexdigest() != record.commitment or size != record.size:
            raise VerificationError(
                f"record {record.id}: content does not match its commitment",
                "restore the wallet from a backup",
            )
        return record

    def read_into(
        self, record_id: str, dst: BinaryIO, on_progress: ProgressCallback | None = None
    ) -> Record:
        """Write a record's exact bytes to ``dst``, but only after verifying all of it (for a
        destination that cannot be taken back, like stdout); ``on_progress`` sees both passes."""
        record = self.verify(record_id, on_progress)
        _, key = self._row(record.id)
        for chunk in self._chunks(record, key):
            dst.write(chunk)
            if on_progress is not None:
                on_progress(len(chunk))
        return record

    @contextlib.contextmanager
    def open_plaintext(
        self, record_id: str, on_progress: ProgressCallback | None = None
    ) -> Iterator[BinaryIO]:
        """A readable stream of a record's plaintext (authenticated chunk by chunk)."""
        record, key = self._row(record_id)
        yield cast(BinaryIO, ChunkReader(counted(self._chunks(record, key), on_progress)))

    def remove(self, record_id: str) -> str:
        """Destroy a record: its wrapped key and metadata, then its blob."""
        with self._writing() as db:
            full = self.resolve_id(record_id)
            self.blob_path(full)  # a crafted row's id never becomes a path
            blobs, _ = self._writers_dirs()
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM records WHERE id=?", (full,))
                db.execute("INSERT OR IGNORE INTO pending (id) VALUES (?)", (full,))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full, dir_fd=blobs.fd)
            db.execute("DELETE FROM pending WHERE id=?", (full,))
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return full

    def edit(self, record_id: str, change: Callable[[dict[str, Any], bytes], None]) -> Record:
        """Re-seal a record's metadata after ``change(meta, content_key)`` edits it in place
        (label, type, tags); the content and its commitment are untouched."""
        with self._writing() as db:
            full = self.resolve_id(record_id)
            _, wrapped, sealed = self._fetch(full)
            _, key = self._decode_checked(full, wrapped, sealed)
            meta = json.loads(stream.open_bytes(key, sealed, _AD_META + full.encode()))
            change(meta, key)
            resealed = stream.seal_bytes(
                key, json.dumps(meta).encode(), _AD_META + full.encode(), self._random
            )
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE records SET meta=? WHERE id=?", (resealed, full))
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return self._decode_meta(full, key, resealed)

    def rewrap(
        self,
        new_vault_key: bytes,
        new_owner_did: str,
        *,
        take_lock: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Re-wrap every record key under ``new_vault_key`` in one transaction; returns the count.

        The same transaction records the new key's owner and fingerprint, so the index always
        says which identity its keys belong to. A damaged row aborts it with nothing changed.
        """
        with self._writing(take_lock) as db:
            count = 0
            db.execute("BEGIN IMMEDIATE")
            try:
                last = -1
                while True:
                    rows = db.execute(
                        "SELECT seq, id, wrapped_key FROM records"
                        " WHERE seq > ? ORDER BY seq LIMIT ?",
                        (last, REWRAP_BATCH),
                    ).fetchall()
                    if not rows:
                        break
                    for seq, record_id, wrapped in rows:
                        try:
                            content_key = self._unwrap(record_id, wrapped)
                        except VerificationError:
                            raise VerificationError(
                                f"record {record_id}: its key failed authentication; "
                                "nothing was re-wrapped",
                                "run `healthwallet doctor` and remove or restore that record",
                            ) from None
                        rewrapped = stream.seal_bytes(
                            new_vault_key, content_key, _AD_KEY + record_id.encode(), self._random
                        )
                        db.execute("UPDATE records SET wrapped_key=? WHERE seq=?", (rewrapped, seq))
                        count += 1
                    last = rows[-1][0]
                    if on_batch is not None:
                        on_batch(count)
                db.execute(
                    "INSERT OR REPLACE INTO vault_meta VALUES ('key_owner', ?)", (new_owner_did,)
                )
                db.execute(
                    "INSERT OR REPLACE INTO vault_meta VALUES ('key_id', ?)",
                    (vault_key_id(new_vault_key),),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            self._vault_key = new_vault_key
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def export_entry(self, record_id: str) -> tuple[bytes, bytes]:
        """(content key, sealed metadata) of a record, to adopt it into another vault."""
        full, wrapped, meta = self._fetch(record_id)
        _, key = self._decode_checked(full, wrapped, meta)  # refuse damage before it spreads
        return key, meta

    def has(self, record_id: str) -> bool:
        """True when a record with exactly this id exists."""
        row = self._connect().execute("SELECT 1 FROM records WHERE id=?", (record_id,)).fetchone()
        return row is not None

    def adopt(self, record_id: str, content_key: bytes, sealed_meta: bytes, blob: Path) -> bool:
        """Add an already-encrypted record under its own id; False when that id is present.

        ``blob`` is its encrypted content as another vault stores it (bound to the same id).
        """
        with self._writing() as db:
            if db.execute("SELECT 1 FROM records WHERE id=?", (record_id,)).fetchone():
                return False
            # the metadata must open under the key it came with (and the id it is bound to)
            self._decode_meta(record_id, content_key, sealed_meta)
            self.blob_path(record_id)  # an id from another index is checked like our own
            blobs, staging = self._writers_dirs()
            db.execute("INSERT OR IGNORE INTO pending (id) VALUES (?)", (record_id,))
            tmp, dst = staging.new_temp()
            try:
                with blob.open("rb") as src, dst:
                    while block := src.read(1024 * 1024):
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
                staging.place(tmp, record_id, into=blobs)
            except OSError as exc:
                staging.discard(tmp)
                raise storage_error(exc, "a record") from None
            wrapped = stream.seal_bytes(
                self._vault_key, content_key, _AD_KEY + record_id.encode(), self._random
            )
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO records (id, wrapped_key, meta) VALUES (?, ?, ?)",
                    (record_id, wrapped, sealed_meta),
                )
                db.execute("DELETE FROM pending WHERE id=?", (record_id,))
        return True

    def doctor(self) -> tuple[list[dict[str, str]], int]:
        """Check the index and every record; returns (problems, orphaned files removed)."""
        problems: list[dict[str, str]] = []
        with self._writing() as db:
            self.recovered += self._sweep(db)
            check = db.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                problems.append({"record": "", "problem": "the record index is damaged"})
            rows = db.execute("SELECT id FROM records ORDER BY seq").fetchall()
        for (record_id,) in rows:
            try:
                self.verify(record_id)
            except VerificationError as exc:
                problems.append({"record": record_id, "problem": exc.message})
        return problems, self.recovered

    def __len__(self) -> int:
        row = self._connect().execute("SELECT COUNT(*) FROM records").fetchone()
        return int(row[0])
