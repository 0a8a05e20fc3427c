"""SMART Health Links: `link create|list|revoke|log|update` (patients) and `import` (anyone)."""

from __future__ import annotations

import getpass
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import jsonutil
from ..errors import AccessDeniedError, NotFoundError, UsageError
from ..timeutil import parse_expiry, utc_now
from ._common import (
    JsonOption,
    audit_log,
    emit,
    fetcher,
    notes_console,
    print_lines,
    print_table,
    unlock,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..links.client import RelayClient
    from ..links.register import LinkRegister
    from ..vault import Vault
    from ..wallet import Wallet

link_app = typer.Typer(
    help="Share records as SMART Health Links through a relay.", no_args_is_help=True
)

MAX_PASSCODE_CHARS = 256

RecordIds = Annotated[list[str] | None, typer.Option("--record", help="Record id; repeatable.")]
RecordType = Annotated[str | None, typer.Option("--type", help="Every record of this type.")]
Tag = Annotated[str | None, typer.Option("--tag", help="Every record with this tag.")]
PasscodeFile = Annotated[
    Path | None,
    typer.Option("--passcode-file", help="Read the passcode from this file's first line."),
]
LinkId = Annotated[str, typer.Argument(metavar="ID", help="The link's id (or a unique prefix).")]


def _now() -> int:
    return int(time.time())


def _read_passcode(path: Path | None, prompt: bool, *, confirm: bool) -> str | None:
    if path is not None and prompt:
        raise UsageError("give either --passcode-file or --passcode-prompt", "pick one")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeError):
            raise UsageError("cannot read the passcode file", "check --passcode-file") from None
        value = text.splitlines()[0] if text else ""
    elif prompt:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask for the passcode", "use --passcode-file")
        value = getpass.getpass("Link passcode: ")
        if confirm and getpass.getpass("Repeat passcode: ") != value:
            raise UsageError("the passcodes did not match", "run the command again")
    else:
        return None
    if not value or len(value) > MAX_PASSCODE_CHARS:
        raise UsageError(
            f"the passcode must be 1 to {MAX_PASSCODE_CHARS} characters", "choose another"
        )
    return value


def _register(wallet: Wallet) -> LinkRegister:
    from ..links.register import LinkRegister
    from ..rotation import retired_identities

    return LinkRegister(wallet.home, wallet.identity, retired_identities(wallet))


def _client(wallet: Wallet, relay: str, creator: str | None = None) -> RelayClient:
    """A relay client signing as the identity that created the link (also after rotation)."""
    from ..links.client import RelayClient
    from ..rotation import retired_identities

    identity = wallet.identity
    if creator is not None and creator != identity.did:
        found = [i for i in retired_identities(wallet) if i.did == creator]
        if not found:
            raise AccessDeniedError("this link was created by a key this wallet no longer has")
        identity = found[0]
    return RelayClient(relay, identity, fetcher(), _now)


def _shared(vault: Vault, records: list[Any]) -> list[Any]:
    from ..links.content import SharedRecord

    shared = []
    for record in records:
        with vault.open_plaintext(record.id) as handle:
            shared.append(SharedRecord(record.type, record.media_type, record.label, handle.read()))
    return shared


def _write_qr(path: Path, text: str) -> str:
    from ..links import qr

    kind = qr.image_kind(path)
    if path.is_dir():
        raise UsageError("--qr is a directory", "give a file name ending in .png or .svg")
    from ..safewrite import atomic_writer

    with atomic_writer(path, "the QR code") as handle:
        handle.write(qr.image_bytes(text, kind))
    return str(path)


@link_app.command("create")
def cmd_create(
    relay: Annotated[str, typer.Option("--relay", help="The relay's base URL (https).")],
    record_ids: RecordIds = None,
    record_type: RecordType = None,
    tag: Tag = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Duration (24h, 7d), a date or an ISO 8601 date-time."),
    ] = None,
    passcode_file: PasscodeFile = None,
    passcode_prompt: Annotated[
        bool, typer.Option("--passcode-prompt", help="Ask for the passcode on the terminal.")
    ] = False,
    label: Annotated[
        str | None, typer.Option("--label", help="Shown by viewers (at most 80 characters).")
    ] = None,
    long_term: Annotated[
        bool, typer.Option("--long-term", help="Content may change later (`link update`).")
    ] = False,
    single_file: Annotated[
        bool, typer.Option("--single-file", help="One file, fetched without a manifest (U).")
    ] = False,
    viewer: Annotated[
        str | None, typer.Option("--viewer", help="Put the link behind this viewer URL.")
    ] = None,
    qr_file: Annotated[
        Path | None, typer.Option("--qr", help="Write the QR code to FILE.png or FILE.svg.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Share records as a SMART Health Link: encrypted files on a relay, the key in the link.

    Example: healthwallet link create --tag knee --relay https://relay.example/ --expires 7d
    --passcode-prompt --qr knee.png
    """
    from ..links import payload as shl
    from ..links.client import relay_base
    from ..links.issue import create_link

    flag = shl.make_flag(
        passcode=passcode_file is not None or passcode_prompt,
        long_term=long_term,
        single_file=single_file,
    )
    label = shl.check_label(label)
    base = relay_base(relay)
    prefix = shl.viewer_prefix(viewer) if viewer else None
    if qr_file is not None:
        from ..links import qr

        qr.image_kind(qr_file)
        if qr_file.is_dir() or not qr_file.parent.is_dir():
            # Checked before the upload: a link should not exist whose QR code was not written.
            raise UsageError("--qr names no file in an existing directory", "check the path")
    passcode = _read_passcode(passcode_file, passcode_prompt, confirm=True)
    wallet = unlock()
    from ..vault import Vault
    from ..wallet import read_config
    from ._grants import _select

    config = read_config(wallet.home)
    now = utc_now()
    exp = None
    if expires is not None:
        exp = int(parse_expiry(expires, now, int(config["max-expiry-days"])).timestamp())
    vault = Vault(wallet.home, wallet.identity.vault_key)
    records = _select(vault, record_ids or [], record_type, tag)
    shared = _shared(vault, records)
    vault.close()
    made = create_link(
        _client(wallet, base),
        _register(wallet),
        shared,
        [r.id for r in records],
        flag=flag,
        exp=exp,
        passcode=passcode,
        label=label,
        created=now.isoformat(timespec="seconds"),
        random_bytes=os.urandom,
    )
    audit_log(wallet).append(
        "link.created",
        {
            "link": made.local_id,
            "relay": base,
            "flag": flag,
            "exp": exp,
            "records": [r.id for r in records],
        },
    )
    text = made.link.uri(prefix)
    qr_path = _write_qr(qr_file, text) if qr_file is not None else None
    payload = {
        "id": made.local_id,
        "link": text,
        "flag": flag,
        "exp": exp,
        "records": len(records),
        "relay": base,
        "qr": qr_path,
    }

    def human(console: Console) -> None:
        from ..links import qr

        console.print(f"Created link {made.local_id} for {len(records)} record(s) ({flag or '-'})")
        if qr_path is None:
            print_lines(console, qr.terminal_text(text))
        else:
            console.print(f"  QR code   {qr_path}")
        console.print(text)
        console.print(f"Revoke any time with: healthwallet link revoke {made.local_id}")

    emit(as_json, payload, human, data=True)


@link_app.command("list")
def cmd_list(as_json: JsonOption = False) -> None:
    """List the links this wallet created (never their keys).

    Example: healthwallet link list --json
    """
    from ..links.issue import summary

    wallet = unlock()
    rows = [summary(e) for e in _register(wallet).entries()]

    def human(console: Console) -> None:
        cells = [
            [
                row["id"],
                row["flag"] or "-",
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(row["exp"])) if row["exp"] else "-",
                str(row["records"]),
                row["label"] or "",
                "revoked" if row["revoked"] else "active",
            ]
            for row in rows
        ]
        print_table(console, ("id", "flag", "expires", "records", "label", "state"), cells)

    emit(as_json, {"links": rows}, human, data=True)


@link_app.command("revoke")
def cmd_revoke(link: LinkId, as_json: JsonOption = False) -> None:
    """Revoke a link at once: the relay answers 404 to the next request.

    Example: healthwallet link revoke 3f2a
    """
    wallet = unlock()
    register = _register(wallet)
    entry = register.get(link)
    try:
        _client(wallet, entry["relay"], entry["creator"]).revoke(entry["link_id"])
        note = None
    except NotFoundError:
        note = "the relay no longer had it (expired or revoked before)"
    register.change(entry["local_id"], revoked=True)
    audit_log(wallet).append("link.revoked", {"link": entry["local_id"]})
    payload = {"id": entry["local_id"], "revoked": True, "note": note}

    def human(console: Console) -> None:
        console.print(f"Revoked link {entry['local_id']}" + (f" ({note})" if note else ""))

    emit(as_json, payload, human)


@link_app.command("log")
def cmd_log(link: LinkId, as_json: JsonOption = False) -> None:
    """Who resolved a link, when, and under which recipient name (from the relay).

    Example: healthwallet link log 3f2a
    """
    wallet = unlock()
    entry = _register(wallet).get(link)
    log = _client(wallet, entry["relay"], entry["creator"]).log(entry["link_id"])
    rows = [
        {
            "time": e.get("at") if jsonutil.is_a(e.get("at"), int) else None,
            "recipient": str(e.get("recipient", ""))[:200],
            "outcome": str(e.get("outcome", ""))[:40],
        }
        for e in log
    ]

    def when(at: object) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) if isinstance(at, int) else "?"

    def human(console: Console) -> None:
        cells = [[when(row["time"]), str(row["recipient"]), str(row["outcome"])] for row in rows]
        print_table(console, ("time (UTC)", "recipient", "outcome"), cells)

    emit(as_json, {"id": entry["local_id"], "log": rows}, human, data=True)


@link_app.command("update")
def cmd_update(
    link: LinkId,
    record_ids: RecordIds = None,
    record_type: RecordType = None,
    tag: Tag = None,
    as_json: JsonOption = False,
) -> None:
    """Put new content under a long-term link (same URL, same key); by default its records
    as they are now.

    Example: healthwallet link update 3f2a --tag knee
    """
    from ..keys import b64url_decode
    from ..links.issue import seal_files

    wallet = unlock()
    register = _register(wallet)
    entry = register.get(link)
    if "L" not in entry["flag"]:
        raise UsageError(
            "only a long-term link can change its content", "create it with --long-term"
        )
    if entry["revoked"]:
        raise UsageError("this link was revoked", "create a new link")
    from ..vault import Vault
    from ._grants import _select

    vault = Vault(wallet.home, wallet.identity.vault_key)
    if record_ids or record_type or tag:
        records = _select(vault, record_ids or [], record_type, tag)
    else:
        records = [vault.get(record_id) for record_id in entry["records"]]
    shared = _shared(vault, records)
    vault.close()
    files = seal_files(
        shared,
        b64url_decode(entry["key"]),
        single_file="U" in entry["flag"],
        random_bytes=os.urandom,
    )
    _client(wallet, entry["relay"], entry["creator"]).update(entry["link_id"], files)
    updated = utc_now().isoformat(timespec="seconds")
    register.change(entry["local_id"], records=[r.id for r in records], updated=updated)
    audit_log(wallet).append(
        "link.updated", {"link": entry["local_id"], "records": [r.id for r in records]}
    )
    payload = {"id": entry["local_id"], "records": len(records), "updated": updated}

    def human(console: Console) -> None:
        console.print(f"Updated link {entry['local_id']}: {len(records)} record(s)")

    emit(as_json, payload, human)


def cmd_import(
    link: Annotated[
        str, typer.Argument(metavar="LINK", help="shlink:/… or a viewer URL with one.")
    ],
    recipient: Annotated[
        str, typer.Option("--recipient", help="Your name, as the link's server will log it.")
    ],
    passcode_file: PasscodeFile = None,
    trust_directory: Annotated[
        Path | None,
        typer.Option("--trust-directory", help="Issuers of health cards you trust (JSON)."),
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="Tag for the new records; repeatable.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import what a SMART Health Link holds: FHIR Bundles and verified health cards.

    Example: healthwallet import 'shlink:/eyJ1cmwi…' --recipient "Dr. Okafor"
    """
    from ..links.importing import import_files, read_directory
    from ..links.payload import parse_link
    from ..links.resolve import resolve

    parsed = parse_link(link)
    directory = read_directory(trust_directory) if trust_directory is not None else None
    passcode = None
    if parsed.passcode:
        passcode = _read_passcode(
            passcode_file, passcode_file is None and sys.stdin.isatty(), confirm=False
        )
    wallet = unlock()
    guarded = fetcher()
    files = resolve(parsed, recipient=recipient, passcode=passcode, fetcher=guarded, now=_now())
    from ..safewrite import OutputDir
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    with OutputDir(wallet.home, what="the wallet home") as spool:
        result = import_files(
            files,
            vault,
            spool,
            directory=directory,
            fetcher=guarded,
            label=parsed.label,
            tags=tags or [],
        )
    vault.close()
    audit_log(wallet).append("link.imported", {"records": [row["id"] for row in result["records"]]})

    def human(console: Console) -> None:
        console.print(f"Imported {len(result['records'])} record(s) from the link")
        for row in result["records"]:
            console.print(f"  {row['id']}  {row['kind']}  {row.get('issuer', '')}".rstrip())
        for row in result["skipped"]:
            console.print(f"  not stored: {row['content_type']} ({row['reason']})")
        for note in result["notes"]:
            notes_console().print(f"note: {note}")

    emit(as_json, result, human)


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.add_typer(link_app, name="link")
    app.command("import")(cmd_import)
