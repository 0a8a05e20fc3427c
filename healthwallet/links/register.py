"""The wallet's register of links it created (``links.sqlite`` in the wallet home).

A row is a random local id (hex, typed with prefixes like record ids) and one value sealed
under the wallet's metadata key (metaseal.py): the relay, the manifest URL, the link's key,
its rules, the records it carries and who created it. A copy of the wallet home reveals how
many links exist and nothing else; in particular the key, which opens the files on the relay,
is never readable at rest.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ..errors import NotFoundError, StorageError
from ..fsutil import ensure_private_dir, storage_error
from ..idprefix import resolve_id
from ..keys import Identity
from ..metaseal import MetaSeal

REGISTER_FILE: Final = "links.sqlite"
_AD_ROW: Final = b"hw-link-row/v1\0"
RandomBytes = Callable[[int], bytes]


class LinkRegister:
    """Links this wallet created, sealed at rest."""

    def __init__(
        self,
        home: Path,
        identity: Identity,
        retired: Sequence[Identity] = (),
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.path = home / REGISTER_FILE
        self.home = home
        self._seal = MetaSeal(identity, retired)
        self._random = random_bytes

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        ensure_private_dir(self.home, symlinks="owned")
        if not self.path.exists():
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            except OSError as exc:
                raise storage_error(exc, "the link register") from None
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error:
            raise StorageError("cannot open the link register") from None
        try:
            db.execute("PRAGMA secure_delete=ON")
            db.execute(
                "CREATE TABLE IF NOT EXISTS links ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " id TEXT NOT NULL UNIQUE, sealed BLOB NOT NULL)"
            )
            yield db
        except sqlite3.Error as exc:
            raise StorageError(f"the link register failed ({type(exc).__name__})") from None
        finally:
            db.close()

    def _sealed(self, local_id: str, entry: dict[str, Any]) -> bytes:
        return self._seal.seal(entry, _AD_ROW + local_id.encode())

    def add(self, entry: dict[str, Any]) -> str:
        """Store a new link's entry; its local id."""
        local_id = self._random(8).hex()
        with self._db() as db:
            db.execute(
                "INSERT INTO links (id, sealed) VALUES (?, ?)",
                (local_id, self._sealed(local_id, dict(entry, local_id=local_id))),
            )
        return local_id

    def entries(self) -> list[dict[str, Any]]:
        """Every link's entry, oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT id, sealed FROM links ORDER BY seq").fetchall()
        out = []
        for local_id, sealed in rows:
            entry = self._seal.open(sealed, _AD_ROW + local_id.encode(), "a link register row")
            out.append(dict(entry, local_id=local_id))
        return out

    def get(self, typed: str) -> dict[str, Any]:
        """The entry a full local id or a unique prefix names."""
        with self._db() as db:
            ids = [row[0] for row in db.execute("SELECT id FROM links")]
        local_id = resolve_id(typed, ids, kind="link", list_command="link list")
        with self._db() as db:
            row = db.execute("SELECT sealed FROM links WHERE id = ?", (local_id,)).fetchone()
        if row is None:
            raise NotFoundError("no such link", "list them with `healthwallet link list`")
        entry = self._seal.open(row[0], _AD_ROW + local_id.encode(), "a link register row")
        return dict(entry, local_id=local_id)

    def change(self, local_id: str, **changes: Any) -> dict[str, Any]:
        """Update an entry's members; the new entry."""
        entry = dict(self.get(local_id), **changes)
        with self._db() as db:
            db.execute(
                "UPDATE links SET sealed = ? WHERE id = ?",
                (self._sealed(local_id, entry), local_id),
            )
        return entry
