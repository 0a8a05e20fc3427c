"""Share files: de-identified FHIR for a research group, bound to the patient's consent.

Spec: docs/format-share.md. A share is one file: a magic line, a length-prefixed canonical JSON
header holding the signed consent (VC Data Model 1.1, ``ResearchDataConsent``) and an envelope
header (the grant's, docs/format-grant.md), then one encrypted record: the de-identified dataset
as FHIR NDJSON. The dataset's key is sealed to the research group's did:key. The consent names
the study, the purpose, the data categories (resource types), the de-identification policy and
its digest, the expiry, a revocation status entry, and the SHA-256 of the envelope header and
the ciphertext (``datasetDigest``), so the patient's signature covers every byte of the file.

De-identification itself is healthwallet.deid; this module packages, checks and opens.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, TypedDict

from . import envelope as env
from . import jsonutil, keys, statuslist, stream, studyid
from .contexts import CONSENT_CONTEXT, CONSENT_TYPE
from .credentials import Format, ProofResult, issue_credential
from .deid import Policy, PseudonymKeys, deidentify, parse_fhir_json
from .deid._fhir import R4_RESOURCE_TYPES
from .errors import (
    AccessDeniedError,
    BadInputError,
    HealthWalletError,
    UsageError,
    VerificationError,
)
from .grants import (
    check_credential_frame,
    iso_utc,
    new_grant_id,
    only_members,
    verify_file_credential,
)

MAGIC = b"healthwallet-share/v1\n"
_GRANT_MAGIC_PREFIX = b"healthwallet-grant/"
MAX_HEADER_BYTES = 16 * 1024 * 1024
_TRUNCATED = "share file is truncated (the dataset is cut short)"
_TRAILING = "share file has data after the dataset"
DATASET_ID = "dataset"
DATASET_NAME = "dataset.ndjson"
DATASET_MEDIA_TYPE = "application/fhir+ndjson"
MAX_DATASET_BYTES = 256 * 1024 * 1024
MAX_PURPOSE_CHARS = 1000
MAX_CATEGORIES = len(R4_RESOURCE_TYPES)
DEFAULT_SKEW = timedelta(seconds=60)
# Study ids are identifiers (they go into the audit log and the consent): no spaces. The
# patterns below end in \Z, not $, which would also match before a trailing newline.
_STUDY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}\Z")
_HEX64_RE = re.compile(r"[0-9a-f]{64}\Z")
_POLICY_NAME_RE = re.compile(r"[\x20-\x7e]{1,200}\Z")
_IO_BLOCK = 1024 * 1024
_MAX_CACHED_LISTS = 256

RandomBytes = Callable[[int], bytes]

__all__ = [
    "DATASET_MEDIA_TYPE",
    "MAGIC",
    "ConsentCheck",
    "ConsentClaims",
    "Dataset",
    "OpenedShare",
    "ShareFile",
    "ShareSummary",
    "ShareVerdict",
    "StatusLists",
    "check_credential",
    "check_study",
    "consent_checks",
    "decrypt_dataset",
    "flatten",
    "issue_share",
    "open_share",
    "prepare_dataset",
    "pseudonym_keys",
    "read_share_header",
    "verify_share",
]


def check_study(study: object) -> str:
    """A study id as given, or UsageError: 1-200 characters, letters, digits and ``._:/@+-``."""
    if not isinstance(study, str) or not _STUDY_RE.match(study):
        raise UsageError(
            "the study id must be 1-200 letters, digits or . _ : / @ + - (no spaces)",
            "use the study's registry id, e.g. NCT01234567 or urn:study:cardio-2026",
        )
    return study


def pseudonym_keys(identity: keys.Identity, study: str) -> PseudonymKeys:
    """The patient's pseudonym keys for ``study``: linkable within it, unlinkable across."""
    return PseudonymKeys.derive(identity.deid_secret, check_study(study))


# -- the dataset ----------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes (RFC 8785 for the values FHIR JSON holds)."""
    return env.canonical_json(value)


def _references(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object under ``node`` with a string ``reference`` (iterative walk)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def flatten(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """A resource, or a Bundle's entries as separate resources with references kept resolvable.

    Inside a Bundle, a reference to an entry's ``fullUrl`` becomes ``Type/id`` of that entry,
    so the resources still point at each other once they leave the Bundle (FHIR bulk data
    NDJSON has no ``fullUrl``). Works on de-identified output: nothing here adds information.
    """
    if resource.get("resourceType") != "Bundle":
        return [resource]
    inner: list[dict[str, Any]] = []
    targets: dict[str, str] = {}
    for entry in resource.get("entry") or []:
        found = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(found, dict):
            continue
        full_url, resource_id = entry.get("fullUrl"), found.get("id")
        if isinstance(full_url, str) and isinstance(resource_id, str):
            targets[full_url] = f"{found['resourceType']}/{resource_id}"
        inner.append(found)
    out: list[dict[str, Any]] = []
    for found in inner:
        for holder in _references(found):
            target = targets.get(holder["reference"])
            if target is not None:
                holder["reference"] = target
        out.extend(flatten(found))
    return out


UNBUNDLE = "unbundle"
"""Dry-run action for a Bundle's own fields: dropped, because Bundles are unpacked."""
_REMOVED_ACTIONS = frozenset({"redact", "remove"})


@dataclass
class Dataset:
    """De-identified resources ready to share, and what de-identification did (no values)."""

    resources: list[dict[str, Any]]
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def categories(self) -> list[str]:
        """The resource types in the dataset, sorted (the consent's data categories)."""
        return sorted({str(r["resourceType"]) for r in self.resources})

    def ndjson(self) -> bytes:
        """The dataset as FHIR NDJSON: one canonical JSON resource per line."""
        return b"".join(canonical_json(r) + b"\n" for r in self.resources)


def prepare_dataset(
    records: Sequence[tuple[str, bytes]],
    policy: Policy,
    pseudonyms: PseudonymKeys,
    *,
    now: datetime | None = None,
) -> Dataset:
    """De-identify FHIR records (id, JSON bytes) into one flat, de-duplicated dataset."""
    resources: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    counts: dict[tuple[str, str], int] = {}
    for record_id, content in records:
        try:
            parsed = parse_fhir_json(content)
            result = deidentify(parsed, policy, pseudonyms, now=now, report=True)
        except BadInputError as exc:
            raise BadInputError(
                f"record {record_id}: {exc.message}",
                "only FHIR R4 JSON resources and Bundles can be de-identified",
            ) from None
        for change in result.summary():
            action = change["action"]
            if change["path"].startswith("Bundle.") and action not in _REMOVED_ACTIONS:
                action = UNBUNDLE  # the Bundle itself never leaves: flatten() unpacks it
            key = (change["path"], action)
            counts[key] = counts.get(key, 0) + int(change["count"])
        for resource in flatten(result.resource):
            try:
                fingerprint = canonical_json(resource)
            except ValueError:
                raise BadInputError(
                    f"record {record_id}: holds a number JSON does not allow (NaN or Infinity)",
                    "fix the record's FHIR JSON",
                ) from None
            if fingerprint not in seen:  # the same resource shared twice says nothing new
                seen.add(fingerprint)
                resources.append(resource)
    changes = [
        {"path": path, "action": action, "count": count}
        for (path, action), count in sorted(counts.items())
    ]
    return Dataset(resources, changes)


def parse_ndjson(plaintext: bytes) -> list[dict[str, Any]]:
    """FHIR resources from NDJSON; BadInputError when a line is not a FHIR R4 resource."""
    if plaintext and not plaintext.endswith(b"\n"):
        raise BadInputError("the dataset does not end with a newline")
    resources: list[dict[str, Any]] = []
    for number, line in enumerate(plaintext.split(b"\n")[:-1], start=1):
        try:
            resource = parse_fhir_json(line)
            canonical_json(resource)  # NaN and Infinity parse, but are not JSON
        except BadInputError as exc:
            raise BadInputError(f"dataset line {number}: {exc.message}") from None
        except ValueError:
            raise BadInputError(f"dataset line {number}: holds NaN or Infinity") from None
        resources.append(resource)
    return resources


# -- the consent ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentClaims:
    """The claims of a ResearchDataConsent, checked for shape (not for truth)."""

    id: str
    issuer: str
    recipient: str
    study: str
    purpose: str
    categories: tuple[str, ...]
    policy: str
    policy_digest: str
    dataset_digest: str
    issued: datetime
    expires: datetime
    status: dict[str, Any]

    @classmethod
    def from_credential(cls, credential: Mapping[str, Any]) -> ConsentClaims:
        """Check a credential has the shape of a consent (docs/format-share.md); else BadInput."""
        frame = check_credential_frame(credential, CONSENT_TYPE, "consent")
        subject = frame.subject
        only_members(
            subject,
            {"id", "study", "purpose", "dataCategories", "policy", "policyDigest", "datasetDigest"},
            set(),
            "consent subject",
        )
        recipient = subject["id"]
        if not isinstance(recipient, str) or not keys.is_did_key(recipient):
            raise BadInputError("consent recipient is not a did:key")
        study = subject["study"]
        if not isinstance(study, str) or not _STUDY_RE.match(study):
            raise BadInputError("consent study id is malformed")
        purpose = subject["purpose"]
        if not isinstance(purpose, str) or not 0 < len(purpose) <= MAX_PURPOSE_CHARS:
            raise BadInputError("consent purpose is malformed")
        categories = subject["dataCategories"]
        if (
            not isinstance(categories, list)
            or not 0 < len(categories) <= MAX_CATEGORIES
            or not all(isinstance(c, str) and c in R4_RESOURCE_TYPES for c in categories)
            or len(set(categories)) != len(categories)
        ):
            raise BadInputError("consent data categories are not FHIR R4 resource types")
        if categories != sorted(categories):
            # A JSON-LD @set is signed without its order: only one order is let through, so
            # a reordered copy (same signature, other bytes) is refused.
            raise BadInputError("consent data categories are not in sorted order")
        policy = subject["policy"]
        if not isinstance(policy, str) or not _POLICY_NAME_RE.match(policy):
            raise BadInputError("consent policy name is malformed")
        for member in ("policyDigest", "datasetDigest"):
            if not isinstance(subject[member], str) or not _HEX64_RE.match(subject[member]):
                raise BadInputError(f"consent {member} is not a lower-case hex SHA-256")
        return cls(
            id=frame.id,
            issuer=frame.issuer,
            recipient=recipient,
            study=study,
            purpose=purpose,
            categories=tuple(categories),
            policy=policy,
            policy_digest=subject["policyDigest"],
            dataset_digest=subject["datasetDigest"],
            issued=frame.issued,
            expires=frame.expires,
            status=frame.status,
        )


# -- writing --------------------------------------------------------------------------------------


class ShareSummary(TypedDict):
    """What :func:`issue_share` reports (ids, DIDs, times and counts only)."""

    share_id: str
    issuer: str
    recipient: str
    study: str
    issued: str
    expires: str
    resources: int
    categories: list[str]
    policy: str
    policy_digest: str
    dataset_digest: str
    status_list: str
    status_index: int
    bytes: int


def _policy_hex(policy: Policy) -> str:
    return policy.digest.removeprefix("sha256:")


def issue_share(
    out: BinaryIO,
    identity: keys.Identity,
    recipient_did: str,
    dataset: Dataset,
    *,
    study: str,
    purpose: str,
    policy: Policy,
    expires: datetime,
    credential_status: Mapping[str, Any],
    now: datetime | None = None,
    share_id: str | None = None,
    fmt: Format = "ldp",
    random_bytes: RandomBytes = os.urandom,
) -> ShareSummary:
    """Seal ``dataset`` to ``recipient_did`` and write it with a signed consent to ``out``.

    ``identity`` signs the consent: the CLI passes the per-study identity
    (:func:`healthwallet.studyid.study_identity`). The issuance time is the day's start and the
    dataset is padded (docs/format-share.md, "Unlinkability across studies")."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    issued = studyid.coarse_issued(moment)
    recipient_x25519 = keys.x25519_public_from_did(recipient_did)
    if recipient_did == identity.did:
        raise UsageError("a share to yourself is pointless", "give the research group's did:key")
    check_study(study)
    if expires.tzinfo is None:
        raise UsageError("the expiry needs a time zone")
    if expires.astimezone(UTC) <= moment:
        raise UsageError("the expiry must be in the future")
    if not isinstance(purpose, str) or not 0 < len(purpose) <= MAX_PURPOSE_CHARS:
        raise UsageError(f"the purpose must be 1 to {MAX_PURPOSE_CHARS} characters")
    if not dataset.resources:
        raise UsageError("nothing is left to share after de-identification")
    plaintext = dataset.ndjson()
    if len(plaintext) > MAX_DATASET_BYTES:
        raise UsageError("the de-identified dataset is larger than 256 MiB", "share fewer records")
    plaintext = studyid.pad_dataset(plaintext)
    share_id = share_id or new_grant_id(random_bytes)

    file_key = env.new_file_key(random_bytes)
    stanza = env.seal_file_key(file_key, recipient_x25519, random_bytes)
    record_keys = env.record_keys(file_key, 0, DATASET_ID)
    # The salt is unused by shares (no commitment); it keeps the grant's metadata layout.
    salt = random_bytes(env.SALT_BYTES)
    meta = env.RecordMeta(DATASET_NAME, DATASET_MEDIA_TYPE, salt, len(plaintext))
    ciphertext = io.BytesIO()
    env.encrypt_record(record_keys, io.BytesIO(plaintext), ciphertext)
    payload = ciphertext.getvalue()
    envelope = env.EnvelopeHeader(
        stanzas=(stanza,),
        records=(
            env.EnvelopeRecord(DATASET_ID, len(payload), meta.seal(record_keys, random_bytes)),
        ),
    )
    envelope_json = envelope.to_json()
    dataset_digest = hashlib.sha256(env.canonical_json(envelope_json) + payload).hexdigest()
    categories = dataset.categories
    credential = {
        "@context": list(CONSENT_CONTEXT),
        "id": share_id,
        "type": ["VerifiableCredential", CONSENT_TYPE],
        "issuer": identity.did,
        "issuanceDate": iso_utc(issued),
        "expirationDate": iso_utc(expires),
        "credentialSubject": {
            "id": recipient_did,
            "study": study,
            "purpose": purpose,
            "dataCategories": categories,
            "policy": policy.name,
            "policyDigest": _policy_hex(policy),
            "datasetDigest": dataset_digest,
        },
        "credentialStatus": dict(credential_status),
    }
    signed = issue_credential(credential, identity, fmt, issued)
    header = env.canonical_json({"credential": signed, "envelope": envelope_json})
    if len(header) > MAX_HEADER_BYTES:
        raise UsageError("the share header is too large")
    out.write(MAGIC + struct.pack(">I", len(header)) + header)
    out.write(payload)
    out.flush()
    return {
        "share_id": share_id,
        "issuer": identity.did,
        "recipient": recipient_did,
        "study": study,
        "issued": iso_utc(issued),
        "expires": iso_utc(expires),
        "resources": len(dataset.resources),
        "categories": categories,
        "policy": policy.name,
        "policy_digest": policy.digest,
        "dataset_digest": dataset_digest,
        "status_list": str(credential_status.get("statusListCredential", "")),
        "status_index": int(credential_status.get("statusListIndex", -1)),
        "bytes": len(MAGIC) + 4 + len(header) + len(payload),
    }


# -- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareFile:
    """The parsed header of a share file (nothing verified yet)."""

    credential: dict[str, Any] | str
    envelope: env.EnvelopeHeader
    envelope_bytes: bytes
    payload_offset: int

    @property
    def dataset_length(self) -> int:
        """Bytes of dataset ciphertext after the header."""
        return self.envelope.records[0].length


def read_share_header(src: BinaryIO) -> ShareFile:
    """Read the magic line and header (``src`` is left at the dataset); BadInputError if not."""
    try:
        magic = stream.read_full(src, len(MAGIC))
        if magic != MAGIC:
            if magic.startswith(b"healthwallet-share/"):
                raise BadInputError(
                    "unsupported share file version", "upgrade healthwallet to read this share"
                )
            if magic.startswith(_GRANT_MAGIC_PREFIX):
                raise BadInputError(
                    "this is a grant file, not a research share", "use `healthwallet open`"
                )
            raise BadInputError("not a healthwallet share file (wrong or missing magic line)")
    except OSError as exc:
        raise BadInputError(f"cannot read the share file ({exc.strerror})") from None
    credential, envelope, envelope_bytes, length = env.read_framed_header(
        src, "share", MAX_HEADER_BYTES
    )
    if len(envelope.records) != 1 or envelope.records[0].id != DATASET_ID:
        raise BadInputError("share envelope must carry exactly one record, the dataset")
    if envelope.anchors:
        raise BadInputError("share envelope carries anchors (a share has none)")
    if env.plaintext_length(envelope.records[0].length) > MAX_DATASET_BYTES:
        raise BadInputError("share dataset is larger than 256 MiB")
    offset = len(MAGIC) + 4 + length
    env.check_payload_size(
        src,
        offset,
        envelope.payload_length,
        _TRUNCATED,
        _TRAILING,
    )
    return ShareFile(credential, envelope, envelope_bytes, offset)


def check_credential(share: ShareFile) -> tuple[ProofResult, ConsentClaims]:
    """Check the consent's proof and shape; BadInputError when it is not a consent at all."""
    proof = verify_file_credential(share.credential, "share")
    return proof, ConsentClaims.from_credential(proof.credential)


# -- status lists ---------------------------------------------------------------------------------


def _list_identity(document: Mapping[str, Any] | str) -> tuple[str, str] | None:
    """(issuer, id) a status list credential claims (unverified: only to pick the right list)."""
    credential: Any = document
    if isinstance(document, str):
        parts = document.split(".")
        try:
            payload = jsonutil.loads(keys.b64url_decode(parts[1]).decode("utf-8"))
        except (IndexError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(payload, dict):
            return None
        credential = dict(payload.get("vc") or {})
        credential.setdefault("issuer", payload.get("iss"))
        credential.setdefault("id", payload.get("jti"))
    if not isinstance(credential, Mapping):
        return None
    issuer = credential.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    list_id = credential.get("id")
    if isinstance(issuer, str) and isinstance(list_id, str):
        return issuer, list_id
    return None


class StatusLists:
    """Status list credentials for consents: the ones a verifier was given, else each
    consent's own ``statusListCredential`` (each source is loaded once)."""

    def __init__(
        self,
        sources: Sequence[str] = (),
        *,
        transport: Any = None,
        timeout: float = 10.0,
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._given: dict[tuple[str, str], dict[str, Any] | str] = {}
        self._loaded: dict[str, dict[str, Any] | str | HealthWalletError] = {}
        for source in sources:
            # The verifier's own inputs: a missing file or dead URL is its error (exit 3/5).
            document = statuslist.load_status_list_credential(
                source, transport=transport, timeout=timeout, from_user=True
            )
            identity = _list_identity(document)
            if identity is None:
                raise BadInputError(f"{source} is not a status list credential")
            self._given[identity] = document

    def lookup(self, entry: Mapping[str, Any], issuer: str) -> dict[str, Any] | str:
        """The status list for a consent's entry; HealthWalletError when it cannot be had."""
        url = entry.get("statusListCredential")
        if not isinstance(url, str):
            raise BadInputError("credentialStatus.statusListCredential is missing")
        given = self._given.get((issuer, url))
        if given is not None:
            return given
        if url not in self._loaded:
            try:
                self._loaded[url] = statuslist.load_status_list_credential(
                    url, transport=self._transport, timeout=self._timeout
                )
            except HealthWalletError as exc:
                self._loaded[url] = exc
            if len(self._loaded) > _MAX_CACHED_LISTS:  # an ingest of 10,000 patients' lists
                self._loaded.pop(next(iter(self._loaded)))
        value = self._loaded[url]
        if isinstance(value, HealthWalletError):
            raise value
        return value


# -- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentCheck:
    """One named check; ``reason`` is a short code for why it failed ('' when it passed)."""

    name: str
    ok: bool
    detail: str
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON value."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


# When several checks fail, the reason reported is the first of these that failed.
_REASON_ORDER = ("recipient", "proof", "dataset", "study", "validity", "status")


@dataclass(frozen=True)
class ShareVerdict:
    """Every check run on a share; valid only when all passed."""

    claims: ConsentClaims
    checks: tuple[ConsentCheck, ...]

    @property
    def valid(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    def check(self, name: str) -> ConsentCheck | None:
        """The check called ``name``, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    def failure(self) -> ConsentCheck | None:
        """The failed check that best explains the refusal, or None when valid."""
        failed = {c.name: c for c in self.checks if not c.ok}
        for name in _REASON_ORDER:
            if name in failed:
                return failed[name]
        return next(iter(failed.values()), None)

    def to_json(self) -> dict[str, Any]:
        """The verdict as a JSON value (ids, DIDs, study, times; no data)."""
        claims = self.claims
        failure = self.failure()
        return {
            "share_id": claims.id,
            "issuer": claims.issuer,
            "recipient": claims.recipient,
            "study": claims.study,
            "purpose": claims.purpose,
            "categories": list(claims.categories),
            "policy": claims.policy,
            "policy_digest": "sha256:" + claims.policy_digest,
            "issued": iso_utc(claims.issued),
            "expires": iso_utc(claims.expires),
            "valid": self.valid,
            "reason": failure.reason if failure is not None else None,
            "checks": [c.to_json() for c in self.checks],
        }

    def raise_for_failure(self) -> None:
        """Raise AccessDeniedError (wrong recipient) or VerificationError unless valid."""
        failure = self.failure()
        if failure is None:
            return
        if failure.name == "recipient":
            raise AccessDeniedError(f"share {self.claims.id} is not addressed to you")
        raise VerificationError(
            f"share {self.claims.id} is not valid ({failure.name}: {failure.detail})"
        )


def _validity(claims: ConsentClaims, moment: datetime, skew: timedelta) -> ConsentCheck:
    # VC Data Model 1.1 §4.6/§4.7 on our own clock: didkit does not check expirationDate.
    if moment + skew < claims.issued:
        return ConsentCheck(
            "validity", False, f"not valid before {iso_utc(claims.issued)}", "not-yet-valid"
        )
    if moment - skew >= claims.expires:
        return ConsentCheck("validity", False, f"expired at {iso_utc(claims.expires)}", "expired")
    if claims.expires <= claims.issued:
        return ConsentCheck("validity", False, "expires before it was issued", "expired")
    window = f"{iso_utc(claims.issued)} to {iso_utc(claims.expires)}"
    return ConsentCheck("validity", True, f"valid {window} (checked at {iso_utc(moment)})")


def _status(claims: ConsentClaims, proof_ok: bool, lists: StatusLists) -> ConsentCheck:
    if not proof_ok:
        # Do not fetch a URL named by a credential whose proof failed.
        return ConsentCheck("status", False, "not checked: the proof did not verify", "bad-proof")
    try:
        document = lists.lookup(claims.status, claims.issuer)
    except HealthWalletError as exc:
        return ConsentCheck(
            "status",
            False,
            f"status list could not be loaded ({exc.message})",
            "status-unavailable",
        )
    try:
        # Checks the list's proof, its issuer (the patient), its id and purpose (SL2021 §5.3).
        revoked = statuslist.check_status(claims.status, document, claims.issuer)
    except HealthWalletError as exc:
        return ConsentCheck(
            "status", False, f"status list does not fit this consent ({exc.message})", "status"
        )
    if revoked:
        return ConsentCheck("status", False, "consent withdrawn by the patient", "withdrawn")
    return ConsentCheck(
        "status", True, f"not withdrawn (list {claims.status['statusListCredential']})"
    )


def consent_checks(
    claims: ConsentClaims,
    proof: ProofResult,
    *,
    my_did: str | None = None,
    study: str | None = None,
    status: StatusLists | None = None,
    now: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> tuple[ConsentCheck, ...]:
    """Proof, validity, study (when given), status and recipient (when ``my_did`` is given)."""
    checks: list[ConsentCheck] = []
    if proof.ok:
        checks.append(ConsentCheck("proof", True, f"{proof.fmt} proof by {claims.issuer}"))
    else:
        errors = ", ".join(proof.errors) or "rejected"
        checks.append(
            ConsentCheck("proof", False, f"proof does not verify ({errors})", "bad-proof")
        )
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    checks.append(_validity(claims, moment, skew))
    if study is not None:
        if claims.study == study:
            checks.append(ConsentCheck("study", True, f"for study {study}"))
        else:
            checks.append(
                ConsentCheck("study", False, "consent is for another study", "wrong-study")
            )
    checks.append(_status(claims, proof.ok, status or StatusLists()))
    if my_did is not None:
        if claims.recipient == my_did:
            checks.append(ConsentCheck("recipient", True, f"addressed to {my_did}"))
        else:
            checks.append(
                ConsentCheck("recipient", False, "not addressed to you", "wrong-recipient")
            )
    return tuple(checks)


def _payload_reader(src: BinaryIO, length: int, digest: Any) -> env.PayloadReader:
    return env.PayloadReader(src, length, digest, "share file", _TRUNCATED)


def _expect_end(src: BinaryIO) -> None:
    env.expect_end(src, "share file", _TRAILING)


def _dataset_check(computed: str, claims: ConsentClaims) -> ConsentCheck:
    if computed != claims.dataset_digest:
        return ConsentCheck(
            "dataset", False, "dataset digest does not match the consent", "dataset-mismatch"
        )
    return ConsentCheck("dataset", True, f"sha256 {computed}")


def verify_share(
    src: BinaryIO,
    *,
    recipient_did: str | None = None,
    study: str | None = None,
    status: StatusLists | None = None,
    now: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> ShareVerdict:
    """Check a share without decrypting it; BadInputError if it is not a share at all."""
    share = read_share_header(src)
    proof, claims = check_credential(share)
    checks = list(
        consent_checks(
            claims, proof, my_did=recipient_did, study=study, status=status, now=now, skew=skew
        )
    )
    digest = hashlib.sha256(share.envelope_bytes)
    reader = _payload_reader(src, share.dataset_length, digest)
    while reader.remaining:
        reader.read(_IO_BLOCK)
    _expect_end(src)
    checks.insert(1, _dataset_check(digest.hexdigest(), claims))
    return ShareVerdict(claims, tuple(checks))


def dataset_keys(share: ShareFile, identity: keys.Identity) -> env.RecordKeys:
    """The dataset's record keys, once its sealed metadata checks out (VerificationError)."""
    file_key = env.unseal_file_key(
        share.envelope.stanzas, identity.x25519_public, identity.x25519_private
    )
    record = share.envelope.records[0]
    record_keys = env.record_keys(file_key, 0, DATASET_ID)
    meta = env.RecordMeta.open(record.meta, record_keys, DATASET_ID)
    if meta.media_type != DATASET_MEDIA_TYPE or meta.size != env.plaintext_length(record.length):
        raise VerificationError("the dataset's metadata does not match the share")
    return record_keys


def decrypt_dataset(
    share: ShareFile, claims: ConsentClaims, src: BinaryIO, identity: keys.Identity
) -> list[dict[str, Any]]:
    """Decrypt the dataset (``src`` at the payload) and check it against the consent.

    VerificationError when it is not sealed to ``identity``, fails authentication, does not
    match ``datasetDigest``, or holds other resource types than the consent names.
    """
    record = share.envelope.records[0]
    record_keys = dataset_keys(share, identity)
    digest = hashlib.sha256(share.envelope_bytes)
    reader: Any = _payload_reader(src, record.length, digest)
    try:
        plaintext = b"".join(env.decrypt_record(record_keys, reader))
    except VerificationError:
        raise VerificationError("the dataset failed authentication") from None
    _expect_end(src)
    check = _dataset_check(digest.hexdigest(), claims)
    if not check.ok:
        raise VerificationError(check.detail)
    try:
        resources = parse_ndjson(plaintext)
    except BadInputError as exc:
        raise VerificationError(f"the dataset is malformed ({exc.message})") from None
    types = {str(r["resourceType"]) for r in resources}
    if not resources or types != set(claims.categories):
        raise VerificationError("the dataset's resource types differ from the consent's")
    return resources


@dataclass(frozen=True)
class OpenedShare:
    """A verified, decrypted share: the consent's claims, every check, and the resources."""

    claims: ConsentClaims
    checks: tuple[ConsentCheck, ...]
    resources: list[dict[str, Any]] = field(repr=False)


def open_share(
    src: BinaryIO,
    identity: keys.Identity,
    *,
    study: str | None = None,
    status: StatusLists | None = None,
    now: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> OpenedShare:
    """Verify a share addressed to ``identity`` and decrypt its dataset (raises unless valid)."""
    share = read_share_header(src)
    proof, claims = check_credential(share)
    checks = consent_checks(
        claims, proof, my_did=identity.did, study=study, status=status, now=now, skew=skew
    )
    ShareVerdict(claims, checks).raise_for_failure()
    resources = decrypt_dataset(share, claims, src, identity)
    dataset = ConsentCheck("dataset", True, f"sha256 {claims.dataset_digest}")
    return OpenedShare(claims, (checks[0], dataset, *checks[1:]), resources)
