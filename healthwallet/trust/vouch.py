"""The check `grant` runs before sealing: who vouches for the recipient, and is that trusted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import statuslist
from ..contexts import CLINICIAN_TYPE
from ..errors import HealthWalletError, VerificationError
from ..grants import iso_utc
from ..httpfetch import Fetcher
from .clinician import ClinicianClaims, checked_proof
from .presentation import challenge_of, verify_presentation
from .trustlist import TrustStore

SETTING = "require-clinician-credential"


class NotVouchedError(VerificationError):
    """No trusted institution vouches for the grant's recipient."""

    default_hint = (
        "ask the clinician for a presentation (`healthwallet trust challenge`, then "
        "`grant … --require-credential FILE`), or pass --allow-unvouched if you know them"
    )


@dataclass(frozen=True)
class Vouching:
    """A passing check: this credential, by this trusted issuer, vouches for the recipient."""

    credential_id: str
    claims: ClinicianClaims
    issuer_name: str
    trusted_since: str
    challenge: str

    def sentence(self) -> str:
        """Who is vouched for and by whom, in plain words."""
        c = self.claims
        return (
            f"{c.name}, {c.role}, licence {c.licence} ({c.jurisdiction}), vouched for by "
            f"{self.issuer_name} (trusted since {self.trusted_since[:10]}), valid until "
            f"{iso_utc(c.expires)}"
        )

    def to_json(self) -> dict[str, Any]:
        """For `grant --json`."""
        c = self.claims
        return {
            "credential_id": self.credential_id,
            "name": c.name,
            "role": c.role,
            "licence_number": c.licence,
            "jurisdiction": c.jurisdiction,
            "issuer": c.issuer,
            "issuer_name": self.issuer_name,
            "trusted_since": self.trusted_since,
            "valid_until": iso_utc(c.expires),
            "statement": self.sentence(),
        }


def required(config: Mapping[str, str], store: TrustStore) -> bool:
    """Whether a grant needs a vouching credential: the setting, else on once some issuer
    is trusted for ClinicianCredential."""
    value = config.get(SETTING, "")
    return value == "true" if value else store.any_for(CLINICIAN_TYPE)


def check_presentation(
    presentation: dict[str, Any] | str,
    *,
    recipient: str,
    patient: str,
    store: TrustStore,
    now: datetime,
    skew: timedelta,
    transport: Fetcher | None,
) -> Vouching:
    """A passing vouching for ``recipient``, or NotVouchedError saying why not.

    The presentation must answer an open challenge of this wallet, for the domain
    ``patient`` (its DID), made by ``recipient``. Each embedded credential is checked on its
    own (proof, validity window, status list, issuer trusted for ClinicianCredential); the
    first that passes vouches.
    """
    try:
        challenge = challenge_of(presentation)
        store.open_challenge(challenge, now)
        embedded = verify_presentation(
            presentation, holder=recipient, challenge=challenge, domain=patient
        )
    except HealthWalletError as exc:
        raise NotVouchedError(exc.message) from None
    reasons: list[str] = []
    for credential in embedded:
        try:
            return _vouching(credential, recipient, store, now, skew, transport, challenge)
        except HealthWalletError as exc:
            reasons.append(exc.message)
    raise NotVouchedError("; ".join(reasons))


def _vouching(
    credential: dict[str, Any] | str,
    recipient: str,
    store: TrustStore,
    now: datetime,
    skew: timedelta,
    transport: Fetcher | None,
    challenge: str,
) -> Vouching:
    claims, _ = checked_proof(credential)
    label = f"credential {claims.id}"
    if claims.subject != recipient:
        raise VerificationError(f"{label} is about someone other than the recipient")
    # VC Data Model 1.1 §4.6/§4.7, on our clock: didkit checks neither date.
    if now + skew < claims.issued:
        raise VerificationError(f"{label} is not valid before {iso_utc(claims.issued)}")
    if now - skew >= claims.expires:
        raise VerificationError(f"{label} expired at {iso_utc(claims.expires)}")
    trusted = store.trusted(claims.issuer, CLINICIAN_TYPE)
    if trusted is None:
        raise VerificationError(
            f"{label} was issued by {claims.issuer}, which you do not trust for {CLINICIAN_TYPE}"
        )
    list_expires = store.list_expiry(trusted)
    if list_expires is not None and list_expires <= iso_utc(now - skew):
        # A list's word lasts as long as the list: its operator may have dropped the issuer since.
        raise VerificationError(
            f"{label} was issued by {trusted.name}, trusted through a trust list that expired at"
            f" {list_expires}",
            "import the operator's current list: `healthwallet trust import FILE|URL`",
        )
    _check_not_revoked(claims, transport, label)
    return Vouching(claims.id, claims, trusted.name, trusted.since, challenge)


def _check_not_revoked(claims: ClinicianClaims, transport: Fetcher | None, label: str) -> None:
    url = str(claims.status["statusListCredential"])
    try:
        status_vc = statuslist.load_status_list_credential(url, transport=transport)
        revoked = statuslist.check_status(claims.status, status_vc, claims.issuer)
    except HealthWalletError as exc:
        raise VerificationError(f"{label}: status not known ({exc.message})") from None
    if revoked:
        raise VerificationError(f"{label} was revoked by its issuer")
