"""Research sharing: `share` (patients) and `research ingest` (research groups)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from ..errors import NotFoundError, UsageError
from ..filetypes import RECORD_TYPES
from ..timeutil import parse_duration, parse_expiry, utc_now
from ..wallet import Wallet, read_config
from ._common import (
    JsonOption,
    emit,
    fetcher,
    note_date_expiry,
    notes_console,
    unlock,
    write_binary_out,
)
from ._progress import progress

if TYPE_CHECKING:
    from rich.console import Console

    from ..deid import Policy
    from ..keys import Identity
    from ..research import IngestResult
    from ..shares import Dataset
    from ..vault import Record, Vault

research_app = typer.Typer(
    help="For research groups: ingest de-identified shares into a dataset.", no_args_is_help=True
)

DEFAULT_EXPIRY_DAYS = 365
# How the dry-run table describes each engine action (docs/deidentification.md).
_EFFECT = {
    "keep": "leaves as is",
    "cryptohash": "leaves pseudonymized",
    "dateshift": "leaves date-shifted",
    "generalize": "leaves generalized",
    "substitute": "leaves replaced",
    "redact": "removed",
    "remove": "removed (no rule keeps it)",
    "unbundle": "removed (the Bundle is unpacked)",
}


def _select(
    vault: Vault, record_ids: list[str], record_type: str | None, tag: str | None
) -> list[Record]:
    if record_ids and (record_type or tag):
        raise UsageError("give either --record, or --type/--tag", "see `healthwallet share --help`")
    if record_type is not None and record_type not in RECORD_TYPES:
        raise UsageError(f"unknown record type {record_type!r}", "use --type fhir")
    if record_ids:
        chosen: dict[str, Record] = {}
        for record_id in record_ids:
            record = vault.get(record_id)
            chosen[record.id] = record
        records = list(chosen.values())
    elif record_type is None and tag is None:
        raise UsageError(
            "choose the records to share", "use --record ID (repeatable) or --type fhir"
        )
    else:
        records = vault.records(record_type, tag)
        if not records:
            raise NotFoundError(
                "no record matches --type/--tag", "list them with `healthwallet record list`"
            )
    for record in records:
        if record.type != "fhir":
            # Free-form files (scans, photos, letters) cannot be de-identified safely.
            raise UsageError(
                f"record {record.id} is not a FHIR record ({record.type}); it cannot be "
                "de-identified and was not shared",
                "share FHIR records only (--type fhir); nothing was written",
            )
    return records


def _first_identity(wallet: Wallet) -> Identity:
    """The wallet's first identity: pseudonyms stay the same for a study across key rotations."""
    from ..rotation import retired_identities

    retired = retired_identities(wallet)
    return retired[0] if retired else wallet.identity


def _read_records(vault: Vault, records: list[Record], as_json: bool) -> list[tuple[str, bytes]]:
    contents = []
    with progress("reading", sum(r.size for r in records), as_json=as_json) as advance:
        for record in records:
            buffer = io.BytesIO()
            vault.export_into(record.id, buffer, advance)  # checked against its commitment
            contents.append((record.id, buffer.getvalue()))
    return contents


def _render_dry_run(console: Console, payload: dict[str, Any]) -> None:
    console.print(
        f"Dry run: {payload['resources']} de-identified resource(s) would leave the wallet "
        f"({', '.join(payload['categories'])}); nothing was written."
    )
    from rich.table import Table

    table = Table("action", "effect", "count")
    table.add_column("field", overflow="fold")
    for change in payload["changes"]:
        action = change["action"]
        table.add_row(action, _EFFECT.get(action, action), str(change["count"]), change["path"])
    console.print(table)


def cmd_share(
    research_did: Annotated[
        str, typer.Argument(metavar="RESEARCH_DID", help="The research group's did:key.")
    ],
    study: Annotated[str, typer.Option("--study", help="The study id the consent is for.")],
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Share file to write, or - for stdout.")
    ] = None,
    record_ids: Annotated[
        list[str] | None, typer.Option("--record", help="FHIR record id; repeatable.")
    ] = None,
    record_type: Annotated[
        str | None, typer.Option("--type", help="Every record of this type (fhir).")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Every record with this tag.")] = None,
    policy_name: Annotated[
        str,
        typer.Option("--policy", help="safe-harbor, dateshift (not Safe Harbor) or a JSON file."),
    ] = "safe-harbor",
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="Consent expiry: duration (90d, 2w), a date (end of that day, your time "
            "zone) or an ISO 8601 time.",
        ),
    ] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="What the research group may use the data for.")
    ] = "research",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would leave the wallet; write nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Share de-identified FHIR records with a research group, under a revocable consent.

    Example: healthwallet share did:key:z6Mk… --study cardio-2026 --type fhir --out cardio.hwshare
    """
    from ..deid import load_policy
    from ..keys import ed25519_from_did
    from ..shares import check_study, prepare_dataset, pseudonym_keys
    from ..studyid import coarse_expiry, require_hostable

    ed25519_from_did(research_did)
    check_study(study)
    if not dry_run:
        if out is None:
            raise UsageError("--out is required", "give --out FILE (or - for stdout), or --dry-run")
        if out != "-" and Path(out).is_dir():
            raise UsageError("--out is a directory", "give a file name, e.g. --out study.hwshare")
    policy = load_policy(policy_name)
    wallet = unlock()
    if research_did == wallet.did:
        raise UsageError("a share to yourself is pointless", "give the research group's did:key")
    config = read_config(wallet.home)
    now = utc_now()
    max_days = int(config["max-expiry-days"])
    expiry = parse_expiry(expires or f"{min(DEFAULT_EXPIRY_DAYS, max_days)}d", now, max_days)
    note_date_expiry(expires, expiry)
    if not dry_run:
        require_hostable(config.get("status-url") or "")
    if expires is None or parse_duration(expires) is not None:
        expiry = coarse_expiry(expiry, now)  # an explicit instant is kept as given
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    try:
        records = _select(vault, record_ids or [], record_type, tag)
        contents = _read_records(vault, records, as_json)
    finally:
        vault.close()
    dataset = prepare_dataset(
        contents, policy, pseudonym_keys(_first_identity(wallet), study), now=now
    )
    if not dataset.resources:
        raise UsageError("nothing is left to share after de-identification", "nothing was written")

    if dry_run:
        payload = {
            "dry_run": True,
            "resources": len(dataset.resources),
            "categories": dataset.categories,
            "changes": dataset.changes,
        }
        emit(as_json, payload, lambda console: _render_dry_run(console, payload))
        return

    assert out is not None  # checked above
    _issue(wallet, research_did, dataset, policy, study, purpose, expiry, now, out, as_json)


def _issue(
    wallet: Wallet,
    research_did: str,
    dataset: Dataset,
    policy: Policy,
    study: str,
    purpose: str,
    expiry: datetime,
    now: datetime,
    out: str,
    as_json: bool,
) -> None:
    from ..shares import issue_share
    from ..studyid import study_identity
    from ._common import audit_log, issued_grants

    issued = issued_grants(wallet, with_audit=False)  # share.issued is logged below
    # The consent's slot is in the study's own list, signed by the per-study identity.
    reservation = issued.reserve(research_did, expiry, study=study)
    summary: dict[str, Any] = {}

    def write(handle: BinaryIO) -> None:
        summary.update(
            issue_share(
                handle,
                study_identity(wallet.identity, study),
                research_did,
                dataset,
                study=study,
                purpose=purpose,
                policy=policy,
                expires=expiry,
                credential_status=reservation.entry,
                now=now,
                share_id=reservation.grant_id,
            )
        )

    try:
        path = write_binary_out(out, write, "a share file")
    except BaseException:
        issued.release(reservation)
        raise
    issued.confirm_consent(reservation, study)
    audit_log(wallet).append(
        "share.issued",
        {
            "share_id": summary["share_id"],
            "recipient": research_did,
            "study": study,
            "expires": summary["expires"],
            "resources": summary["resources"],
            "categories": summary["categories"],
            "policy_digest": summary["policy_digest"],
            "status_list": reservation.list_url,
            "status_index": reservation.index,
        },
    )
    payload = {
        "share_id": summary["share_id"],
        "recipient": research_did,
        "study": study,
        "resources": summary["resources"],
        "file": path,
        "expires": summary["expires"],
        "categories": summary["categories"],
        "policy": summary["policy"],
        "policy_digest": summary["policy_digest"],
        "status_list": summary["status_list"],
    }

    def human(console: Console) -> None:
        console.print(
            f"Shared {payload['resources']} de-identified resource(s) with {research_did} "
            f"for study {study}"
        )
        console.print(f"  share id  {payload['share_id']}")
        console.print(f"  policy    {payload['policy']} ({payload['policy_digest']})")
        console.print(f"  expires   {payload['expires']}")
        console.print(f"  file      {path}")
        console.print(f"Withdraw consent any time with: healthwallet revoke {payload['share_id']}")

    if out == "-":
        notes_console().print(f"shared {payload['share_id']}")
        return
    emit(as_json, payload, human)


def _render_ingest(console: Console, result: IngestResult) -> None:
    if result.files:
        console.print(
            f"Ingested {result.patients} patient(s), {result.resources} resource(s) into "
            f"{result.out} (study {result.study})"
        )
        report = result.report
        level = report["k_anonymity"]["generalization"]
        console.print(
            f"  k-anonymity: k={result.k_requested} requested, k={result.k} achieved; "
            f"{result.suppressed} patient(s) suppressed"
        )
        for reason in report["suppression_reasons"]:
            console.print(
                f"    {reason['patients']} patient(s) in {reason['classes']} class(es): "
                f"{reason['reason']}"
            )
        birth_year = "kept" if level["birth_year"] == "year" else "removed"
        console.print(
            f"  generalization level {level['level']}: birth year {birth_year}, "
            f"{level['age_band_years']}-year age bands, ZIP3 {level['zip3']}, "
            f"state {level['state']}, country {level['country']}"
        )
    elif result.outcome == "k-not-met":
        console.print(
            f"No patient's equivalence class reaches k={result.k_requested} "
            f"({result.suppressed} patient(s) from {result.accepted} share(s)); "
            "nothing was written."
        )
    else:
        console.print("No share could be ingested; nothing was written.")
    if result.rejected:
        console.print(f"  {len(result.rejected)} share file(s) rejected:")
        for rejection in result.rejected:
            console.print(
                f"    #{rejection.input} {rejection.file}: {rejection.reason} ({rejection.detail})"
            )


@research_app.command("ingest")
def cmd_ingest(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Share files.")],
    k: Annotated[
        int,
        typer.Option(
            "--k", help="Each patient must share their quasi-identifiers with k-1 others."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="New directory for the dataset.")],
    quasi: Annotated[
        list[str] | None,
        typer.Option(
            "--quasi",
            help=(
                "age_band, gender, zip3, birth_year, state, country, age or a Patient path; "
                "repeatable (default: the seven built-in ones; one not named is removed)."
            ),
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Accept only consents for this study.")
    ] = None,
    status_list: Annotated[
        list[str] | None,
        typer.Option(
            "--status-list", help="A patient's status list credential (file or URL); repeatable."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify consents, decrypt and merge shares, enforce k-anonymity, write NDJSON and Parquet.

    Example: healthwallet research ingest *.hwshare --k 5 --out dataset
    """
    from ..research import ingest

    if k < 1:
        raise UsageError("--k must be at least 1", "e.g. --k 5")
    wallet = unlock()
    config = read_config(wallet.home)
    skew = timedelta(seconds=int(config.get("clock-skew-seconds", "60") or 60))
    with progress("ingesting", len(files), as_json=as_json, unit="shares") as advance:
        result = ingest(
            files,
            wallet.identity,
            out,
            k=k,
            quasi=quasi,
            study=study,
            status_sources=status_list or [],
            skew=skew,
            transport=fetcher(),
            on_progress=advance,
        )
    emit(as_json, result.to_json(), lambda console: _render_ingest(console, result))
    if not result.files:
        raise typer.Exit(1)  # no share accepted, or no class reaches k: nothing was written


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.command("share")(cmd_share)
    app.add_typer(research_app, name="research")
