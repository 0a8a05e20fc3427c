"""Adding a FHIR Bundle or NDJSON file as one record per resource or per Patient compartment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import dedupe
from .chunkio import ProgressCallback
from .fhir.split import open_split
from .filetypes import check_input_file
from .vault import Record, Vault


@dataclass(frozen=True)
class AddedPiece:
    """A record made from one piece: which part of the file it holds."""

    record: Record
    part: str
    duplicate_of: str | None  # set only under --allow-duplicate


@dataclass
class SplitResult:
    """What one split added, and the pieces it left out because they were already records."""

    added: list[AddedPiece] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (part, existing record id)


def add_split(
    vault: Vault,
    vault_key: bytes,
    path: Path,
    mode: str,
    *,
    label: str | None = None,
    tags: list[str] | None = None,
    allow_duplicate: bool = False,
    what: str = "the file",
    on_progress: ProgressCallback | None = None,
) -> SplitResult:
    """Add ``path`` split by ``mode`` ("resource" or "patient"). The whole file already being a
    record, or every piece already being one, is a DuplicateError; a piece already in the
    wallet is skipped (and listed) while the others are added, unless duplicates are allowed."""
    check_input_file(path)
    with path.open("rb") as handle:
        tag = dedupe.digest_stream(dedupe.dedupe_key(vault_key), handle)
    whole = dedupe.find_duplicate(vault, vault_key, tag)
    if whole is not None and not allow_duplicate:
        raise dedupe.DuplicateError(
            whole,
            what,
            f"it was added whole; remove that record first (`healthwallet record rm {whole}`), "
            "or pass --allow-duplicate to keep both",
        )
    base = label if label is not None else path.name
    result = SplitResult()
    with open_split(path, mode) as pieces:
        for piece in pieces:
            gate = dedupe.Gate(vault_key, allow=allow_duplicate)
            try:
                record = vault.add(
                    piece.content, None, piece.label(base), tags, on_progress, gate=gate
                )
            except dedupe.DuplicateError as exc:
                result.skipped.append((piece.part, exc.existing_id))
                continue
            result.added.append(AddedPiece(record, piece.part, gate.duplicate_of))
    if not result.added:
        first = result.skipped[0][1]
        raise dedupe.DuplicateError(
            first,
            message=f"every piece of {what} is already in the wallet "
            f"({len(result.skipped)} record(s), the first is {first})",
            hint="nothing was added; add them again anyway with --allow-duplicate",
        )
    return result
