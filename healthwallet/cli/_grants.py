"""Grants: `grant`, `grants`, `revoke`, `status publish`, `log` (patients); `verify`, `open`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from ..errors import BadInputError, NotFoundError, UsageError, VerificationError
from ..idprefix import resolve_id
from ..safewrite import JOURNAL_DIR
from ..timeutil import parse_expiry, parse_instant, utc_now
from ..wallet import Wallet, read_config, read_info, wallet_exists
from ._common import (
    JsonOption,
    audit_log,
    emit,
    fetcher,
    home,
    issued_grants,
    note_date_expiry,
    note_local_status_list,
    notes_console,
    print_table,
    unlock,
    write_binary_out,
)
from ._progress import Advance, progress

if TYPE_CHECKING:
    from rich.console import Console

    from ..grants import GrantRecord, Verdict
    from ..vault import Record, Vault

status_app = typer.Typer(help="Publish the signed revocation status lists.", no_args_is_help=True)

MAX_GRANT_FILE = 64 * 1024**3


def _select(
    vault: Vault, record_ids: list[str], record_type: str | None, tag: str | None
) -> list[Record]:
    if record_ids and (record_type or tag):
        raise UsageError("give either --record, or --type/--tag", "see `healthwallet grant --help`")
    if record_ids:
        chosen: dict[str, Record] = {}
        for record_id in record_ids:
            record = vault.get(record_id)
            chosen[record.id] = record
        return list(chosen.values())
    if record_type is None and tag is None:
        raise UsageError(
            "choose the records to grant", "use --record ID (repeatable), --type T or --tag T"
        )
    records = vault.records(record_type, tag)
    if not records:
        raise NotFoundError(
            "no record matches --type/--tag", "list them with `healthwallet record list`"
        )
    return records


def _grant_records(
    vault: Vault, records: list[Record], advance: Advance | None = None
) -> list[GrantRecord]:
    from ..grants import GrantRecord

    def opener(record_id: str) -> Any:
        return lambda: vault.open_plaintext(record_id, advance)

    return [
        GrantRecord(
            id=r.id,
            media_type=r.media_type,
            name=r.name,
            salt=r.salt,
            commitment=r.commitment,
            size=r.size,
            open=opener(r.id),
        )
        for r in records
    ]


def _anchor_proofs(wallet: Wallet, records: list[Record]) -> dict[str, dict[str, Any]]:
    """Inclusion proofs for the records that are anchored (they travel with the grant)."""
    from ..anchors import ANCHORS_FILE, AnchorStore

    if not (wallet.home / ANCHORS_FILE).exists():
        return {}
    proofs: dict[str, dict[str, Any]] = {}
    with AnchorStore(wallet.home) as store:
        for record in records:
            try:
                proofs[record.id] = store.proof_for(record.id, record.commitment)
            except NotFoundError:
                continue
    return proofs


def cmd_grant(
    doctor_did: Annotated[
        str,
        typer.Argument(
            metavar="DOCTOR_DID",
            help="The recipient: a did:key, or a did:web (resolved over HTTPS).",
        ),
    ],
    expires: Annotated[
        str,
        typer.Option(
            "--expires",
            help="Duration (90s, 24h, 7d, 2w), a date (the end of that day, your time zone) "
            "or an ISO 8601 date-time.",
        ),
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="Grant file to write, or - for stdout.")],
    record_ids: Annotated[
        list[str] | None, typer.Option("--record", help="Record id; repeatable.")
    ] = None,
    record_type: Annotated[
        str | None, typer.Option("--type", help="Every record of this type.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Every record with this tag.")] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Why the doctor may see the records.")
    ] = "treatment",
    fmt: Annotated[
        str, typer.Option("--format", help="ldp (Ed25519Signature2018) or jwt (EdDSA).")
    ] = "ldp",
    require_credential: Annotated[
        str | None,
        typer.Option(
            "--require-credential",
            metavar="PRESENTATION",
            help="The doctor's presentation of a ClinicianCredential for your challenge.",
        ),
    ] = None,
    allow_unvouched: Annotated[
        bool, typer.Option("--allow-unvouched", help="Grant even if no trusted issuer vouches.")
    ] = False,
    via: Annotated[
        str | None,
        typer.Option(
            "--via",
            metavar="RELAY_URL",
            help="Also upload the grant to this relay; the doctor gets a URL it serves only "
            "to them, only before expiry and only while unrevoked.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Give a doctor time-limited, revocable access: a signed VC and the records sealed to them.

    Example: healthwallet grant did:key:z6Mk… --tag knee --expires 7d --out knee.hwgrant
    """
    if fmt not in ("ldp", "jwt"):
        raise UsageError(f"unknown format {fmt!r}", "use --format ldp or --format jwt")
    from .. import didweb

    web = doctor_did.startswith(didweb.PREFIX)
    if web:
        didweb.document_url(doctor_did)
    else:
        from ..keys import ed25519_from_did

        ed25519_from_did(doctor_did)
    if out != "-" and Path(out).is_dir():
        raise UsageError("--out is a directory", "give a file name, e.g. --out grant.hwgrant")
    if via is not None:
        from ..grantvia import relay_base

        if out == "-":
            raise UsageError("--via needs a grant file", "use --out FILE with --via")
        relay_base(via)
    wallet = unlock()
    config = read_config(wallet.home)
    now = utc_now()
    expiry = parse_expiry(expires, now, int(config["max-expiry-days"]))
    note_date_expiry(expires, expiry)
    if doctor_did in (wallet.did, config["did-web"]):
        raise UsageError("a grant to yourself is pointless", "give the doctor's DID")
    from ._trust import spend, vouch_for

    vouching = vouch_for(wallet, doctor_did, require_credential, allow_unvouched)

    # A did:web names its keys in a document on the web: fetch it before reading any record.
    recipient_key = didweb.resolve_key_agreement(doctor_did, transport=fetcher()) if web else None
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    records = _select(vault, record_ids or [], record_type, tag)
    issued = issued_grants(wallet)
    summary: dict[str, Any] = {}

    def write(handle: BinaryIO) -> None:
        with progress("sealing", sum(r.size for r in records), as_json=as_json) as advance:
            issue(handle, advance)

    def issue(handle: BinaryIO, advance: Advance | None) -> None:
        summary.update(
            issued.issue(
                handle,
                _grant_records(vault, records, advance),
                doctor_did,
                purpose=purpose,
                expires=expiry,
                fmt=fmt,
                anchors=_anchor_proofs(wallet, records),
                spool_dir=wallet.home,
                recipient_key=recipient_key,
                vouched_by=vouching.credential_id if vouching else None,
            )
        )

    path = write_binary_out(out, write, "a grant file")
    spend(wallet, vouching)
    vault.close()
    payload = {
        "grant_id": summary["grant_id"],
        "recipient": doctor_did,
        "expires": summary["expires"],
        "records": summary["records"],
        "file": path,
        "format": fmt,
        "status_list": summary["status_list"],
    }
    if recipient_key is not None:
        payload["recipient_key"] = recipient_key.key_id
    payload["vouched"] = vouching.to_json() if vouching else None
    if via is not None:
        from ._grantvia import relay_grant

        payload["relay_url"] = relay_grant(wallet, via, path)["url"]

    def human(console: Console) -> None:
        console.print(f"Granted {len(records)} record(s) to {doctor_did}")
        console.print(f"  grant id  {payload['grant_id']}")
        console.print(f"  expires   {payload['expires']}")
        if recipient_key is not None:
            console.print(f"  sealed to {recipient_key.key_id}")
        if vouching is not None:
            console.print(f"  vouched   {vouching.sentence()}")
        console.print(f"  file      {path}")
        if via is not None:
            console.print(f"  relayed   {payload['relay_url']}  (give the doctor this URL)")
        console.print(f"Revoke any time with: healthwallet revoke {payload['grant_id']}")

    note_local_status_list(payload["status_list"], "the doctor", "a revocation")
    if out == "-":
        # stdout carries the grant file itself; the summary goes to stderr
        notes_console().print(f"granted {payload['grant_id']}")
        return
    emit(as_json, payload, human)


def cmd_grants(as_json: JsonOption = False) -> None:
    """List the grants (and research consents) you issued, with their status.

    Example: healthwallet grants --json
    """
    wallet = unlock()
    rows = issued_grants(wallet).list_grants()
    grants = [
        {
            "grant_id": row["grant_id"],
            "recipient": row["recipient"],
            "expires": row["expires"],
            "status": row["status"],
            "created": row.get("created"),
            "kind": row.get("kind", "grant"),
        }
        for row in rows
    ]

    def human(console: Console) -> None:
        keys = ("grant_id", "kind", "recipient", "expires", "status")
        rows = [[g[key] for key in keys] for g in grants]
        headers = ("grant id", "kind", "recipient", "expires", "status")
        print_table(console, headers, rows, empty="No grants issued.")

    emit(as_json, {"grants": grants}, human, data=True)


def cmd_revoke(
    grant_id: Annotated[
        str,
        typer.Argument(help="The grant id: urn:uuid:…, the bare uuid, or a unique prefix of it."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Revoke a grant (or a research consent): set its bit in your signed status list.

    Example: healthwallet revoke 637990bb
    """
    wallet = unlock()
    result = _revoke_any(wallet, grant_id)
    payload = {
        "grant_id": result["grant_id"],
        "status": "revoked",
        "already_revoked": bool(result.get("already_revoked")),
    }
    emit(
        as_json,
        payload,
        lambda c: c.print(
            ("Already revoked " if payload["already_revoked"] else "Revoked ") + payload["grant_id"]
        ),
    )


def _revoke_any(wallet: Wallet, grant_id: str) -> dict[str, Any]:
    issued = issued_grants(wallet)
    ids = [grant["grant_id"] for grant in issued.list_grants()]
    return dict(issued.revoke(resolve_id(grant_id, ids, kind="grant", list_command="grants")))


@status_app.command("publish")
def cmd_status_publish(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the status lists into.")],
    as_json: JsonOption = False,
) -> None:
    """Write your signed StatusList2021 credentials, ready to host at your `status-url`.

    Example: healthwallet status publish --out ./site/status
    """
    wallet = unlock()
    paths = [str(p) for p in issued_grants(wallet).publish(out)]
    config = read_config(wallet.home)
    payload = {"files": paths, "status_url": config.get("status-url") or None}

    def human(console: Console) -> None:
        for path in paths:
            console.print(f"wrote {path}")
        if not paths:
            console.print("No status lists yet (no grant issued).")
        elif not payload["status_url"]:
            console.print(
                "Grants name file:// status lists (local only); set `status-url` to host them."
            )

    emit(as_json, payload, human)


def cmd_log(as_json: JsonOption = False) -> None:
    """Show the append-only, hash-chained audit log of grants, revocations and shares.

    Example: healthwallet log
    """
    wallet = unlock()
    audit = audit_log(wallet)
    entries = audit.read()
    report = audit.verify_chain()
    payload = {
        "entries": entries,
        "ok": report.ok,
        "head": report.head,
        "first_bad": report.first_bad,
        "reason": report.reason,
    }

    def human(console: Console) -> None:
        rows = [
            [
                str(entry.get("seq")),
                str(entry.get("time")),
                str(entry.get("event")),
                ", ".join(f"{k}={v}" for k, v in sorted(entry.get("details", {}).items())),
            ]
            for entry in entries
        ]
        print_table(console, ("#", "time", "event", "details"), rows)
        from ._style import line, mark

        outcome = "chain intact" if report.ok else f"chain broken at entry {report.first_bad}"
        reason = "" if report.ok else f": {report.reason}"
        console.print(line(mark(report.ok), f" {outcome}{reason}"))

    emit(as_json, payload, human, data=True)
    if not report.ok:
        raise typer.Exit(1)


def _open_grant_file(path: Path) -> BinaryIO:
    try:
        if path.is_dir():
            raise BadInputError("the grant is a directory, not a file", "pass the .hwgrant file")
        size = path.stat().st_size
        if size > MAX_GRANT_FILE:
            raise BadInputError("the file is too large to be a grant")
        return path.open("rb")
    except FileNotFoundError:
        raise NotFoundError("the grant file does not exist", "check the path") from None
    except OSError as exc:
        raise BadInputError(f"cannot read the grant file ({exc.strerror})") from None


def _ledger_verifier(issuer: str) -> Callable[[Mapping[str, Any], str], object]:
    """An anchor verifier that also asks the ledger (for --check-ledger)."""
    from ..anchors import verify_proof_on_ledger
    from ..ledger import LedgerContext, load_ledger
    from ._anchor import ledger_settings

    config = read_config(home()) if wallet_exists(home()) else {}

    def verify(proof: Mapping[str, Any], commitment_hex: str) -> object:
        name = str(proof.get("ledger", ""))
        ledger = None
        if name != "local":  # a local log travels inside the receipt; others are asked
            ledger = load_ledger(
                name, LedgerContext(home=home(), settings=ledger_settings(config, name))
            )
        result = verify_proof_on_ledger(proof, commitment_hex, ledger, expected_signer=issuer)
        if not result.valid:
            raise VerificationError("; ".join(result.problems))
        return True

    return verify


def _skew() -> timedelta:
    config = read_config(home()) if wallet_exists(home()) else {}
    return timedelta(seconds=int(config.get("clock-skew-seconds", "60") or 60))


def render_verdict(console: Console, verdict: Verdict) -> None:
    """The human verdict: who, what, until when, and each check."""
    from ._style import line, mark

    data = verdict.to_json()
    word = "VALID" if verdict.valid else "INVALID"
    console.print(line(mark(verdict.valid, word), f" grant  {data['grant_id']}"))
    console.print(f"  issuer      {data['issuer']}")
    console.print(f"  recipient   {data['recipient']}")
    console.print(f"  purpose     {data['purpose']}")
    console.print(f"  valid from  {data['issued']}")
    console.print(f"  valid until {data['expires']}")
    if data["vouched_by"]:
        console.print(f"  vouched by  credential {data['vouched_by']} (checked by the patient)")
    for record in data["records"]:
        text = f"  record      {record['id']}  {record.get('media_type', '')}"
        if record.get("anchored_at"):
            text += f"  anchored at {record['anchored_at']} on {record.get('ledger')}"
        console.print(text)
    for check in data["checks"]:
        console.print(line("  ", mark(check["ok"]), f" {check['name']:<10} {check['detail']}"))


def _my_did_web(wallet_home: Path) -> tuple[str, ...]:
    """The did:web this wallet answers to (the `did-web` setting), if any."""
    name = read_config(wallet_home)["did-web"]
    return (name,) if name else ()


def cmd_verify(
    grant_file: Annotated[Path, typer.Argument(metavar="FILE", help="The grant file.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="Check validity at this ISO 8601 time instead of now."),
    ] = None,
    status_list: Annotated[
        str | None,
        typer.Option(
            "--status-list",
            help="Status list credential: a file or URL (default: the one the grant names).",
        ),
    ] = None,
    check_ledger: Annotated[
        bool, typer.Option("--check-ledger", help="Also ask the ledger about each anchor.")
    ] = False,
    recipient: Annotated[
        str | None,
        typer.Option(
            "--recipient",
            metavar="DID",
            help="Check that the grant is addressed to this DID (default: your wallet's DID).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a grant: proof, validity, envelope, revocation, recipient, anchors.

    Example: healthwallet verify knee.hwgrant --recipient did:key:z6Mk…
    """
    moment = parse_instant(at, "--at") if at else None
    if recipient is not None:
        # A malformed DID is a usage error, not a failed check.
        if recipient.startswith("did:web:"):
            from ..didweb import document_url

            document_url(recipient)
        else:
            from ..keys import ed25519_from_did

            ed25519_from_did(recipient)
        my_did: str | None = recipient
    else:
        my_did = read_info(home()).did if wallet_exists(home()) else None
    with _open_grant_file(grant_file) as handle:
        from ..grants import verify_grant  # after the cheap checks of the file

        verdict = verify_grant(
            handle,
            recipient_did=my_did,
            also_me=_my_did_web(home()) if my_did and recipient is None else (),
            status_source=status_list,
            at=moment,
            skew=_skew(),
            anchor_verifier_for=_ledger_verifier if check_ledger else None,
            transport=fetcher(),
        )
    payload = dict(verdict.to_json(), recipient_checked=my_did is not None)

    def human(console: Console) -> None:
        render_verdict(console, verdict)
        if my_did is None:
            console.print(
                "  ! recipient  NOT CHECKED: no wallet here, so nothing says this grant is for"
                " you; pass --recipient DID"
            )

    emit(as_json, payload, human)
    if not verdict.valid:
        raise typer.Exit(1)


def cmd_open(
    grant_file: Annotated[
        str, typer.Argument(metavar="FILE|URL", help="The grant file, or a relayed grant's URL.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the records into.")],
    status_list: Annotated[
        str | None, typer.Option("--status-list", help="Status list credential: a file or URL.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a grant addressed to you and decrypt its records into a directory.

    A relayed grant's URL (from `grant --via`) is fetched with your wallet's key first.

    Example: healthwallet open knee.hwgrant --out ./from-patient
    """
    from ..grantvia import is_grant_url

    wallet = unlock()
    if out.exists() and not out.is_dir():
        raise UsageError("--out exists and is not a directory", "give a directory")
    if is_grant_url(grant_file):
        from ._grantvia import fetched_grant

        with fetched_grant(wallet, grant_file) as path:
            _open_file(wallet, path, out, status_list, as_json)
        return
    _open_file(wallet, Path(grant_file), out, status_list, as_json)


def _open_file(
    wallet: Wallet, grant_file: Path, out: Path, status_list: str | None, as_json: bool
) -> None:
    from ..grants import GrantClaims, open_grant, read_grant_header

    with (
        _open_grant_file(grant_file) as handle,
        progress("opening", os.fstat(handle.fileno()).st_size, as_json=as_json) as advance,
    ):
        opened = open_grant(
            handle,
            wallet.identity,
            out,
            status_source=status_list,
            skew=_skew(),
            also_me=_my_did_web(wallet.home),
            journal=wallet.home / JOURNAL_DIR,
            transport=fetcher(),
            on_progress=advance,
        )
        handle.seek(0)
        # The proof verified inside open_grant; this only reads the id back for the report.
        credential = read_grant_header(handle).credential
    from ..credentials import verify_proof

    grant_id = GrantClaims.from_credential(verify_proof(credential).credential).id
    payload = {"grant_id": grant_id, "records": [dict(r) for r in opened]}

    def human(console: Console) -> None:
        from ._style import line, mark

        console.print(f"Opened grant {grant_id}")
        for record in opened:
            detail = f" {record['id']} → {record['path']}"
            console.print(line("  ", mark(record["verified"]), detail))

    emit(as_json, payload, human)


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.command("grant")(cmd_grant)
    app.command("grants")(cmd_grants)
    app.command("revoke")(cmd_revoke)
    app.add_typer(status_app, name="status")
    app.command("log")(cmd_log)
    app.command("verify")(cmd_verify)
    app.command("open")(cmd_open)
