"""One JSON document in the wallet home, sealed under the metadata key: unreadable at rest."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import StorageError, VerificationError
from ..fsutil import ensure_private_dir, exclusive_lock
from ..keys import Identity
from ..metaseal import MetaSeal
from ..safewrite import atomic_write_bytes

MAGIC = b"healthwallet-sealed/v1\n"
MAX_BYTES = 8 * 1024 * 1024


class SealedDocument:
    """``home/name``: a JSON object sealed with associated data naming the file (metaseal.py)."""

    def __init__(
        self, home: Path, name: str, identity: Identity, retired: Sequence[Identity] = ()
    ) -> None:
        self.home = home
        self.path = home / name
        self._lock = home / f".{name}.lock"
        self._ad = b"healthwallet-sealed/" + name.encode() + b"\0"
        self._seal = MetaSeal(identity, retired)
        self._what = name

    def read(self) -> dict[str, Any]:
        """The document ({} when the file does not exist yet)."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"cannot read {self._what} ({exc.strerror})") from None
        if not raw.startswith(MAGIC) or len(raw) > MAX_BYTES:
            raise VerificationError(
                f"{self._what} in the wallet home is not a sealed document",
                "restore the wallet home from a backup (`healthwallet restore`)",
            )
        value = self._seal.open(raw[len(MAGIC) :], self._ad, self._what)
        if not isinstance(value, dict):
            raise VerificationError(f"{self._what} in the wallet home is damaged")
        return value

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Read the document under the file's lock, yield it for changes, then write it back."""
        ensure_private_dir(self.home, symlinks="owned")
        with exclusive_lock(self._lock):
            document = self.read()
            yield document
            sealed = self._seal.seal(document, self._ad)
            atomic_write_bytes(self.path, MAGIC + sealed, self._what)

    def exists(self) -> bool:
        """True once something was written."""
        return os.path.exists(self.path)
