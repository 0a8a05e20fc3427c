"""ClinicianCredential: an institution vouches for one of its staff; the ones a clinician holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import keys
from ..contexts import CLINICIAN_CONTEXT, CLINICIAN_TYPE
from ..credentials import Format, issue_credential
from ..errors import BadInputError, UsageError, VerificationError
from ..grants import check_credential_frame, iso_utc, only_members, verify_file_credential
from ..idprefix import resolve_id
from .sealed import SealedDocument

HELD_FILE = "credentials.sealed"
MAX_CLAIM_CHARS = 200
SUBJECT_MEMBERS = {"id", "name", "role", "licenceNumber", "jurisdiction"}


@dataclass(frozen=True)
class ClinicianClaims:
    """What a ClinicianCredential says (checked for shape, not for truth)."""

    id: str
    issuer: str
    subject: str
    name: str
    role: str
    licence: str
    jurisdiction: str
    issued: datetime
    expires: datetime
    status: dict[str, Any]

    @classmethod
    def from_credential(cls, credential: Mapping[str, Any]) -> ClinicianClaims:
        """Check a credential has the shape of a ClinicianCredential; BadInputError if not."""
        frame = check_credential_frame(credential, CLINICIAN_TYPE, "clinician credential")
        subject = frame.subject
        only_members(subject, SUBJECT_MEMBERS, set(), "clinician credential subject")
        for member in SUBJECT_MEMBERS:
            value = subject[member]
            if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_CHARS:
                raise BadInputError(f"clinician credential {member} is malformed")
        if not keys.is_did_key(subject["id"]):
            raise BadInputError("clinician credential subject is not a did:key")
        return cls(
            id=frame.id,
            issuer=frame.issuer,
            subject=subject["id"],
            name=subject["name"],
            role=subject["role"],
            licence=subject["licenceNumber"],
            jurisdiction=subject["jurisdiction"],
            issued=frame.issued,
            expires=frame.expires,
            status=frame.status,
        )


def clinician_credential(
    *,
    credential_id: str,
    issuer: str,
    subject: str,
    name: str,
    role: str,
    licence: str,
    jurisdiction: str,
    issued: datetime,
    expires: datetime,
    status: Mapping[str, Any],
) -> dict[str, Any]:
    """The unsigned ClinicianCredential (UsageError for a claim that cannot be issued)."""
    claims = {"name": name, "role": role, "licenceNumber": licence, "jurisdiction": jurisdiction}
    for member, value in claims.items():
        if not 0 < len(value.strip()) <= MAX_CLAIM_CHARS or value != value.strip():
            raise UsageError(f"{member} must be 1 to {MAX_CLAIM_CHARS} characters, no edge spaces")
    if not keys.is_did_key(subject):
        raise UsageError("the subject must be the clinician's did:key")
    if expires <= issued:
        raise UsageError("the expiry must be in the future")
    return {
        "@context": list(CLINICIAN_CONTEXT),
        "id": credential_id,
        "type": ["VerifiableCredential", CLINICIAN_TYPE],
        "issuer": issuer,
        "issuanceDate": iso_utc(issued),
        "expirationDate": iso_utc(expires),
        "credentialSubject": {"id": subject, **claims},
        "credentialStatus": dict(status),
    }


def sign_clinician_credential(
    credential: Mapping[str, Any], identity: keys.Identity, fmt: Format, now: datetime
) -> dict[str, Any] | str:
    """Sign an unsigned ClinicianCredential as the institution."""
    return issue_credential(credential, identity, fmt, now)


def checked_proof(credential: object) -> tuple[ClinicianClaims, Format]:
    """Claims of a ClinicianCredential whose proof verifies; VerificationError if it does not."""
    if not isinstance(credential, dict | str):
        raise BadInputError("not a credential (neither a JSON object nor a JWT)")
    result = verify_file_credential(credential, "clinician")
    claims = ClinicianClaims.from_credential(result.credential)
    if not result.ok:
        raise VerificationError(
            f"clinician credential {claims.id}: proof does not verify ({'; '.join(result.errors)})"
        )
    return claims, result.fmt


class HeldCredentials:
    """The credentials issued to this wallet (`credential store`), sealed at rest."""

    def __init__(self, home: Path, identity: keys.Identity, retired: Sequence[keys.Identity] = ()):
        self.identity = identity
        self._doc = SealedDocument(home, HELD_FILE, identity, retired)

    def store(self, credential: dict[str, Any] | str) -> ClinicianClaims:
        """Keep a ClinicianCredential issued to this wallet (its proof must verify)."""
        claims, _ = checked_proof(credential)
        if claims.subject != self.identity.did:
            raise UsageError(
                "that credential was issued to someone else", "store only credentials about you"
            )
        with self._doc.update() as document:
            held = document.setdefault("credentials", {})
            held[claims.id] = credential
        return claims

    def all(self) -> list[tuple[ClinicianClaims, dict[str, Any] | str]]:
        """Every held credential with its claims, oldest first."""
        held = self._doc.read().get("credentials", {})
        out = [(checked_proof(c)[0], c) for c in held.values()]
        return sorted(out, key=lambda pair: (pair[0].issued, pair[0].id))

    def pick(self, typed: Sequence[str]) -> list[dict[str, Any] | str]:
        """The held credentials named by id or prefix (all of them when none is named)."""
        held = {claims.id: credential for claims, credential in self.all()}
        if not held:
            raise UsageError("you hold no credential", "store one with `credential store FILE`")
        if not typed:
            return list(held.values())
        ids = [
            resolve_id(t, held, kind="credential", list_command="credential list") for t in typed
        ]
        return [held[i] for i in dict.fromkeys(ids)]
