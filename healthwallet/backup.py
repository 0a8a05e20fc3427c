"""Encrypted backup of a whole wallet home, and restoring it (format: docs/format-backup.md).

A backup file is ``MAGIC || len || header || secretstream(tar)``. A fresh file key encrypts
the payload (libsodium secretstream, the record blob framing of docs/format.md); the header
seals that key to the wallet's own X25519 key (``crypto_box_seal``) and, optionally, under a
key derived from a backup passphrase by Argon2id. The payload is a streamed tar of every file
in the wallet home except the keystore, locks and temp files, followed by a manifest of their
SHA-256 digests signed by the identity. Memory stays at a few chunks whatever the vault size.

The snapshot is consistent: under the wallet lock, every SQLite file is copied with the
SQLite online backup API, record blobs named by the snapshot's index are hard-linked (a blob
never changes once written), and other files are copied. The lock is then released and the
snapshot is streamed out.

Restoring never touches the current wallet until the end: the backup is unpacked into a temp
directory beside the target, every digest and the signature are checked, the vault is opened
with the identity, and only then is the directory renamed into place (or, with ``merge``, its
missing records adopted into the existing wallet).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import struct
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, cast

from nacl import bindings, pwhash

from . import jsonutil, keys, limits, stream
from .chunkio import ChunkReader, StreamEncryptor, consumer
from .errors import (
    KeystoreError,
    NotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from .fsutil import (
    LOCK_FILE,
    ensure_private_dir,
    exclusive_lock,
    open_private,
    storage_error,
)
from .hashthread import HashWorker, hashing
from .keys import Identity
from .keystore import (
    KEYSTORE_FILE,
    PENDING_SUFFIX,
    KeyringLike,
    Keystore,
    KeystoreKind,
    PassphraseSource,
    ask_once,
    insecure_test_kdf,
    kdf_limits,
    system_keyring,
)
from .rotation import RETIRED_FILE, RETIRED_NEXT, read_retired
from .safewrite import OutputDir
from .stream import RandomBytes
from .timeutil import Clock, utc_now
from .unlock import open_wallet
from .vault import BLOB_DIR, INDEX_FILE, Vault
from .wallet import (
    ROTATION_FILE,
    Wallet,
    choose_keystore,
    read_info,
    wallet_exists,
    write_info,
)

MAGIC = b"healthwallet-backup/v1\n"
FORMAT = "healthwallet-backup/v1"
MAX_HEADER_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
HOME_PREFIX = "home/"
MANIFEST_MEMBER = "manifest.json"
SQLITE_MAGIC = b"SQLite format 3\x00"

_STREAM_AD = b"hw-backup/v1\0"
_PASSPHRASE_AD = b"hw-backup-passphrase/v1\0"
_IDENTITY_AD = b"hw-backup-identity/v1\0"
_HEADER_SIG = b"healthwallet-backup/v1 header\n"
_MANIFEST_SIG = b"healthwallet-backup/v1 manifest\n"
_IO_BLOCK = 1024 * 1024
_SALT_BYTES = pwhash.argon2id.SALTBYTES

# Never in a backup: the keystore (the identity travels as the phrase or sealed in the header),
# locks, temp files, and the parts of an unfinished rotation (reconciled before a backup).
_EXCLUDED_TOP = {
    KEYSTORE_FILE,
    KEYSTORE_FILE + PENDING_SUFFIX,
    LOCK_FILE,
    ROTATION_FILE,
    RETIRED_NEXT,
}
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BackupResult:
    """What `backup` wrote."""

    path: Path
    records: int
    bytes: int
    files: int


@dataclass(frozen=True)
class RestoreResult:
    """What `restore` did."""

    home: Path
    did: str
    records: int
    added: int
    skipped: int
    merged: bool


@dataclass(frozen=True)
class BackupKey:
    """What opens a backup: the identity seed (from the recovery phrase) or the passphrase."""

    seed: bytes | None = None
    passphrase: str | None = None


@dataclass(frozen=True)
class BackupHeader:
    """The public header of a backup file."""

    raw: bytes
    fields: dict[str, Any]

    @property
    def did(self) -> str:
        """The DID the backup was made by (and sealed to)."""
        return str(self.fields["did"])

    @property
    def created(self) -> str:
        """When the backup was made."""
        return str(self.fields["created"])

    @property
    def has_passphrase(self) -> bool:
        """True when a backup passphrase can open it (without the recovery phrase)."""
        return any(r.get("type") == "passphrase" for r in self.fields["recipients"])

    @property
    def stream_ad(self) -> bytes:
        """Associated data of the payload: binds it to this exact header."""
        digest = hashlib.sha256(MAGIC + struct.pack(">I", len(self.raw)) + self.raw).digest()
        return _STREAM_AD + digest


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _damaged(what: str) -> VerificationError:
    return VerificationError(
        f"the backup is damaged or truncated ({what}); nothing was changed",
        "use another copy of the backup",
    )


# -- passphrase recipient -----------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return bytes(
        pwhash.argon2id.kdf(
            32, passphrase.encode("utf-8"), salt, opslimit=opslimit, memlimit=memlimit
        )
    )


def _passphrase_recipient(
    passphrase: str, file_key: bytes, random_bytes: RandomBytes
) -> dict[str, Any]:
    if not passphrase:
        raise UsageError("the backup passphrase is empty", "choose a passphrase of a few words")
    opslimit, memlimit = kdf_limits()
    salt = random_bytes(_SALT_BYTES)
    params = {
        "type": "passphrase",
        "kdf": "argon2id",
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": salt.hex(),
    }
    key = _derive(passphrase, salt, opslimit, memlimit)
    sealed = stream.seal_bytes(key, file_key, _PASSPHRASE_AD + _canonical(params), random_bytes)
    return dict(params, sealed_key=sealed.hex())


def _open_passphrase_recipient(recipient: dict[str, Any], passphrase: str) -> bytes:
    try:
        params = {k: recipient[k] for k in ("type", "kdf", "opslimit", "memlimit", "salt")}
        salt = bytes.fromhex(params["salt"])
        sealed = bytes.fromhex(recipient["sealed_key"])
    except (KeyError, ValueError, TypeError):
        raise _damaged("passphrase entry") from None
    if params["kdf"] != "argon2id" or len(salt) != _SALT_BYTES:
        raise _damaged("passphrase entry")
    try:  # before any work: the file must not choose what restoring costs
        opslimit, memlimit = limits.argon2id_cost(
            params["opslimit"], params["memlimit"], allow_weaker=insecure_test_kdf()
        )
    except limits.CostRefused as exc:
        raise VerificationError(
            f"the backup {exc}", "the file may have been tampered with; use another copy"
        ) from None
    key = _derive(passphrase, salt, opslimit, memlimit)
    try:
        return stream.open_bytes(key, sealed, _PASSPHRASE_AD + _canonical(params))
    except VerificationError:
        raise KeystoreError(
            "wrong backup passphrase (or the backup was changed)",
            "check HEALTHWALLET_BACKUP_PASSPHRASE or --backup-passphrase-file",
        ) from None


# -- header ---------------------------------------------------------------------------------------


def _make_header(
    identity: Identity,
    file_key: bytes,
    passphrase: str | None,
    created: str,
    random_bytes: RandomBytes,
) -> bytes:
    recipients: list[dict[str, Any]] = [
        {
            "type": "x25519",
            "did": identity.did,
            "sealed_key": bytes(bindings.crypto_box_seal(file_key, identity.x25519_public)).hex(),
        }
    ]
    sealed_identity = None
    if passphrase is not None:
        recipients.append(_passphrase_recipient(passphrase, file_key, random_bytes))
        # The passphrase alone must restore the identity too: seal the seed under the file key.
        sealed_identity = stream.seal_bytes(
            file_key, identity.seed, _IDENTITY_AD + identity.did.encode(), random_bytes
        ).hex()
    body = {
        "format": FORMAT,
        "created": created,
        "did": identity.did,
        "recipients": recipients,
        "identity": sealed_identity,
    }
    signature = identity.sign(_HEADER_SIG + _canonical(body))
    return _canonical(dict(body, signature=keys.b64url(signature)))


def read_header(src: BinaryIO) -> BackupHeader:
    """Read and check the header of a backup; VerificationError if it is not one or damaged."""
    if stream.read_full(src, len(MAGIC)) != MAGIC:
        raise VerificationError(
            "this is not a healthwallet backup (or its start is damaged); nothing was changed",
            "check the file you passed",
        )
    length_bytes = stream.read_full(src, 4)
    if len(length_bytes) != 4:
        raise _damaged("header")
    (length,) = struct.unpack(">I", length_bytes)
    if length > MAX_HEADER_BYTES:
        raise _damaged("header too large")
    raw = stream.read_full(src, length)
    if len(raw) != length:
        raise _damaged("header")
    try:
        fields = jsonutil.loads(raw)
        if fields["format"] != FORMAT:
            raise VerificationError(
                "the backup has an unknown format version", "upgrade healthwallet"
            )
        keys.ed25519_from_did(fields["did"])
        if not isinstance(fields["recipients"], list) or not all(
            isinstance(r, dict) for r in fields["recipients"]
        ):
            raise ValueError("recipients")
        str(fields["created"]), str(fields["signature"])
    except VerificationError:
        raise
    except (ValueError, KeyError, TypeError, UsageError):
        raise _damaged("header") from None
    return BackupHeader(raw, fields)


def inspect_backup(path: Path) -> BackupHeader:
    """The header of the backup file at ``path``."""
    with _open_input(path) as src:
        return read_header(src)


def _open_header(header: BackupHeader, key: BackupKey) -> tuple[Identity, bytes]:
    """(identity, file key) from the recovery phrase's seed or the backup passphrase."""
    fields = header.fields
    if key.seed is not None:
        identity = Identity(key.seed)
        if identity.did != header.did:
            raise KeystoreError(
                "the recovery phrase belongs to another identity than this backup",
                f"this backup was made by {header.did}; use that wallet's phrase "
                "(a key rotation gives a new phrase)",
            )
        recipient = next(
            (
                r
                for r in fields["recipients"]
                if r.get("type") == "x25519" and r.get("did") == identity.did
            ),
            None,
        )
        if recipient is None:
            raise _damaged("no entry for the identity")
        try:
            file_key = bytes(
                bindings.crypto_box_seal_open(
                    bytes.fromhex(recipient["sealed_key"]),
                    identity.x25519_public,
                    identity.x25519_private,
                )
            )
        except Exception:
            raise _damaged("identity entry") from None
    elif key.passphrase is not None:
        recipient = next((r for r in fields["recipients"] if r.get("type") == "passphrase"), None)
        if recipient is None:
            raise KeystoreError(
                "this backup has no passphrase", "restore it with your recovery phrase"
            )
        file_key = _open_passphrase_recipient(recipient, key.passphrase)
        try:
            seed = stream.open_bytes(
                file_key, bytes.fromhex(fields["identity"]), _IDENTITY_AD + header.did.encode()
            )
            identity = Identity(seed)
        except (VerificationError, ValueError, TypeError):
            raise _damaged("sealed identity") from None
        if identity.did != header.did:
            raise _damaged("sealed identity")
    else:
        raise KeystoreError(
            "restoring needs the recovery phrase or the backup passphrase",
            "pass --phrase-file, or set HEALTHWALLET_BACKUP_PASSPHRASE",
        )
    if len(file_key) != stream.KEY_BYTES:
        raise _damaged("file key")
    body = {k: v for k, v in fields.items() if k != "signature"}
    try:
        signature = keys.b64url_decode(fields["signature"])
    except (ValueError, TypeError):
        raise _damaged("signature") from None
    if not keys.verify_signature(identity.public_key, _HEADER_SIG + _canonical(body), signature):
        raise VerificationError(
            "the backup's header is not signed by its identity; nothing was changed",
            "the file was changed or forged; use another copy",
        )
    return identity, file_key


# -- snapshot -------------------------------------------------------------------------------------


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(parent: Path, prefix: str) -> None:
    """Remove temp dirs ``<prefix><pid>-…`` whose process is gone (left by a killed run)."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        pid_text = entry.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry.path, ignore_errors=True)


def _temp_name(prefix: str, random_bytes: RandomBytes) -> str:
    return f"{prefix}{os.getpid()}-{random_bytes(4).hex()}"


def _excluded(rel: PurePosixPath, siblings: set[str]) -> bool:
    name = rel.name
    if name.startswith(".tmp-") or name.endswith(".lock"):
        return True
    if len(rel.parts) == 1 and name in _EXCLUDED_TOP:
        return True
    return any(
        name.endswith(suffix) and name[: -len(suffix)] in siblings for suffix in _SQLITE_SIDECARS
    )


def _walk(home: Path) -> tuple[list[PurePosixPath], list[PurePosixPath]]:
    """(dirs, files) of the wallet home to back up, relative, sorted; symlinks are skipped."""
    dirs: list[PurePosixPath] = []
    files: list[PurePosixPath] = []
    for root, dir_names, file_names in os.walk(home):
        base = PurePosixPath(Path(root).relative_to(home).as_posix())
        names = set(file_names)
        kept_dirs = []
        for name in sorted(dir_names):
            rel = base / name if base.parts else PurePosixPath(name)
            if name.startswith(".tmp-") or (Path(root) / name).is_symlink():
                continue
            kept_dirs.append(name)
            dirs.append(rel)
        dir_names[:] = kept_dirs
        for name in sorted(file_names):
            rel = base / name if base.parts else PurePosixPath(name)
            full = Path(root) / name
            if _excluded(rel, names) or not stat.S_ISREG(full.lstat().st_mode):
                continue
            files.append(rel)
    return dirs, files


def _copy_file(src: Path, dst: Path) -> None:
    with src.open("rb") as reader, open_private(dst) as writer:
        shutil.copyfileobj(reader, writer, _IO_BLOCK)


def _sqlite_snapshot(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API)."""
    open_private(dst).close()
    source = sqlite3.connect(src, timeout=60)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot snapshot a database of the wallet ({exc})") from None
    finally:
        source.close()
    for suffix in _SQLITE_SIDECARS:
        dst.with_name(dst.name + suffix).unlink(missing_ok=True)


def _record_ids(index: Path) -> list[str]:
    db = sqlite3.connect(index)
    try:
        return [str(row[0]) for row in db.execute("SELECT id FROM records ORDER BY seq")]
    except sqlite3.Error:
        return []
    finally:
        db.close()


@dataclass
class _Snapshot:
    root: Path
    dirs: list[PurePosixPath]
    files: list[PurePosixPath]
    records: int


def _take_snapshot(home: Path, root: Path, did: str) -> _Snapshot:
    """Copy a consistent view of ``home`` into ``root`` (inside home), holding the wallet lock."""
    with exclusive_lock(home / LOCK_FILE):
        if read_info(home).did != did:
            raise KeystoreError(
                "the wallet's key changed (key rotation) before the backup started",
                "run the backup again",
            )
        dirs, files = _walk(home)
        ensure_private_dir(root)
        for rel in dirs:
            ensure_private_dir(root / rel)
        blob_dir = PurePosixPath(BLOB_DIR)
        sqlite_files = [rel for rel in files if rel.parent != blob_dir and _is_sqlite(home / rel)]
        for rel in sqlite_files:
            _sqlite_snapshot(home / rel, root / rel)
        index = root / INDEX_FILE
        record_ids = _record_ids(index) if index.exists() else []
        wanted_blobs = {blob_dir / record_id for record_id in record_ids}
        kept = list(sqlite_files)
        for rel in files:
            if rel in sqlite_files:
                continue
            if rel.parent == blob_dir:
                if rel not in wanted_blobs:
                    continue  # a leftover of a killed writer: not part of the vault
                try:
                    os.link(home / rel, root / rel)  # blobs never change once written
                except OSError:
                    _copy_file(home / rel, root / rel)
            else:
                _copy_file(home / rel, root / rel)
            kept.append(rel)
        missing = wanted_blobs - set(kept)
        if missing:
            raise VerificationError(
                f"{len(missing)} record(s) have no encrypted content; no backup was written",
                "run `healthwallet doctor` first",
            )
    return _Snapshot(root, dirs, sorted(kept), len(record_ids))


# -- payload stream -------------------------------------------------------------------------------


class _HashingReader:
    """Reads a file for tar, hashing what it reads on the worker."""

    def __init__(self, src: BinaryIO, worker: HashWorker, on_bytes: Progress | None) -> None:
        self._src = src
        self.digest = hashlib.sha256()
        self._consume = consumer(worker.feed(self.digest), on_bytes)

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self._consume(data)
        return data


def _tar_info(name: str, size: int, is_dir: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o700 if is_dir else 0o600
    info.mtime = 0
    return info


def _manifest_signature(identity: Identity, manifest: dict[str, Any]) -> str:
    return keys.b64url(identity.sign(_MANIFEST_SIG + _canonical(manifest)))


def _write_payload(
    snapshot: _Snapshot,
    identity: Identity,
    header: BackupHeader,
    file_key: bytes,
    dst: BinaryIO,
    created: str,
    on_progress: Progress | None,
) -> None:
    encryptor = StreamEncryptor(file_key, dst, header.stream_ad)
    entries = []
    with tarfile.open(
        fileobj=cast(BinaryIO, encryptor),
        mode="w|",
        format=tarfile.PAX_FORMAT,
        bufsize=stream.CHUNK_SIZE,
    ) as tar:
        tar.copybufsize = stream.CHUNK_SIZE  # type: ignore[attr-defined]
        for rel in snapshot.dirs:
            tar.addfile(_tar_info(HOME_PREFIX + rel.as_posix(), 0, is_dir=True))
        read: list[tuple[PurePosixPath, int, _HashingReader]] = []
        with hashing() as worker:
            for rel in snapshot.files:
                with (snapshot.root / rel).open("rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    read.append((rel, size, _HashingReader(handle, worker, on_progress)))
                    tar.addfile(_tar_info(HOME_PREFIX + rel.as_posix(), size), read[-1][2])
        for rel, size, reader in read:
            entries.append(
                {"path": rel.as_posix(), "size": size, "sha256": reader.digest.hexdigest()}
            )
        manifest = {
            "format": FORMAT,
            "did": identity.did,
            "created": created,
            "header_sha256": hashlib.sha256(header.raw).hexdigest(),
            "records": snapshot.records,
            "dirs": [rel.as_posix() for rel in snapshot.dirs],
            "files": entries,
        }
        body = _canonical(
            {"manifest": manifest, "signature": _manifest_signature(identity, manifest)}
        )
        tar.addfile(_tar_info(MANIFEST_MEMBER, len(body)), io.BytesIO(body))
    encryptor.finish()


def create_backup(
    wallet: Wallet,
    out: Path,
    *,
    passphrase: str | None = None,
    overwrite: bool = False,
    random_bytes: RandomBytes = os.urandom,
    now: Clock = utc_now,
    on_progress: Progress | None = None,
) -> BackupResult:
    """Write an encrypted backup of ``wallet`` to ``out`` (atomically: temp file, then rename)."""
    home = wallet.home.resolve()
    out = out.expanduser()
    out_resolved = out.parent.resolve() / out.name  # the writer never follows out itself
    if out_resolved == home or home in out_resolved.parents:
        raise UsageError(
            "the backup file cannot be inside the wallet home", "write it somewhere else"
        )
    if out.is_dir():
        raise UsageError("the backup target is a directory", "give a file name")
    if out.exists() and not overwrite:
        raise UsageError("the backup file already exists; nothing was written", "add --force")
    if not out.parent.is_dir():
        raise NotFoundError("the backup file's directory does not exist", "create it first")
    created = now().isoformat(timespec="seconds")
    file_key = random_bytes(stream.KEY_BYTES)
    raw = _make_header(wallet.identity, file_key, passphrase, created, random_bytes)
    header = BackupHeader(raw, json.loads(raw))
    _remove_stale(home, ".tmp-backup-")
    snapshot_root = home / _temp_name(".tmp-backup-", random_bytes)
    try:
        snapshot = _take_snapshot(home, snapshot_root, wallet.identity.did)
        with OutputDir(out.parent, what="the backup file's directory") as out_dir:
            with out_dir.writer(out.name, replace=overwrite) as handle:
                handle.write(MAGIC + struct.pack(">I", len(raw)) + raw)
                _write_payload(
                    snapshot, wallet.identity, header, file_key, handle, created, on_progress
                )
    finally:
        shutil.rmtree(snapshot_root, ignore_errors=True)
    return BackupResult(out.absolute(), snapshot.records, out.stat().st_size, len(snapshot.files))


# -- restore --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[BinaryIO]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFoundError("the backup file does not exist", "check the path") from None
    except IsADirectoryError:
        raise UsageError("the backup path is a directory", "give the backup file") from None
    except OSError as exc:
        raise UsageError(f"cannot read the backup file ({exc.strerror})") from None
    with handle:
        yield handle


def _safe_rel(name: str) -> PurePosixPath:
    """A member path that stays inside the restore directory, or VerificationError."""
    if "\\" in name or "\0" in name or name.startswith("/") or len(name) > 4096:
        raise _damaged("unsafe path in the archive")
    rel = PurePosixPath(name)
    if not rel.parts or any(part in ("", ".", "..") for part in rel.parts):
        raise _damaged("unsafe path in the archive")
    if len(rel.parts) == 1 and rel.name in _EXCLUDED_TOP:
        raise _damaged("a keystore file in the archive")
    return rel


def _extract(
    src: BinaryIO,
    header: BackupHeader,
    identity: Identity,
    file_key: bytes,
    stage: Path,
    on_progress: Progress | None,
) -> dict[str, Any]:
    """Unpack the payload into ``stage``; check every digest and the manifest's signature."""
    reader = ChunkReader(stream.decrypt_chunks(file_key, src, header.stream_ad))
    digests: dict[str, tuple[int, Any]] = {}
    seen_dirs: set[str] = set()
    signed: dict[str, Any] | None = None
    try:
        with (
            tarfile.open(
                fileobj=cast(BinaryIO, reader), mode="r|", bufsize=stream.CHUNK_SIZE
            ) as tar,
            hashing() as worker,
        ):
            for member in tar:
                if signed is not None:
                    raise _damaged("data after the manifest")
                if member.name == MANIFEST_MEMBER and member.isfile():
                    if member.size > MAX_MANIFEST_BYTES:
                        raise _damaged("manifest too large")
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    signed = jsonutil.loads(extracted.read())
                    continue
                if not member.name.startswith(HOME_PREFIX):
                    raise _damaged("unexpected archive member")
                rel = _safe_rel(member.name[len(HOME_PREFIX) :])
                target = stage / rel
                if member.isdir():
                    ensure_private_dir(target)
                    seen_dirs.add(rel.as_posix())
                    continue
                if not member.isfile():
                    raise _damaged("unexpected archive member type")
                ensure_private_dir(target.parent)
                extracted = tar.extractfile(member)
                assert extracted is not None
                digest = hashlib.sha256()
                size = _write_member(extracted, target, consumer(worker.feed(digest), on_progress))
                digests[rel.as_posix()] = (size, digest)
        # The tar reader may stop before the stream's end: drain it so a cut-off or extended
        # stream is detected by the final chunk's tag.
        while reader.read(_IO_BLOCK):
            pass
    except (tarfile.TarError, EOFError, ValueError, KeyError, TypeError):
        raise _damaged("archive") from None
    if not reader.done:
        raise _damaged("stream did not end")
    written = {rel: (size, digest.hexdigest()) for rel, (size, digest) in digests.items()}
    return _check_manifest(signed, written, seen_dirs, header, identity)


def _write_member(extracted: IO[bytes], target: Path, consume: Callable[[bytes], None]) -> int:
    """Copy one archive member into a new private file (fsynced); returns its size."""
    size = 0
    try:
        with open_private(target) as out:
            while block := extracted.read(stream.CHUNK_SIZE):
                consume(block)
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
    except FileExistsError:
        raise _damaged("a file appears twice") from None
    except OSError as exc:
        raise storage_error(exc, "the restored wallet") from None
    return size


def _check_manifest(
    signed: dict[str, Any] | None,
    written: dict[str, tuple[int, str]],
    seen_dirs: set[str],
    header: BackupHeader,
    identity: Identity,
) -> dict[str, Any]:
    if not isinstance(signed, dict):
        raise _damaged("no manifest")
    try:
        manifest = signed["manifest"]
        signature = keys.b64url_decode(signed["signature"])
        listed = {e["path"]: (int(e["size"]), str(e["sha256"])) for e in manifest["files"]}
        listed_dirs = set(manifest["dirs"])
    except (KeyError, TypeError, ValueError):
        raise _damaged("manifest") from None
    if not keys.verify_signature(
        identity.public_key, _MANIFEST_SIG + _canonical(manifest), signature
    ):
        raise VerificationError(
            "the backup's manifest is not signed by its identity; nothing was changed",
            "the file was changed or forged; use another copy",
        )
    if (
        manifest.get("did") != header.did
        or manifest.get("header_sha256") != hashlib.sha256(header.raw).hexdigest()
    ):
        raise _damaged("manifest does not match the header")
    if listed != written or listed_dirs != seen_dirs:
        raise _damaged("files do not match the manifest")
    return dict(manifest)


def _check_restored(stage: Path, identity: Identity, manifest: dict[str, Any]) -> int:
    """Open the unpacked wallet with the identity; returns its record count."""
    info = read_info(stage)
    if info.did != identity.did:
        raise _damaged("wallet file belongs to another identity")
    if (stage / RETIRED_FILE).exists():
        read_retired(stage / RETIRED_FILE, identity)
    vault = Vault(stage, identity.vault_key)
    try:
        if vault.key_owner() not in (None, identity.did):
            raise _damaged("record keys belong to another identity")
        rows = len(vault)
        records = vault.records()
        if rows != len(records) or rows != int(manifest.get("records", -1)):
            raise _damaged("record index")
        for record in records:
            blob = vault.blob_path(record.id)
            if not blob.is_file() or blob.stat().st_size != stream.ciphertext_size(record.size):
                raise _damaged(f"record {record.id}")
    finally:
        vault.close()
    return rows


def _merge(stage: Path, identity: Identity, wallet: Wallet) -> tuple[int, int]:
    """Adopt the records of the unpacked backup that ``wallet`` lacks; (added, skipped)."""
    source = Vault(stage, identity.vault_key)
    destination = Vault(wallet.home, wallet.identity.vault_key)
    added = skipped = 0
    try:
        for record in source.records():
            if destination.has(record.id):
                skipped += 1
                continue
            content_key, sealed_meta = source.export_entry(record.id)
            if destination.adopt(record.id, content_key, sealed_meta, stage / BLOB_DIR / record.id):
                added += 1
            else:
                skipped += 1
    finally:
        source.close()
        destination.close()
    return added, skipped


def restore_backup(
    src: Path,
    target: Path,
    key: BackupKey,
    *,
    keystore: KeystoreKind | None = None,
    keystore_passphrase: PassphraseSource,
    keyring_backend: KeyringLike | None = None,
    merge: bool = False,
    random_bytes: RandomBytes = os.urandom,
    on_progress: Progress | None = None,
) -> RestoreResult:
    """Rebuild a wallet at ``target`` from a backup (or merge its records into one there)."""
    target = target.expanduser()
    if merge and not wallet_exists(target):
        raise NotFoundError(
            "--merge needs an existing wallet at the target", "drop --merge to restore a new one"
        )
    if not merge:
        _check_free_target(target)
    kind = choose_keystore(keystore, keyring_backend)
    with _open_input(src) as handle:
        header = read_header(handle)
        identity, file_key = _open_header(header, key)
        # Ask for everything up front, so a long unpacking does not end in a question.
        keystore_passphrase = ask_once(keystore_passphrase)
        existing = open_wallet(target, keystore_passphrase, keyring_backend) if merge else None
        if existing is None and kind == "keyring" and (keyring_backend or system_keyring()) is None:
            raise KeystoreError(
                "no OS keyring is available", "start your desktop keyring, or use --keystore file"
            )
        if existing is None and kind == "file":
            keystore_passphrase(True)
        parent = target.absolute().parent
        prefix = f".tmp-restore-{target.name}-"
        _remove_stale(parent, prefix)  # left by versions before the safe writer
        out_dir = OutputDir(parent, create=True, what="the restored wallet's parent directory")
        keyring_entry: Keystore | None = None
        try:
            stage = out_dir.sub_path(out_dir.new_temp_dir())
            manifest = _extract(handle, header, identity, file_key, stage, on_progress)
            records = _check_restored(stage, identity, manifest)
            if existing is not None:
                added, skipped = _merge(stage, identity, existing)
                vault = Vault(existing.home, existing.identity.vault_key)
                try:
                    total = len(vault)
                finally:
                    vault.close()
                return RestoreResult(
                    existing.home.absolute(), existing.did, total, added, skipped, True
                )
            info = read_info(stage)
            # A restored wallet is a new installation: its own keyring entry, never the old one's.
            info = replace(
                info, keystore=kind, wallet_id=str(uuid.UUID(bytes=random_bytes(16), version=4))
            )
            store = Keystore(kind, stage, info.wallet_id, keyring_backend)
            store.store(identity.seed, keystore_passphrase, random_bytes)
            keyring_entry = store if kind == "keyring" else None
            write_info(stage, info)
            _check_free_target(target)
            try:
                out_dir.place(stage.name, target.name)
            except UsageError:  # something appeared meanwhile
                raise UsageError(
                    "the target directory is not empty; nothing was changed",
                    "choose another --home",
                ) from None
            keyring_entry = None
            return RestoreResult(target.absolute(), identity.did, records, records, 0, False)
        finally:
            if keyring_entry is not None:
                with contextlib.suppress(KeystoreError):
                    keyring_entry.delete()
            out_dir.close()  # removes the unpacked copy unless it became the wallet


def _check_free_target(target: Path) -> None:
    """UsageError unless ``target`` is missing or an empty directory."""
    if wallet_exists(target):
        raise UsageError(
            "a wallet already exists here; nothing was changed",
            "restore into another --home, or add --merge to add the backup's missing records",
        )
    if target.exists():
        if not target.is_dir():
            raise UsageError("the target exists and is not a directory", "choose another --home")
        if any(target.iterdir()):
            raise UsageError(
                "the target directory is not empty; nothing was changed", "choose another --home"
            )
