"""Grant files: issue, parse, verify and open a ``healthwallet-grant/v1`` file.

Spec: docs/format-grant.md. A grant is one file: a magic line, a length-prefixed canonical
JSON header holding the signed credential (VC Data Model 1.1, ``HealthRecordAccessGrant``) and
the envelope header, then the records' ciphertext. The credential carries the SHA-256 of the
envelope header and all ciphertext, so a change to any byte is caught. Files of any size are
written and read in chunks: memory stays flat.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import struct
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypedDict, cast

from . import didweb, jsonutil, keys, statuslist, stream
from . import envelope as env
from .chunkio import ProgressCallback, consumer
from .contexts import GRANT_CONTEXT, GRANT_VOUCHED_CONTEXT
from .credentials import Format, ProofResult, issue_credential, verify_proof
from .errors import (
    AccessDeniedError,
    BadInputError,
    HealthWalletError,
    InternalError,
    NetworkError,
    NotFoundError,
    StorageError,
    UsageError,
    VerificationError,
)
from .filenames import safe_file_name
from .hashthread import HashWorker, hashing
from .safewrite import OutputDir

MAGIC = b"healthwallet-grant/v1\n"
MAX_HEADER_BYTES = 16 * 1024 * 1024
_TRUNCATED = "grant file is truncated (records are missing)"
_TRAILING = "grant file has data after its last record"
GRANT_TYPE = "HealthRecordAccessGrant"
DEFAULT_SKEW = timedelta(seconds=60)
MAX_PURPOSE_CHARS = 1000
_IO_BLOCK = 1024 * 1024
_UUID_URN_RE = re.compile(
    r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z"
)
_DETACHED_JWS_RE = re.compile(r"^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+\Z")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z")

RandomBytes = Callable[[int], bytes]
AnchorVerifier = Callable[[Mapping[str, Any], str], object]
"""Checks one portable anchor proof against a commitment (hex); raises or returns False."""


# -- inputs and outputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantRecord:
    """One record to put into a grant, as the vault hands it over."""

    id: str
    media_type: str
    name: str
    salt: bytes = field(repr=False)
    commitment: str
    size: int
    open: Callable[[], AbstractContextManager[BinaryIO]] = field(repr=False)


class GrantSummary(TypedDict):
    """What :func:`issue_grant` reports (ids, DIDs and times only)."""

    grant_id: str
    issuer: str
    recipient: str
    issued: str
    expires: str
    records: list[str]
    envelope_digest: str
    status_list: str
    status_index: int
    format: str
    bytes: int


class OpenedRecord(TypedDict):
    """One record :func:`open_grant` wrote out."""

    id: str
    path: str
    verified: bool


# -- the container --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantFile:
    """The parsed header of a grant file (nothing verified yet)."""

    credential: dict[str, Any] | str
    envelope: env.EnvelopeHeader
    envelope_bytes: bytes
    payload_offset: int


def read_grant_header(src: BinaryIO) -> GrantFile:
    """Read the magic line and header (``src`` is left at the first record)."""
    try:
        magic = stream.read_full(src, len(MAGIC))
        if magic != MAGIC:
            if magic.startswith(b"healthwallet-grant/"):
                raise BadInputError(
                    "unsupported grant file version", "upgrade healthwallet to open this grant"
                )
            raise BadInputError("not a healthwallet grant file (wrong or missing magic line)")
    except OSError as exc:
        raise BadInputError(f"cannot read the grant file ({exc.strerror})") from None
    credential, envelope, envelope_bytes, length = env.read_framed_header(
        src, "grant", MAX_HEADER_BYTES
    )
    offset = len(MAGIC) + 4 + length
    env.check_payload_size(
        src,
        offset,
        envelope.payload_length,
        _TRUNCATED,
        _TRAILING,
    )
    return GrantFile(credential, envelope, envelope_bytes, offset)


def _payload_reader(src: BinaryIO, length: int, digest: Any) -> env.PayloadReader:
    return env.PayloadReader(src, length, digest, "grant file", _TRUNCATED)


def _expect_end(src: BinaryIO) -> None:
    env.expect_end(src, "grant file", _TRAILING)


def payload_digest(grant: GrantFile, src: BinaryIO, stop: threading.Event | None = None) -> str:
    """SHA-256 (hex) over the envelope header and all record ciphertext read from ``src``."""
    digest = hashlib.sha256(grant.envelope_bytes)
    reader = _payload_reader(src, grant.envelope.payload_length, digest)
    while reader.remaining:
        if stop is not None and stop.is_set():
            raise InternalError("payload hashing was stopped")
        reader.read(_IO_BLOCK)
    _expect_end(src)
    return digest.hexdigest()


class _DigestInBackground:
    """Computes :func:`payload_digest` on a thread while the credential is being checked."""

    def __init__(self, grant: GrantFile, src: BinaryIO) -> None:
        self._stop = threading.Event()
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(grant, src), name="hw-digest", daemon=True
        )
        self._thread.start()

    def _run(self, grant: GrantFile, src: BinaryIO) -> None:
        try:
            self._digest = payload_digest(grant, src, self._stop)
        except BaseException as exc:  # handed to the caller in result()
            self._error = exc

    def result(self) -> str:
        """The digest, or the error reading the payload raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest

    def stop(self) -> None:
        """Stop reading (if still running) and wait for the thread."""
        self._stop.set()
        self._thread.join()


# -- the credential's claims ----------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialFrame:
    """The members every grant and consent credential has, checked for shape."""

    id: str
    issuer: str
    subject: Mapping[str, Any]
    issued: datetime
    expires: datetime
    status: dict[str, Any]


def check_credential_frame(
    credential: Mapping[str, Any], vc_type: str, what: str
) -> CredentialFrame:
    """The frame of a VC 1.1 of type ``vc_type``; BadInputError on any other shape.

    Shared by grants and research consents: the same top-level members, a ``urn:uuid`` id,
    an Ed25519 did:key issuer, an object subject (its members are each caller's), dates with
    a zone and a credentialStatus naming its list.
    """
    if not isinstance(credential, Mapping):
        raise BadInputError("credential is not an object")
    only_members(
        credential,
        {
            "@context",
            "id",
            "type",
            "issuer",
            "issuanceDate",
            "expirationDate",
            "credentialSubject",
            "credentialStatus",
        },
        {"proof"},
        f"{what} credential",
    )
    types = jsonutil.items_of(credential["type"], str, f"{what} credential type")
    if sorted(types) != sorted(["VerifiableCredential", vc_type]):
        raise BadInputError(f"credential is not a {vc_type}")
    credential_id = credential["id"]
    if not isinstance(credential_id, str) or not _UUID_URN_RE.match(credential_id):
        raise BadInputError(f"{what} id is not a urn:uuid")
    issuer = credential["issuer"]
    if not isinstance(issuer, str) or not keys.is_did_key(issuer):
        raise BadInputError(f"{what} issuer is not a did:key")
    subject = credential["credentialSubject"]
    if not isinstance(subject, Mapping):
        raise BadInputError(f"{what} subject is not an object")
    status = credential["credentialStatus"]
    if not isinstance(status, Mapping) or not isinstance(status.get("statusListCredential"), str):
        raise BadInputError(f"{what} credentialStatus is malformed")
    return CredentialFrame(
        id=credential_id,
        issuer=issuer,
        subject=subject,
        issued=_parse_date(credential["issuanceDate"], f"{what} issuanceDate"),
        expires=_parse_date(credential["expirationDate"], f"{what} expirationDate"),
        status=dict(status),
    )


@dataclass(frozen=True)
class GrantedRecord:
    """A record as the credential lists it (public: id, media type, commitment)."""

    id: str
    media_type: str
    commitment: str


@dataclass(frozen=True)
class GrantClaims:
    """The claims of a grant credential, checked for shape (not for truth)."""

    id: str
    issuer: str
    recipient: str
    purpose: str
    issued: datetime
    expires: datetime
    records: tuple[GrantedRecord, ...]
    envelope_digest: str
    status: dict[str, Any]
    vouched_by: str = ""  # the id of the ClinicianCredential that vouched for the recipient

    @classmethod
    def from_credential(cls, credential: Mapping[str, Any]) -> GrantClaims:
        """Check a credential has the shape of a grant; BadInputError if not."""
        frame = check_credential_frame(credential, GRANT_TYPE, "grant")
        subject = frame.subject
        only_members(
            subject, {"id", "purpose", "records", "envelopeDigest"}, {"vouchedBy"}, "grant"
        )
        recipient, purpose = subject["id"], subject["purpose"]
        if not isinstance(recipient, str) or not (
            keys.is_did_key(recipient) or didweb.is_did_web(recipient)
        ):
            raise BadInputError("grant recipient is not a did:key or did:web")
        if not isinstance(purpose, str) or not 0 < len(purpose) <= MAX_PURPOSE_CHARS:
            raise BadInputError("grant purpose is malformed")
        if not env.is_commitment(subject["envelopeDigest"]):
            raise BadInputError("grant envelope digest is malformed")
        records = subject["records"]
        if not isinstance(records, list) or not 1 <= len(records) <= env.MAX_RECORDS:
            raise BadInputError("grant must list at least one record")
        granted: list[GrantedRecord] = []
        for entry in records:
            if not isinstance(entry, Mapping):
                raise BadInputError("grant record is not an object")
            only_members(entry, {"id", "mediaType", "commitment"}, set(), "grant record")
            if (
                not env.is_record_id(entry["id"])
                or not isinstance(entry["mediaType"], str)
                or not env.is_commitment(entry["commitment"])
            ):
                raise BadInputError("grant record is malformed")
            granted.append(GrantedRecord(entry["id"], entry["mediaType"], entry["commitment"]))
        return cls(
            id=frame.id,
            issuer=frame.issuer,
            recipient=recipient,
            purpose=purpose,
            issued=frame.issued,
            expires=frame.expires,
            records=tuple(granted),
            envelope_digest=subject["envelopeDigest"],
            status=frame.status,
            vouched_by=str(subject.get("vouchedBy", "")),
        )


def _check_ldp_proof_form(proof: object) -> None:
    """Refuse a proof in any form but the one didkit writes.

    The spelling of ``created`` (which didkit reads into a date-time and writes back before
    hashing) is pinned with every other member by healthwallet.pinning, inside verify_proof.
    """
    if not isinstance(proof, Mapping):
        raise BadInputError("credential proof is not an object")
    only_members(
        proof, {"type", "proofPurpose", "verificationMethod", "created", "jws"}, set(), "proof"
    )
    jws = proof["jws"]
    if not isinstance(jws, str) or not _DETACHED_JWS_RE.match(jws):
        raise BadInputError("credential proof is not a detached JWS")
    header, _, signature = jws.split(".")
    env.b64d(header, "proof JWS header")
    env.b64d(signature, "proof JWS signature")


def only_members(
    value: Mapping[str, Any], required: set[str], optional: set[str], what: str
) -> None:
    """BadInputError unless ``value`` has every required member and no unknown one."""
    present = set(value)
    if not required <= present or not present <= required | optional:
        raise BadInputError(f"{what} has missing or unknown fields")


def _parse_date(text: object, what: str) -> datetime:
    if not isinstance(text, str) or not _DATE_RE.match(text):
        raise BadInputError(f"{what} is not an ISO 8601 date-time with a zone")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"{what} is not a valid date-time") from None
    return value.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """``moment`` as an ISO 8601 UTC time to the second, written with Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- verification policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One named check of a verdict."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON value."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    """Every check run on a grant; valid only when all passed."""

    grant_id: str
    issuer: str
    recipient: str
    expires: str
    records: tuple[str, ...]
    checks: tuple[Check, ...]
    purpose: str = ""
    issued: str = ""
    record_details: tuple[dict[str, Any], ...] = ()
    vouched_by: str = ""

    @property
    def valid(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    def check(self, name: str) -> Check | None:
        """The check called ``name``, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The verdict as a JSON value."""
        return {
            "grant_id": self.grant_id,
            "issuer": self.issuer,
            "recipient": self.recipient,
            "purpose": self.purpose,
            "issued": self.issued,
            "expires": self.expires,
            "records": [dict(r) for r in self.record_details] or [{"id": r} for r in self.records],
            "valid": self.valid,
            "checks": [c.to_json() for c in self.checks],
            "vouched_by": self.vouched_by or None,
        }

    def raise_for_failure(self) -> None:
        """Raise AccessDeniedError (wrong recipient) or VerificationError unless valid."""
        if self.valid:
            return
        recipient = self.check("recipient")
        if recipient is not None and not recipient.ok:
            raise AccessDeniedError(f"grant {self.grant_id} is not addressed to you")
        failed = "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)
        raise VerificationError(f"grant {self.grant_id} is not valid ({failed})")


@dataclass
class GrantContext:
    """What the policies look at: the file, the proof result and the claims."""

    grant: GrantFile
    proof: ProofResult
    claims: GrantClaims
    computed_digest: str | None = None


class Policy(Protocol):
    """A verification policy: ``check`` returns a detail or raises a HealthWalletError."""

    name: str

    def check(self, ctx: GrantContext) -> str:
        """Return a short detail on success; raise VerificationError on failure."""
        ...


class ProofPolicy:
    """The credential's proof verifies (didkit) and was made by the issuer."""

    name = "proof"

    def check(self, ctx: GrantContext) -> str:
        """Pass when didkit accepts the proof."""
        if not ctx.proof.ok:
            errors = ", ".join(ctx.proof.errors) or "rejected"
            raise VerificationError(f"proof does not verify ({errors})")
        return f"{ctx.proof.fmt} proof by {ctx.claims.issuer}"


class ValidityPolicy:
    """The grant is inside its validity window at ``at`` (or now), allowing ``skew``."""

    name = "validity"

    def __init__(
        self,
        now: datetime | None = None,
        at: datetime | None = None,
        skew: timedelta = DEFAULT_SKEW,
    ) -> None:
        self.moment = (at or now or datetime.now(UTC)).astimezone(UTC)
        self.skew = skew

    def check(self, ctx: GrantContext) -> str:
        """Pass when issuanceDate - skew <= moment < expirationDate + skew."""
        claims = ctx.claims
        # VC Data Model 1.1 §4.6 (issuanceDate) and §4.7 (expirationDate); didkit does not
        # check the expiry, so we do, on our own injectable clock.
        if self.moment + self.skew < claims.issued:
            raise VerificationError(f"not valid before {iso_utc(claims.issued)}")
        if self.moment - self.skew >= claims.expires:
            raise VerificationError(f"expired at {iso_utc(claims.expires)}")
        if claims.expires <= claims.issued:
            raise VerificationError("expires before it was issued")
        window = f"{iso_utc(claims.issued)} to {iso_utc(claims.expires)}"
        return f"valid {window} (checked at {iso_utc(self.moment)})"


class EnvelopePolicy:
    """The envelope digest matches the credential and the records line up with it."""

    name = "envelope"

    def check(self, ctx: GrantContext) -> str:
        """Pass when the computed digest equals the credential's envelopeDigest."""
        check_record_lineup(ctx)
        if ctx.computed_digest is None:
            raise VerificationError("envelope digest was not computed")
        if ctx.computed_digest != ctx.claims.envelope_digest:
            raise VerificationError("envelope digest does not match the credential")
        return f"sha256 {ctx.computed_digest}"


def check_record_lineup(ctx: GrantContext) -> None:
    """Raise unless the envelope carries exactly the credential's records, in order."""
    listed = [r.id for r in ctx.claims.records]
    carried = [r.id for r in ctx.grant.envelope.records]
    if listed != carried:
        raise VerificationError("envelope records do not match the credential's records")


class StatusPolicy:
    """The grant is not revoked, per its status list credential (file or URL)."""

    name = "status"

    def __init__(self, source: str | None = None, transport: Any = None) -> None:
        self.source = source
        self.transport = transport

    def check(self, ctx: GrantContext) -> str:
        """Pass when the status list, signed by the grant's issuer, has our bit clear."""
        # Do not fetch a URL named by a credential whose proof failed.
        if not ctx.proof.ok:
            raise VerificationError("not checked: the proof did not verify")
        entry = ctx.claims.status
        source = self.source or str(entry["statusListCredential"])
        try:
            status_vc = statuslist.load_status_list_credential(
                source, transport=self.transport, from_user=self.source is not None
            )
        except NetworkError as exc:
            raise VerificationError(f"status list could not be fetched ({exc.message})") from None
        except NotFoundError as exc:
            if self.source is None and source.startswith("file:"):
                # The issuer never published the list: it lives on their machine only.
                raise VerificationError(
                    f"status list is on the issuer's machine only ({source}); ask them for "
                    "the published list (`status publish`) and pass it with --status-list"
                ) from None
            raise VerificationError(f"status list is not usable ({exc.message})") from None
        except HealthWalletError as exc:
            raise VerificationError(f"status list is not usable ({exc.message})") from None
        try:
            # Checks the list's proof, its issuer (the grant's), its id and purpose.
            revoked = statuslist.check_status(entry, status_vc, ctx.claims.issuer)
        except HealthWalletError as exc:
            raise VerificationError(
                f"status list does not fit this grant ({exc.message})"
            ) from None
        if revoked:
            raise VerificationError("revoked by the issuer")
        return f"not revoked (list {entry['statusListCredential']})"


class RecipientPolicy:
    """The grant is addressed to this wallet: its did:key, or a did:web it answers to."""

    name = "recipient"

    def __init__(self, my_did: str, also_me: Sequence[str] = ()) -> None:
        self.my_dids = (my_did, *also_me)

    def check(self, ctx: GrantContext) -> str:
        """Pass when credentialSubject.id is one of my DIDs."""
        if ctx.claims.recipient not in self.my_dids:
            raise AccessDeniedError("not addressed to you")
        return f"addressed to {ctx.claims.recipient}"


def default_anchor_verifier(issuer: str) -> AnchorVerifier:
    """healthwallet.anchors.verify_portable_proof, expecting local receipts signed by ``issuer``."""
    from .anchors import verify_portable_proof

    def verify(proof: Mapping[str, Any], commitment_hex: str) -> object:
        return verify_portable_proof(proof, commitment_hex, expected_signer=issuer)

    return verify


class AnchorsPolicy:
    """Each anchor proof the envelope carries proves its record's commitment."""

    name = "anchors"

    def __init__(
        self,
        verifier: AnchorVerifier | None = None,
        factory: Callable[[str], AnchorVerifier] | None = None,
        require_ledger: bool = False,
    ) -> None:
        self.verifier = verifier
        self.factory = factory or default_anchor_verifier
        # When the caller asked the ledger itself (verify --check-ledger), an unreachable
        # ledger fails the check instead of passing as "not confirmed".
        self.require_ledger = require_ledger

    def check(self, ctx: GrantContext) -> str:
        """Pass when every carried anchor proof verifies against the credential's commitment."""
        verifier = self.verifier or self.factory(ctx.claims.issuer)
        commitments = {r.id: r.commitment for r in ctx.claims.records}
        unconfirmed = 0
        for anchor in ctx.grant.envelope.anchors:
            record_id, proof = anchor["record"], anchor["proof"]
            if proof.get("record", record_id) != record_id:
                raise VerificationError(f"record {record_id}: anchor proof is for another record")
            try:
                outcome = verifier(proof, commitments[record_id])
            except NetworkError as exc:
                if self.require_ledger:
                    raise VerificationError(
                        f"record {record_id}: the ledger could not be asked ({exc.message})"
                    ) from None
                unconfirmed += 1
                continue
            except HealthWalletError as exc:
                raise VerificationError(
                    f"record {record_id}: anchor proof fails ({exc.message})"
                ) from None
            if outcome is False or getattr(outcome, "ok", True) is False:
                raise VerificationError(f"record {record_id}: anchor proof fails")
        count = len(ctx.grant.envelope.anchors)
        if unconfirmed:
            return f"{count} anchor proofs; {unconfirmed} not confirmed (ledger unreachable)"
        return f"{count} anchor proofs verify"


def run_policies(ctx: GrantContext, policies: Sequence[Policy]) -> tuple[Check, ...]:
    """Run every policy, turning each outcome into a named check."""
    checks: list[Check] = []
    for policy in policies:
        try:
            detail = policy.check(ctx)
        except HealthWalletError as exc:
            checks.append(Check(policy.name, False, exc.message))
        else:
            checks.append(Check(policy.name, True, detail))
    return tuple(checks)


def _load(src: BinaryIO) -> tuple[GrantFile, ProofResult, GrantClaims]:
    grant = read_grant_header(src)
    return (grant, *_check_credential(grant))


def verify_file_credential(credential: dict[str, Any] | str, what: str) -> ProofResult:
    """Verify the proof of a grant's or share's credential; BadInputError if it is unreadable.

    A JSON-LD proof must be in the one form didkit writes (see _check_ldp_proof_form).
    """
    if isinstance(credential, dict):
        _check_ldp_proof_form(credential.get("proof"))
    try:
        return verify_proof(credential)
    except HealthWalletError:
        raise
    except Exception:  # didkit edge cases must not escape as a crash
        raise BadInputError(f"{what} credential could not be read") from None


def _check_credential(grant: GrantFile) -> tuple[ProofResult, GrantClaims]:
    proof = verify_file_credential(grant.credential, "grant")
    return proof, GrantClaims.from_credential(proof.credential)


def _record_details(claims: GrantClaims, grant: GrantFile) -> tuple[dict[str, Any], ...]:
    """Each record's id and media type, and where its anchor proof says it was anchored."""
    anchored: dict[str, Mapping[str, Any]] = {}
    for anchor in grant.envelope.anchors:
        proof = anchor.get("proof")
        if isinstance(proof, Mapping):
            anchored[str(anchor.get("record"))] = proof
    details = []
    for record in claims.records:
        detail: dict[str, Any] = {"id": record.id, "media_type": record.media_type}
        proof = anchored.get(record.id)
        if proof is not None:
            detail["anchored_at"] = proof.get("anchored_at")
            detail["ledger"] = proof.get("ledger")
        details.append(detail)
    return tuple(details)


def _verdict(claims: GrantClaims, checks: tuple[Check, ...], grant: GrantFile) -> Verdict:
    return Verdict(
        grant_id=claims.id,
        issuer=claims.issuer,
        recipient=claims.recipient,
        expires=iso_utc(claims.expires),
        records=tuple(r.id for r in claims.records),
        checks=checks,
        purpose=claims.purpose,
        issued=iso_utc(claims.issued),
        record_details=_record_details(claims, grant),
        vouched_by=claims.vouched_by,
    )


def _policies(
    *,
    identity: keys.Identity | None,
    status_source: str | None,
    now: datetime | None,
    at: datetime | None,
    skew: timedelta,
    transport: Any,
    anchored: bool,
    anchor_verifier: AnchorVerifier | None,
    with_envelope: bool,
    recipient_did: str | None = None,
    anchor_verifier_for: Callable[[str], AnchorVerifier] | None = None,
    also_me: Sequence[str] = (),
) -> list[Policy]:
    policies: list[Policy] = [ProofPolicy(), ValidityPolicy(now=now, at=at, skew=skew)]
    if with_envelope:
        policies.append(EnvelopePolicy())
    policies.append(StatusPolicy(status_source, transport))
    my_did = identity.did if identity is not None else recipient_did
    if my_did is not None:
        policies.append(RecipientPolicy(my_did, also_me))
    if anchored:
        policies.append(
            AnchorsPolicy(
                anchor_verifier, anchor_verifier_for, require_ledger=anchor_verifier_for is not None
            )
        )
    return policies


def verify_grant(
    src: BinaryIO,
    *,
    identity: keys.Identity | None = None,
    status_source: str | None = None,
    now: datetime | None = None,
    at: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
    transport: Any = None,
    anchor_verifier: AnchorVerifier | None = None,
    recipient_did: str | None = None,
    anchor_verifier_for: Callable[[str], AnchorVerifier] | None = None,
    also_me: Sequence[str] = (),
) -> Verdict:
    """Check a grant file without decrypting it; BadInputError if it is not a grant.

    ``recipient_did`` (or ``identity``) adds the recipient check, which ``also_me`` (the
    did:web names the verifier answers to) widens; ``anchor_verifier_for`` builds the anchor
    verifier from the issuer's DID (default: offline proof checks).
    """
    grant = read_grant_header(src)
    # Hash the payload while didkit checks the proofs (hashlib and didkit release the GIL).
    hashing = _DigestInBackground(grant, src)
    try:
        proof, claims = _check_credential(grant)
        ctx = GrantContext(grant, proof, claims)
        policies = _policies(
            identity=identity,
            status_source=status_source,
            now=now,
            at=at,
            skew=skew,
            transport=transport,
            anchored=bool(grant.envelope.anchors),
            anchor_verifier=anchor_verifier,
            with_envelope=True,
            recipient_did=recipient_did,
            anchor_verifier_for=anchor_verifier_for,
            also_me=also_me,
        )
        first = [p for p in policies if p.name != EnvelopePolicy.name]
        checks = {c.name: c for c in run_policies(ctx, first)}
        ctx.computed_digest = hashing.result()
        checks.update((c.name, c) for c in run_policies(ctx, [EnvelopePolicy()]))
    finally:
        hashing.stop()
    return _verdict(claims, tuple(checks[p.name] for p in policies), grant)


# -- opening --------------------------------------------------------------------------------------


def _candidates(name: str) -> Iterator[str]:
    yield name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    for number in range(2, 10_000):
        yield f"{stem} ({number}).{suffix}" if suffix else f"{stem} ({number})"


@dataclass
class _Staged:
    record_id: str
    tmp: str
    name: str
    commitment: Any
    expected: str
    final: str | None = None


def open_grant(
    src: BinaryIO,
    identity: keys.Identity,
    out_dir: Path,
    *,
    status_source: str | None = None,
    now: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
    transport: Any = None,
    anchor_verifier: AnchorVerifier | None = None,
    random_bytes: RandomBytes = os.urandom,
    also_me: Sequence[str] = (),
    journal: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[OpenedRecord]:
    """Verify a grant addressed to ``identity`` (or a did:web in ``also_me`` it answers to)
    and decrypt its records into ``out_dir`` (``journal``: see safewrite.sweep_journal;
    ``on_progress`` is told the plaintext bytes written)."""
    grant, proof, claims = _load(src)
    ctx = GrantContext(grant, proof, claims)
    policies = _policies(
        identity=identity,
        status_source=status_source,
        now=now,
        at=None,
        skew=skew,
        transport=transport,
        anchored=bool(grant.envelope.anchors),
        anchor_verifier=anchor_verifier,
        with_envelope=False,
        also_me=also_me,
    )
    # Recipient first: a grant for someone else is refused before anything else is read.
    policies.sort(key=lambda p: p.name != "recipient")
    _verdict(claims, run_policies(ctx, policies), grant).raise_for_failure()
    check_record_lineup(ctx)
    file_key = env.unseal_file_key(
        grant.envelope.stanzas, identity.x25519_public, identity.x25519_private
    )

    created_dir = not out_dir.exists()
    staged: list[_Staged] = []
    target = OutputDir(out_dir, create=True, random_bytes=random_bytes, journal=journal)
    # Two workers: the ciphertext digest and the commitments each take as long as decrypting.
    worker, envelope_worker = HashWorker(), HashWorker()
    try:
        digest = hashlib.sha256(grant.envelope_bytes)
        for index, (carried, listed) in enumerate(
            zip(grant.envelope.records, claims.records, strict=True)
        ):
            _decrypt_one(
                src,
                target,
                file_key,
                index,
                carried,
                listed,
                envelope_worker.feed(digest),
                worker,
                staged,
                on_progress,
            )
        _expect_end(src)
        worker.finish()
        envelope_worker.finish()
        for item in staged:
            if item.commitment.hexdigest() != item.expected:
                raise VerificationError(
                    f"record {item.record_id}: content does not match its commitment"
                )
        ctx.computed_digest = digest.hexdigest()
        EnvelopePolicy().check(ctx)
        for item in staged:
            item.final = target.place_new(item.tmp, _candidates(item.name))
            if item.final is None:
                raise StorageError("cannot find a free file name in the output directory")
    except BaseException as exc:
        worker.abandon()
        envelope_worker.abandon()
        for item in staged:
            if item.final is not None:
                with contextlib.suppress(OSError):
                    os.unlink(item.final, dir_fd=target.fd)
        target.close()  # removes every temp file not placed
        if created_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write the opened records ({exc.strerror})") from None
        raise
    target.close()
    return [
        {"id": item.record_id, "path": str(out_dir / str(item.final)), "verified": True}
        for item in staged
    ]


def _decrypt_one(
    src: BinaryIO,
    target: OutputDir,
    file_key: bytes,
    index: int,
    carried: env.EnvelopeRecord,
    listed: GrantedRecord,
    digest: Any,
    worker: HashWorker,
    staged: list[_Staged],
    on_progress: ProgressCallback | None,
) -> None:
    record_keys = env.record_keys(file_key, index, carried.id)
    meta = env.RecordMeta.open(carried.meta, record_keys, carried.id)
    if meta.media_type != listed.media_type or meta.size != env.plaintext_length(carried.length):
        raise VerificationError(f"record {carried.id}: metadata does not match the credential")
    tmp, out = target.new_temp()
    commitment = hashlib.sha256(meta.salt)
    # Staged before the first write, so a failure anywhere removes it.
    staged.append(
        _Staged(
            carried.id,
            tmp,
            safe_file_name(meta.name, f"record-{index + 1}"),
            commitment,
            listed.commitment,
        )
    )
    consume = consumer(worker.feed(commitment), on_progress)
    with out:
        reader = _payload_reader(src, carried.length, digest)
        try:
            for chunk in env.decrypt_record(record_keys, cast(BinaryIO, reader)):
                consume(chunk)
                out.write(chunk)
        except VerificationError:
            raise VerificationError(
                f"record {carried.id}: ciphertext failed authentication"
            ) from None
        out.flush()
        os.fsync(out.fileno())


# -- issuing --------------------------------------------------------------------------------------


def new_grant_id(random_bytes: RandomBytes = os.urandom) -> str:
    """A fresh ``urn:uuid:`` (version 4) grant id."""
    return uuid.UUID(bytes=random_bytes(16), version=4).urn


def _check_records(records: Sequence[GrantRecord]) -> None:
    if not records:
        raise UsageError("a grant needs at least one record")
    if len(records) > env.MAX_RECORDS:
        raise UsageError(f"a grant holds at most {env.MAX_RECORDS} records")
    seen: set[str] = set()
    for record in records:
        if not env.is_record_id(record.id) or record.id in seen:
            raise UsageError("record ids must be unique, printable and without spaces")
        seen.add(record.id)
        if len(record.salt) != env.SALT_BYTES or not env.is_commitment(record.commitment):
            raise UsageError(f"record {record.id}: salt or commitment is malformed")
        if not isinstance(record.media_type, str) or not record.media_type:
            raise UsageError(f"record {record.id}: media type is missing")
        if type(record.size) is not int or not 0 <= record.size <= env.MAX_RECORD_BYTES // 2:
            raise UsageError(f"record {record.id}: size is out of range")


class _HashingWriter:
    def __init__(self, dst: BinaryIO, digest: Any) -> None:
        self._dst = dst
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._dst.write(data)


def _recipient_x25519(recipient_did: str, key: didweb.KeyAgreement | None) -> bytes:
    if recipient_did.startswith(didweb.PREFIX):
        didweb.document_url(recipient_did)
        if key is None or key.did != recipient_did:
            raise UsageError(f"no key-agreement key resolved for {recipient_did}")
        return key.x25519_public
    if key is not None:
        raise UsageError("a did:key recipient's key comes from the DID itself")
    return keys.x25519_public_from_did(recipient_did)


def issue_grant(
    out: BinaryIO,
    identity: keys.Identity,
    recipient_did: str,
    records: Sequence[GrantRecord],
    *,
    purpose: str,
    expires: datetime,
    credential_status: Mapping[str, Any],
    fmt: Format = "ldp",
    now: datetime | None = None,
    grant_id: str | None = None,
    anchors: Mapping[str, Mapping[str, Any]] | None = None,
    random_bytes: RandomBytes = os.urandom,
    spool_dir: Path | None = None,
    recipient_key: didweb.KeyAgreement | None = None,
    vouched_by: str | None = None,
) -> GrantSummary:
    """Write a grant giving ``recipient_did`` the ``records`` to ``out``; returns a summary.

    A did:key recipient's X25519 key is derived from the DID; a did:web recipient's comes
    from its DID document, resolved beforehand (``didweb.resolve_key_agreement``).
    """
    issued = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    recipient_x25519 = _recipient_x25519(recipient_did, recipient_key)
    if expires.tzinfo is None:
        raise UsageError("the expiry needs a time zone")
    if expires.astimezone(UTC) <= issued:
        raise UsageError("the expiry must be in the future")
    if not isinstance(purpose, str) or not 0 < len(purpose) <= MAX_PURPOSE_CHARS:
        raise UsageError(f"the purpose must be 1 to {MAX_PURPOSE_CHARS} characters")
    _check_records(records)
    anchors = anchors or {}
    if set(anchors) - {r.id for r in records}:
        raise UsageError("anchor proofs given for records not in the grant")
    grant_id = grant_id or new_grant_id(random_bytes)

    file_key = env.new_file_key(random_bytes)
    stanza = env.seal_file_key(file_key, recipient_x25519, random_bytes)
    entries: list[env.EnvelopeRecord] = []
    all_keys: list[env.RecordKeys] = []
    for index, record in enumerate(records):
        record_keys = env.record_keys(file_key, index, record.id)
        meta = env.RecordMeta(record.name, record.media_type, record.salt, record.size)
        entries.append(
            env.EnvelopeRecord(
                record.id,
                stream.ciphertext_size(record.size),
                meta.seal(record_keys, random_bytes),
            )
        )
        all_keys.append(record_keys)
    envelope = env.EnvelopeHeader(
        stanzas=(stanza,),
        records=tuple(entries),
        anchors=tuple({"record": rid, "proof": dict(proof)} for rid, proof in anchors.items()),
    )
    envelope_bytes = envelope.to_bytes()

    with tempfile.TemporaryFile(dir=spool_dir) as spool:  # holds ciphertext only
        digest = hashlib.sha256(envelope_bytes)
        commitments: list[Any] = []
        with hashing() as worker, hashing() as envelope_worker:
            writer = cast(
                BinaryIO, _HashingWriter(cast(BinaryIO, spool), envelope_worker.feed(digest))
            )
            for record, record_keys in zip(records, all_keys, strict=True):
                commitments.append(hashlib.sha256(record.salt))
                with record.open() as plaintext:
                    size = env.encrypt_record(
                        record_keys, plaintext, writer, worker.feed(commitments[-1]).update
                    )
                if size != record.size:
                    raise VerificationError(
                        f"record {record.id}: content does not match its commitment",
                        "run `healthwallet doctor`: it checks every record against its commitment",
                    )
        for record, commitment in zip(records, commitments, strict=True):
            if commitment.hexdigest() != record.commitment:
                raise VerificationError(
                    f"record {record.id}: content does not match its commitment",
                    "run `healthwallet doctor`: it checks every record against its commitment",
                )
        envelope_digest = digest.hexdigest()
        credential = {
            "@context": list(GRANT_VOUCHED_CONTEXT if vouched_by else GRANT_CONTEXT),
            "id": grant_id,
            "type": ["VerifiableCredential", GRANT_TYPE],
            "issuer": identity.did,
            "issuanceDate": iso_utc(issued),
            "expirationDate": iso_utc(expires),
            "credentialSubject": {
                "id": recipient_did,
                "purpose": purpose,
                "records": [
                    {"id": r.id, "mediaType": r.media_type, "commitment": r.commitment}
                    for r in records
                ],
                "envelopeDigest": envelope_digest,
                **({"vouchedBy": vouched_by} if vouched_by else {}),
            },
            "credentialStatus": dict(credential_status),
        }
        signed = issue_credential(credential, identity, fmt, issued)
        header = env.canonical_json({"credential": signed, "envelope": envelope.to_json()})
        if len(header) > MAX_HEADER_BYTES:
            raise UsageError("too many records for one grant (header too large)")
        out.write(MAGIC + struct.pack(">I", len(header)) + header)
        spool.seek(0)
        shutil.copyfileobj(spool, out, _IO_BLOCK)
        written = len(MAGIC) + 4 + len(header) + envelope.payload_length
    out.flush()
    return {
        "grant_id": grant_id,
        "issuer": identity.did,
        "recipient": recipient_did,
        "issued": iso_utc(issued),
        "expires": iso_utc(expires),
        "records": [r.id for r in records],
        "envelope_digest": envelope_digest,
        "status_list": str(credential_status.get("statusListCredential", "")),
        "status_index": int(credential_status.get("statusListIndex", -1)),
        "format": fmt,
        "bytes": written,
    }
