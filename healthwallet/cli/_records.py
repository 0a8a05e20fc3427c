"""`healthwallet record …`: add, list, show, rm."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from ..errors import UsageError
from ..filenames import safe_file_name
from ..safewrite import JOURNAL_DIR, atomic_writer
from ..vault import RECORD_TYPES, Vault, check_input_file
from ._common import JsonOption, emit, human_size, stderr_console, stdout_console, unlock

record_app = typer.Typer(help="Add, list, show and remove encrypted records.", no_args_is_help=True)

_PROGRESS_MIN_BYTES = 8 * 1024 * 1024
_PROGRESS_MIN_FILES = 5


def _open_vault() -> Vault:
    wallet = unlock()
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
    as_json: JsonOption = False,
) -> None:
    """Encrypt files into the vault."""
    _check_type(record_type)
    for path in files:
        check_input_file(path)
    vault = _open_vault()
    total = sum(path.stat().st_size for path in files)
    show_progress = sys.stderr.isatty() and (
        len(files) >= _PROGRESS_MIN_FILES or total >= _PROGRESS_MIN_BYTES
    )
    added = []
    out = None if as_json else stdout_console()
    progress = Progress(
        TextColumn("encrypting"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=stderr_console(),
        disable=not show_progress,
        transient=True,
    )
    with progress:
        task = progress.add_task("add", total=total)
        for path in files:
            record = vault.add(
                path,
                record_type,
                label,
                tags or [],
                on_progress=lambda n: progress.advance(task, n),
            )
            added.append(record)
            if out is not None:
                out.print(f"added {record.id}  {record.type:<5}  {human_size(record.size)}")
    vault.close()
    if as_json:
        emit(
            True,
            {
                "records": [
                    {
                        "id": r.id,
                        "type": r.type,
                        "label": r.label,
                        "commitment": r.commitment,
                        "media_type": r.media_type,
                        "size": r.size,
                    }
                    for r in added
                ]
            },
            lambda _: None,
        )


@record_app.command("list")
def cmd_list(
    record_type: Annotated[
        str | None, typer.Option("--type", help="Only records of this type.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only records with this tag.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List records (newest last)."""
    _check_type(record_type)
    vault = _open_vault()
    records = vault.records(record_type, tag)
    vault.close()

    def human(out: Console) -> None:
        if not records:
            out.print("No records.")
            return
        table = Table("id", "type", "label", "tags", "size", "added")
        for r in records:
            table.add_row(r.id, r.type, r.label, ", ".join(r.tags), human_size(r.size), r.added)
        out.print(table)

    emit(as_json, {"records": [r.summary() for r in records]}, human)


_TEXT_TYPES = ("application/fhir+json", "application/json")


@record_app.command("show")
def cmd_show(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    out_path: Annotated[
        str | None, typer.Option("--out", "-o", help="Write to this file, or - for stdout.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a record's exact bytes (verified first) to a file or stdout."""
    vault = _open_vault()
    record = vault.get(record_id)
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
        vault.verify(record.id)
        sys.stdout.flush()
        with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as raw:
            vault.read_into(record.id, raw)
        vault.close()
        return
    target = Path(out_path)
    if target.is_dir():
        target = target / safe_file_name(record.name, f"record-{record.id}")
    with atomic_writer(target, "the output file", journal=vault.home / JOURNAL_DIR) as handle:
        vault.read_into(record.id, handle)
    vault.close()
    emit(
        as_json,
        {"id": record.id, "path": str(target), "size": record.size},
        lambda out: out.print(
            f"wrote {human_size(record.size)} to {target}",
        ),
    )


@record_app.command("rm")
def cmd_rm(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    as_json: JsonOption = False,
) -> None:
    """Destroy a record: its key, its metadata and its encrypted content."""
    vault = _open_vault()
    removed = vault.remove(record_id)
    vault.close()
    emit(as_json, {"id": removed, "removed": True}, lambda out: out.print(f"removed {removed}"))


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.add_typer(record_app, name="record")
