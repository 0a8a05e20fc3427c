"""Clinician credentials and trust: `credential issue|store|list|present`, `trust …`."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..contexts import CLINICIAN_TYPE
from ..errors import UsageError
from ..timeutil import parse_duration, parse_expiry, utc_now
from ..wallet import Wallet, read_config
from ._common import (
    JsonOption,
    emit,
    fetcher,
    issued_grants,
    note_local_status_list,
    print_table,
    stderr_console,
    unlock,
    write_binary_out,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..trust.clinician import HeldCredentials
    from ..trust.trustlist import TrustStore
    from ..trust.vouch import Vouching

credential_app = typer.Typer(
    help="Clinician credentials: issue, keep, present.", no_args_is_help=True
)
trust_app = typer.Typer(help="Whom you trust to vouch for clinicians.", no_args_is_help=True)

FormatOption = Annotated[
    str, typer.Option("--format", help="ldp (Ed25519Signature2018) or jwt (EdDSA).")
]
OutOption = Annotated[str, typer.Option("--out", "-o", help="File to write, or - for stdout.")]


def _format(fmt: str) -> Any:
    if fmt not in ("ldp", "jwt"):
        raise UsageError(f"unknown format {fmt!r}", "use --format ldp or --format jwt")
    return fmt


def _retired(wallet: Wallet) -> list[Any]:
    from ..rotation import retired_identities

    return retired_identities(wallet)


def trust_store(wallet: Wallet) -> TrustStore:
    """The wallet's trust store (sealed at rest)."""
    from ..trust.trustlist import TrustStore

    return TrustStore(wallet.home, wallet.identity, _retired(wallet))


def held_credentials(wallet: Wallet) -> HeldCredentials:
    """The credentials issued to this wallet (sealed at rest)."""
    from ..trust.clinician import HeldCredentials

    return HeldCredentials(wallet.home, wallet.identity, _retired(wallet))


def _read_document(source: str, what: str) -> dict[str, Any] | str:
    from ..statuslist import load_credential_document

    return load_credential_document(source, what, fetcher(), from_user=True)


def _write_document(out: str, document: dict[str, Any] | str, what: str) -> str:
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    if out == "-":
        sys.stdout.write(text + "\n")
        return "-"
    return write_binary_out(out, lambda handle: handle.write((text + "\n").encode()), what)


def _check_did_key(did: str) -> None:
    from ..keys import ed25519_from_did

    ed25519_from_did(did)  # UsageError (exit 2) unless an Ed25519 did:key


# -- credential ----------------------------------------------------------------------------------


@credential_app.command("issue")
def cmd_credential_issue(
    subject_did: Annotated[str, typer.Argument(metavar="SUBJECT_DID", help="The clinician.")],
    name: Annotated[str, typer.Option("--name", help="The clinician's name, e.g. Dr Ana Costa.")],
    role: Annotated[str, typer.Option("--role", help="Their role, e.g. cardiologist.")],
    licence: Annotated[str, typer.Option("--licence-number", help="Their licence number.")],
    jurisdiction: Annotated[
        str, typer.Option("--jurisdiction", help="Where the licence holds, e.g. PT.")
    ],
    expires: Annotated[str, typer.Option("--expires", help="Duration (365d), date or time.")],
    out: OutOption,
    vc_type: Annotated[
        str, typer.Option("--type", help="The credential type (ClinicianCredential).")
    ] = CLINICIAN_TYPE,
    fmt: FormatOption = "ldp",
    as_json: JsonOption = False,
) -> None:
    """As an institution, vouch for a member of staff: a revocable ClinicianCredential.

    Example: healthwallet credential issue did:key:z6Mk… --name "Dr Ana Costa" --role
    cardiologist --licence-number 12345 --jurisdiction PT --expires 365d --out ana.vc.json
    """
    from ..trust.clinician import clinician_credential, sign_clinician_credential

    if vc_type != CLINICIAN_TYPE:
        raise UsageError(f"unknown credential type {vc_type!r}", f"use --type {CLINICIAN_TYPE}")
    proof_format = _format(fmt)
    _check_did_key(subject_did)
    wallet = unlock()
    config = read_config(wallet.home)
    now = utc_now().replace(microsecond=0)
    expiry = parse_expiry(expires, now, int(config["max-expiry-days"]))
    issued = issued_grants(wallet)
    reservation = issued.reserve(subject_did, expiry)
    try:
        unsigned = clinician_credential(
            credential_id=reservation.grant_id,
            issuer=wallet.did,
            subject=subject_did,
            name=name,
            role=role,
            licence=licence,
            jurisdiction=jurisdiction,
            issued=now,
            expires=expiry,
            status=reservation.entry,
        )
        signed = sign_clinician_credential(unsigned, wallet.identity, proof_format, now)
        path = _write_document(out, signed, "a credential file")
    except BaseException:
        issued.release(reservation)
        raise
    issued.confirm_as(reservation, kind="credential")
    if issued.audit is not None:
        issued.audit.append(
            "credential.issued",
            {
                "credential_id": reservation.grant_id,
                "subject": subject_did,
                "expires": unsigned["expirationDate"],
            },
        )
    note_local_status_list(reservation.list_url, "patients", "a revocation")
    payload = {
        "credential_id": reservation.grant_id,
        "subject": subject_did,
        "expires": unsigned["expirationDate"],
        "file": path,
        "format": fmt,
        "status_list": reservation.list_url,
    }
    if out == "-":
        return

    def human(console: Console) -> None:
        console.print(f"Issued {CLINICIAN_TYPE} {payload['credential_id']} to {subject_did}")
        console.print(f"  expires  {payload['expires']}")
        console.print(f"  file     {path}")
        console.print(f"Revoke any time with: healthwallet revoke {payload['credential_id']}")

    emit(as_json, payload, human)


@credential_app.command("store")
def cmd_credential_store(
    source: Annotated[str, typer.Argument(metavar="FILE", help="A credential issued to you.")],
    as_json: JsonOption = False,
) -> None:
    """Keep a credential issued to you (sealed in your wallet), for `credential present`.

    Example: healthwallet credential store ana.vc.json
    """
    wallet = unlock()
    claims = held_credentials(wallet).store(_read_document(source, "credential"))
    payload = {"credential_id": claims.id, "issuer": claims.issuer, "expires": _iso(claims.expires)}
    emit(as_json, payload, lambda c: c.print(f"Stored {claims.id} (issued by {claims.issuer})"))


def _iso(moment: Any) -> str:
    from ..grants import iso_utc

    return iso_utc(moment)


@credential_app.command("list")
def cmd_credential_list(as_json: JsonOption = False) -> None:
    """List the credentials you hold.

    Example: healthwallet credential list
    """
    wallet = unlock()
    rows = [
        {
            "credential_id": c.id,
            "type": CLINICIAN_TYPE,
            "issuer": c.issuer,
            "name": c.name,
            "role": c.role,
            "expires": _iso(c.expires),
        }
        for c, _ in held_credentials(wallet).all()
    ]

    def human(console: Console) -> None:
        keys = ("credential_id", "name", "role", "issuer", "expires")
        headers = ("credential id", "name", "role", "issuer", "expires")
        cells = [[r[key] for key in keys] for r in rows]
        print_table(console, headers, cells, empty="No credentials held.")

    emit(as_json, {"credentials": rows}, human, data=True)


@credential_app.command("present")
def cmd_credential_present(
    to: Annotated[str, typer.Option("--to", metavar="PATIENT_DID", help="The patient.")],
    challenge: Annotated[
        str, typer.Option("--challenge", help="The nonce from the patient's `trust challenge`.")
    ],
    out: OutOption = "-",
    domain: Annotated[
        str | None, typer.Option("--domain", help="Default: the patient's DID.")
    ] = None,
    credential_ids: Annotated[
        list[str] | None,
        typer.Option("--credential", help="A held credential's id (repeatable; default all)."),
    ] = None,
    fmt: FormatOption = "ldp",
    as_json: JsonOption = False,
) -> None:
    """Present your credentials to one patient, bound to their challenge.

    Example: healthwallet credential present --to did:key:z6Mk… --challenge Xy… --out vp.json
    """
    from ..trust.presentation import make_presentation

    proof_format = _format(fmt)
    _check_did_key(to)
    wallet = unlock()
    chosen = held_credentials(wallet).pick(credential_ids or [])
    presentation = make_presentation(
        wallet.identity,
        chosen,
        challenge=challenge,
        domain=domain or to,
        fmt=proof_format,
        now=utc_now(),
    )
    path = _write_document(out, presentation, "a presentation file")
    if out != "-":
        payload = {"file": path, "holder": wallet.did, "to": to, "credentials": len(chosen)}
        emit(as_json, payload, lambda c: c.print(f"Wrote a presentation for {to} to {path}"))


# -- trust ---------------------------------------------------------------------------------------


@trust_app.command("add")
def cmd_trust_add(
    issuer_did: Annotated[str, typer.Argument(metavar="ISSUER_DID", help="An institution.")],
    name: Annotated[str, typer.Option("--name", help="What you call it, e.g. a hospital.")],
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scope", help="ClinicianCredential (default) or TrustList; repeatable."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Trust an issuer to vouch for clinicians (or, with --scope TrustList, to publish lists).

    Example: healthwallet trust add did:key:z6Mk… --name "Hospital de Santa Maria"
    """
    wallet = unlock()
    entry = trust_store(wallet).add(issuer_did, name, scopes or [CLINICIAN_TYPE], utc_now())
    emit(as_json, entry.to_json(), lambda c: c.print(f"Trusting {entry.name} ({entry.did})"))


@trust_app.command("list")
def cmd_trust_list(as_json: JsonOption = False) -> None:
    """List the issuers you trust, for what, since when, and through which list.

    Example: healthwallet trust list
    """
    wallet = unlock()
    rows = [issuer.to_json() for issuer in trust_store(wallet).issuers()]

    def human(console: Console) -> None:
        cells = [[r["name"], r["did"], ", ".join(r["scopes"]), r["since"], r["via"]] for r in rows]
        empty = "You trust no issuer yet (`trust add`, `trust import`)."
        print_table(console, ("name", "did", "scopes", "since", "via"), cells, empty=empty)

    emit(as_json, {"issuers": rows}, human, data=True)


@trust_app.command("remove")
def cmd_trust_remove(
    issuer_did: Annotated[str, typer.Argument(metavar="ISSUER_DID")],
    as_json: JsonOption = False,
) -> None:
    """Stop trusting an issuer (a list's entry stays out when the list is imported again).

    Example: healthwallet trust remove did:key:z6Mk…
    """
    wallet = unlock()
    entry = trust_store(wallet).remove(issuer_did)
    emit(as_json, entry.to_json(), lambda c: c.print(f"No longer trusting {entry.name}"))


@trust_app.command("import")
def cmd_trust_import(
    source: Annotated[str, typer.Argument(metavar="FILE|URL", help="A signed trust list.")],
    as_json: JsonOption = False,
) -> None:
    """Import a trust list signed by an operator you trust (--scope TrustList).

    Example: healthwallet trust import https://registry.example/clinicians.json
    """
    wallet = unlock()
    document = _read_document(source, "trust list")
    summary = trust_store(wallet).import_list(document, utc_now(), _skew(wallet))

    def human(console: Console) -> None:
        console.print(
            f"Imported {summary['list_name']} from {summary['operator_name']}: "
            f"{len(summary['issuers'])} issuer(s)"
        )
        for did in summary["dropped"]:
            console.print(f"  no longer trusted (dropped by the list): {did}")

    emit(as_json, summary, human)


@trust_app.command("challenge")
def cmd_trust_challenge(
    valid: Annotated[str, typer.Option("--valid", help="How long it may be answered.")] = "7d",
    as_json: JsonOption = False,
) -> None:
    """A one-time challenge for a clinician to present their credentials to you.

    Example: healthwallet trust challenge
    """
    lifetime = parse_duration(valid)
    if lifetime is None or not timedelta(minutes=1) <= lifetime <= timedelta(days=90):
        raise UsageError("--valid takes a duration from 1m to 90d", "e.g. --valid 7d")
    wallet = unlock()
    issued = trust_store(wallet).new_challenge(utc_now(), lifetime)
    payload = {**issued, "domain": wallet.did}
    command = (
        f"healthwallet credential present --to {wallet.did} --challenge {issued['challenge']}"
        " --out presentation.json"
    )

    def human(console: Console) -> None:
        console.print(f"challenge  {issued['challenge']}")
        console.print(f"domain     {wallet.did}")
        console.print(f"expires    {issued['expires']}")
        console.print(f"Ask the clinician to run: {command}")

    emit(as_json, dict(payload, command=command), human, data=True)


@trust_app.command("publish")
def cmd_trust_publish(
    name: Annotated[str, typer.Option("--name", help="The list's name.")],
    expires: Annotated[str, typer.Option("--expires", help="Duration (90d), date or time.")],
    out: OutOption,
    fmt: FormatOption = "ldp",
    as_json: JsonOption = False,
) -> None:
    """As a list operator, sign the issuers you added by hand as a trust list.

    Example: healthwallet trust publish --name "PT clinicians" --expires 90d --out list.json
    """
    from ..trust.trustlist import MANUAL, sign_trust_list

    proof_format = _format(fmt)
    wallet = unlock()
    now = utc_now().replace(microsecond=0)
    expiry = parse_expiry(expires, now, int(read_config(wallet.home)["max-expiry-days"]))
    mine = [i for i in trust_store(wallet).issuers() if i.via == MANUAL]
    signed = sign_trust_list(wallet.identity, name, mine, now=now, expires=expiry, fmt=proof_format)
    path = _write_document(out, signed, "a trust list file")
    if out != "-":
        emit(as_json, {"file": path, "issuers": len(mine)}, lambda c: c.print(f"wrote {path}"))


def _skew(wallet: Wallet) -> timedelta:
    return timedelta(seconds=int(read_config(wallet.home)["clock-skew-seconds"] or 60))


# -- the hook `grant` calls ----------------------------------------------------------------------


def vouch_for(
    wallet: Wallet, recipient: str, presentation_file: str | None, allow_unvouched: bool
) -> Vouching | None:
    """The passing vouching for ``recipient``, shown before sealing; None when the grant goes
    ahead unvouched (not required, or --allow-unvouched); NotVouchedError (exit 1) otherwise."""
    from ..trust.vouch import NotVouchedError, check_presentation, required

    store = trust_store(wallet)
    warn = stderr_console()
    try:
        if presentation_file is None:
            if not required(read_config(wallet.home), store):
                return None
            raise NotVouchedError(f"no trusted institution vouches for {recipient}")
        vouching = check_presentation(
            _read_document(presentation_file, "presentation"),
            recipient=recipient,
            patient=wallet.did,
            store=store,
            now=utc_now(),
            skew=_skew(wallet),
            transport=fetcher(),
        )
    except NotVouchedError as exc:
        if not allow_unvouched:
            raise
        warn.print(f"warning: NOT vouched for ({exc.message}); granting anyway (--allow-unvouched)")
        return None
    warn.print(f"vouched: {vouching.sentence()}")
    return vouching


def spend(wallet: Wallet, vouching: Vouching | None) -> None:
    """After sealing: the challenge the presentation answered is used up."""
    if vouching is not None:
        trust_store(wallet).use_challenge(vouching.challenge)


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.add_typer(credential_app, name="credential")
    app.add_typer(trust_app, name="trust")
