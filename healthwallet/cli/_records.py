"""`healthwallet record …`: add, list, show, rm."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import jsonutil
from ..errors import BadInputError, UsageError
from ..filenames import safe_file_name
from ..filetypes import RECORD_TYPES, check_input_file
from ..safewrite import JOURNAL_DIR, atomic_writer
from ._common import (
    STATE,
    JsonOption,
    emit,
    human_size,
    notes_console,
    stderr_console,
    stdout_console,
    unlock,
)
from ._progress import progress

if TYPE_CHECKING:
    from rich.console import Console

    from ..vault import Record, Vault

record_app = typer.Typer(help="Add, list, show and remove encrypted records.", no_args_is_help=True)


def _open_vault() -> Vault:
    wallet = unlock()
    from ..vault import Vault

    return Vault(wallet.home, wallet.identity.vault_key)


def _check_type(value: str | None) -> str | None:
    if value is not None and value not in RECORD_TYPES:
        raise UsageError(f"unknown record type {value!r}", "use one of: " + ", ".join(RECORD_TYPES))
    return value


@record_app.command("add")
def cmd_add(
    files: Annotated[list[Path], typer.Argument(help="Files to import.")],
    record_type: Annotated[
        str | None, typer.Option("--type", help="fhir, pdf, image or other (default: detected).")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="A label (default: the file name).")
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="resource|patient",
            help="Add a FHIR Bundle or NDJSON file as one record per resource, or per patient.",
        ),
    ] = None,
    allow_duplicate: Annotated[
        bool,
        typer.Option("--allow-duplicate", help="Add content that is already in the wallet anyway."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Encrypt files into the vault (content already in it is refused).

    Example: healthwallet record add labs.json scan.pdf --tag 2026
    Example: healthwallet record add export.ndjson --split patient
    """
    from .. import dedupe
    from ..recordedit import check_tag
    from ..recordsplit import add_split
    from ..vault import Vault

    _check_type(record_type)
    if split is not None and split not in ("resource", "patient"):
        raise UsageError(f"unknown split {split!r}", "use --split resource or --split patient")
    if split is not None and record_type not in (None, "fhir"):
        raise UsageError("--split works on FHIR files only", "drop --type, or use --type fhir")
    tags = [check_tag(tag) for tag in tags or []]
    for path in files:
        check_input_file(path)
    wallet = unlock()
    vault = Vault(wallet.home, wallet.identity.vault_key)
    unindexed = dedupe.catch_up(vault, wallet.identity.vault_key)
    if unindexed:
        stderr_console().print(
            f"warning: {unindexed} older record(s) are not checked for duplicates yet; "
            "`healthwallet doctor` indexes them"
        )
    total = sum(path.stat().st_size for path in files)
    added: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    results: list[str] = []  # printed once the bar is gone, so each starts its own line
    notes: list[str] = []

    def report(record: Record, duplicate_of: str | None, part: str | None = None) -> None:
        row = {
            "id": record.id,
            "type": record.type,
            "label": record.label,
            "commitment": record.commitment,
            "media_type": record.media_type,
            "size": record.size,
            "duplicate_of": duplicate_of,
        }
        added.append(row if part is None else dict(row, part=part))
        line = f"added {record.id}  {record.type:<5}  {human_size(record.size)}"
        results.append(line + (f"  {part}" if part else ""))
        if duplicate_of is not None:
            notes.append(
                f"note: record {record.id} holds the same content as record {duplicate_of}"
            )

    def flush() -> None:
        if not (as_json or STATE.quiet):
            out = stdout_console()
            for line in results:
                out.print(line, markup=False)
        for line in notes:
            notes_console().print(line, markup=False)

    with progress("encrypting", total, as_json=as_json) as advance:
        for number, path in enumerate(files, 1):
            what = "the file" if len(files) == 1 else f"input {number} of {len(files)}"
            gate = dedupe.Gate(wallet.identity.vault_key, allow=allow_duplicate, what=what)
            try:
                if split is not None:
                    result = add_split(
                        vault,
                        wallet.identity.vault_key,
                        path,
                        split,
                        label=label,
                        tags=tags,
                        allow_duplicate=allow_duplicate,
                        what=what,
                        on_progress=advance,
                    )
                    for piece in result.added:
                        report(piece.record, piece.duplicate_of, piece.part)
                    for part, existing in result.skipped:
                        skipped.append({"input": number, "part": part, "existing": existing})
                        notes.append(
                            f"note: skipped {part} of {what}: already in the wallet as record"
                            f" {existing}"
                        )
                    continue
                record = vault.add(
                    path, record_type, label, tags or [], on_progress=advance, gate=gate
                )
            except dedupe.DuplicateError as exc:
                vault.close()
                if added:
                    exc.hint += f" ({len(added)} record(s) were added before it)"
                flush()
                raise
            report(record, gate.duplicate_of)
    flush()
    vault.close()
    if as_json:
        emit(True, {"records": added, "skipped": skipped}, lambda _: None)


@record_app.command("list")
def cmd_list(
    record_type: Annotated[
        str | None, typer.Option("--type", help="Only records of this type.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only records with this tag.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List records (newest last).

    Example: healthwallet record list --tag 2026
    """
    _check_type(record_type)
    vault = _open_vault()
    records = vault.records(record_type, tag)
    vault_ids = records if record_type is None and tag is None else vault.records()
    vault.close()

    def human(out: Console) -> None:
        if not records:
            out.print("No records.")
            return
        shown = _short_ids([r.id for r in vault_ids])
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        table.add_column("id", no_wrap=True)
        table.add_column("what", overflow="fold")
        table.add_column("title / label", overflow="ellipsis", max_width=32)
        table.add_column("date", no_wrap=True)
        table.add_column("tags", overflow="fold")
        table.add_column("size", justify="right", no_wrap=True)
        for r in records:
            table.add_row(
                shown[r.id],
                _what(r),
                r.title or r.label,
                r.clinical_date,
                ", ".join(r.tags),
                human_size(r.size),
            )
        out.print(table)

    emit(as_json, {"records": [r.summary() for r in records]}, human, data=True)


_TEXT_TYPES = ("application/fhir+json", "application/fhir+ndjson", "application/json")
_SHORT_ID = 8
_SUMMARY_LIMIT = 64 * 1024 * 1024  # a summary parses the record in memory


def _short_ids(ids: list[str]) -> dict[str, str]:
    """Each id's shortest prefix of at least 8 characters that no other id shares (copyable:
    every command takes it)."""
    shown: dict[str, str] = {}
    ordered = sorted(ids)
    for i, ident in enumerate(ordered):
        length = _SHORT_ID
        for other in (ordered[i - 1] if i else "", ordered[i + 1] if i + 1 < len(ordered) else ""):
            while length < len(ident) and other.startswith(ident[:length]):
                length += 1
        shown[ident] = ident[:length]
    return shown


def _what(record: Record) -> str:
    """ "Observation", "Bundle: Observation×2, Patient" (or "NDJSON: …"), or the record type."""
    counts = record.resource_counts
    if not counts:
        return record.type
    parts = [kind + (f"×{n}" if n > 1 else "") for kind, n in sorted(counts.items())]
    if sum(counts.values()) == 1:
        return parts[0]
    container = "NDJSON" if record.media_type == "application/fhir+ndjson" else "Bundle"
    return f"{container}: " + ", ".join(parts)


@record_app.command("show")
def cmd_show(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    out_path: Annotated[
        str | None, typer.Option("--out", "-o", help="Write to this file, or - for stdout.")
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="Show a FHIR record as readable text, one line each."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a record's exact bytes (verified first) to a file or stdout, or a readable summary.

    Example: healthwallet record show 3f2a --out labs.json
    """
    vault = _open_vault()
    record = vault.get(record_id)
    if summary:
        _show_summary(vault, record, as_json)
        return
    if out_path is None or out_path == "-":
        if as_json:
            raise UsageError(
                "--json needs --out FILE (stdout would mix record bytes and JSON)", "add --out FILE"
            )
        if out_path is None and sys.stdout.isatty() and record.media_type not in _TEXT_TYPES:
            raise UsageError(
                "refusing to write binary content to a terminal",
                "use --out FILE, or --out - to force it",
            )
        sys.stdout.flush()
        with (
            progress("checking, then writing", 2 * record.size) as advance,
            os.fdopen(os.dup(sys.stdout.fileno()), "wb") as raw,
        ):
            vault.read_into(record.id, raw, advance)
        vault.close()
        return
    target = Path(out_path)
    if target.is_dir():
        target = target / safe_file_name(record.name, f"record-{record.id}")
    with (
        progress("decrypting", record.size, as_json=as_json) as advance,
        atomic_writer(target, "the output file", journal=vault.home / JOURNAL_DIR) as handle,
    ):
        vault.export_into(record.id, handle, advance)  # named only once it checked out
    vault.close()
    emit(
        as_json,
        {"id": record.id, "path": str(target), "size": record.size},
        lambda out: out.print(
            f"wrote {human_size(record.size)} to {target}",
        ),
    )


def _show_summary(vault: Vault, record: Record, as_json: bool) -> None:
    """Decrypt a FHIR record (verified first) and print one readable line per resource."""
    from ..fhir import describe, ndjson

    if record.type != "fhir":
        vault.close()
        raise UsageError(f"record {record.id} is not FHIR ({record.type})", "use --out FILE")
    if record.size > _SUMMARY_LIMIT:
        vault.close()
        raise UsageError("the record is too large to summarise", "use --out FILE")
    buffer = io.BytesIO()
    vault.export_into(record.id, buffer)
    vault.close()
    buffer.seek(0)
    if record.media_type == ndjson.MEDIA_TYPE:
        try:
            entries = [{"resource": line.resource} for line in ndjson.read_lines(buffer)]
        except BadInputError:
            raise BadInputError(
                f"record {record.id} is not readable NDJSON", "use --out FILE"
            ) from None
        lines = describe({"resourceType": "Bundle", "entry": entries})
        lines[0] = f"NDJSON, {len(entries)} resources"
    else:
        try:
            resource = jsonutil.loads(buffer.getvalue())
        except (ValueError, UnicodeDecodeError):
            raise BadInputError(
                f"record {record.id} is not readable JSON", "use --out FILE"
            ) from None
        lines = describe(resource) if isinstance(resource, dict) else []

    def human(out: Console) -> None:
        for text in lines:
            out.print(text)

    emit(as_json, {"id": record.id, "lines": lines}, human, data=True)


@record_app.command("rm")
def cmd_rm(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    as_json: JsonOption = False,
) -> None:
    """Destroy a record: its key, its metadata and its encrypted content.

    Example: healthwallet record rm 3f2a
    """
    from ..issued import active_grants_holding
    from ._common import audit_log, issued_grants

    wallet = unlock()
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    try:
        full = vault.resolve_id(record_id)
        holding = active_grants_holding(
            full, audit_log(wallet).read(), issued_grants(wallet, with_audit=False).list_grants()
        )
        for grant in holding:
            stderr_console().print(
                f"warning: record {full} is in grant {grant['grant_id']} to {grant['recipient']}"
                f" (active until {grant['expires']}); removing it here does not take back the"
                f" doctor's copy: `healthwallet revoke {grant['grant_id']}` does"
            )
        removed = vault.remove(full)
    finally:
        vault.close()
    payload = {"id": removed, "removed": True, "in_grants": [g["grant_id"] for g in holding]}
    emit(as_json, payload, lambda out: out.print(f"removed {removed}"))


def _edited(record: Record, as_json: bool, what: str) -> None:
    emit(
        as_json,
        {"record": record.summary()},
        lambda out: out.print(
            f"{what} {record.id}: "
            f"{record.label} [{record.type}] tags: {', '.join(record.tags) or '(none)'}"
        ),
    )


def _retag(
    record_id: str, add: Sequence[str], remove: Sequence[str], as_json: bool, what: str
) -> None:
    from ..recordedit import retag

    vault = _open_vault()
    try:
        record = retag(vault, record_id, add=add, remove=remove)
    finally:
        vault.close()
    _edited(record, as_json, what)


@record_app.command("tag")
def cmd_tag(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    tags: Annotated[list[str], typer.Argument(metavar="TAG", help="Tags to add.")],
    as_json: JsonOption = False,
) -> None:
    """Add tags to a record (tags select records for `grant --tag` and `share --tag`).

    Example: healthwallet record tag 3f2a cardiology 2026
    """
    _retag(record_id, tags, (), as_json, "tagged")


@record_app.command("untag")
def cmd_untag(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    tags: Annotated[list[str], typer.Argument(metavar="TAG", help="Tags to remove.")],
    as_json: JsonOption = False,
) -> None:
    """Remove tags from a record (a tag it does not have is ignored).

    Example: healthwallet record untag 3f2a 2026
    """
    _retag(record_id, (), tags, as_json, "untagged")


@record_app.command("edit")
def cmd_edit(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    label: Annotated[str | None, typer.Option("--label", help="A new label.")] = None,
    record_type: Annotated[
        str | None,
        typer.Option("--type", help="A new type: fhir, pdf, image or other (checked)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a record's label or type without importing it again.

    Example: healthwallet record edit 3f2a --label "Blood test, March" --type fhir
    """
    from ..recordedit import edit_record

    if label is None and record_type is None:
        raise UsageError("say what to change", "give --label TEXT and/or --type TYPE")
    vault = _open_vault()
    try:
        record = edit_record(vault, record_id, label=label, record_type=record_type)
    finally:
        vault.close()
    _edited(record, as_json, "edited")


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.add_typer(record_app, name="record")
