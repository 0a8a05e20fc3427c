"""Storing what a link held: FHIR Bundles as FHIR records, health cards once verified.

Every file is checked before any is stored, so a link with one bad card adds nothing. The
plaintext passes through a private (0700) temporary directory in the wallet home, removed
as soon as the vault holds the record (the safe writer sweeps it after a crash).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import jsonutil
from ..errors import BadInputError, NotFoundError
from ..httpfetch import Fetcher
from ..safewrite import OutputDir
from ..vault import Vault
from . import healthcard
from .content import FHIR_JSON
from .resolve import ResolvedFile

SHC: Final = "application/smart-health-card"
API_ACCESS: Final = "application/smart-api-access"
MAX_DIRECTORY_BYTES: Final = 16 << 20
IMPORT_TAG: Final = "shl"


def read_directory(path: Path) -> healthcard.TrustDirectory:
    """The trust directory file the user named."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            "the trust directory file does not exist", "check --trust-directory"
        ) from None
    except OSError as exc:
        raise BadInputError(f"cannot read the trust directory ({exc.strerror})") from None
    document = jsonutil.load_object(raw, "the trust directory", max_bytes=MAX_DIRECTORY_BYTES)
    return healthcard.TrustDirectory(document)


@dataclass(frozen=True)
class _Pending:
    kind: str
    bundle: bytes
    label: str
    tags: list[str]
    issuer: str | None = None
    listed: bool | None = None


def _fhir(content: bytes) -> bytes:
    resource = jsonutil.load_object(content, "a FHIR file of the link", max_bytes=len(content) + 1)
    if not isinstance(resource.get("resourceType"), str):
        raise BadInputError("a FHIR file of the link has no resourceType")
    return content


def _plan(
    files: Sequence[ResolvedFile],
    directory: healthcard.TrustDirectory | None,
    fetcher: Fetcher,
    label: str | None,
    tags: list[str],
) -> tuple[list[_Pending], list[dict[str, Any]], list[str]]:
    pending: list[_Pending] = []
    skipped: list[dict[str, Any]] = []
    notes: list[str] = []
    base_label = label or "SMART Health Link"
    for index, item in enumerate(files):
        if item.content_type == FHIR_JSON:
            pending.append(_Pending("fhir", _fhir(item.content), base_label, [*tags, IMPORT_TAG]))
        elif item.content_type == SHC:
            for jws in healthcard.cards_in(item.content):
                card = healthcard.verify_card(jws, directory, fetcher)
                bundle = json.dumps(card.bundle).encode("utf-8")
                name = f"SMART Health Card ({card.issuer_name})"
                card_tags = [*tags, IMPORT_TAG, "smart-health-card"]
                pending.append(
                    _Pending("smart-health-card", bundle, name, card_tags, card.issuer, card.listed)
                )
                if not card.listed:
                    notes.append(
                        f"the card from {card.issuer} is signed by its issuer's published "
                        "key; no trust directory vouches for that issuer"
                    )
        elif item.content_type == API_ACCESS:
            jsonutil.load_object(item.content, "a SMART API access file")
            skipped.append(
                {
                    "file": index + 1,
                    "content_type": API_ACCESS,
                    "reason": "access to the sender's FHIR server; not a record",
                }
            )
        else:
            skipped.append(
                {
                    "file": index + 1,
                    "content_type": item.content_type[:100],
                    "reason": "a content type SHL does not define",
                }
            )
    return pending, skipped, notes


def import_files(
    files: Sequence[ResolvedFile],
    vault: Vault,
    spool: OutputDir,
    *,
    directory: healthcard.TrustDirectory | None,
    fetcher: Fetcher,
    label: str | None,
    tags: list[str],
) -> dict[str, Any]:
    """Verify every file, then store each as a record; the summary `import` prints."""
    pending, skipped, notes = _plan(files, directory, fetcher, label, tags)
    stored: list[dict[str, Any]] = []
    folder = spool.new_temp_dir()
    try:
        for number, item in enumerate(pending, 1):
            path = spool.path / folder / f"link-file-{number}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(item.bundle)
            try:
                record = vault.add(path, "fhir", label=item.label, tags=item.tags)
            finally:
                path.unlink(missing_ok=True)
            row: dict[str, Any] = {"id": record.id, "kind": item.kind}
            if item.issuer is not None:
                row.update(issuer=item.issuer, issuer_listed=item.listed)
            stored.append(row)
    finally:
        spool.discard(folder)
    return {"records": stored, "skipped": skipped, "notes": notes}
