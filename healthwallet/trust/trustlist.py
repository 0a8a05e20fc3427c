"""The patient's trust store (trusted issuers, open challenges) and signed trust lists."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import keys, pinning
from ..contexts import CLINICIAN_TYPE, TRUST_LIST_CONTEXT, TRUST_LIST_TYPE
from ..credentials import Format, issue_credential
from ..errors import BadInputError, NotFoundError, UsageError, VerificationError
from ..grants import iso_utc, new_grant_id, only_members, verify_file_credential
from .sealed import SealedDocument

TRUST_FILE = "trust.sealed"
LIST_SCOPE = "TrustList"
"""An issuer trusted for this scope may publish trust lists the user imports."""
SCOPES = (CLINICIAN_TYPE, LIST_SCOPE)
MANUAL = "manual"
MAX_NAME_CHARS = 200
MAX_LIST_ENTRIES = 10_000
CHALLENGE_BYTES = 16
DEFAULT_CHALLENGE_LIFETIME = timedelta(days=7)

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer the user trusts: for which scopes, since when, and through which list."""

    did: str
    name: str
    scopes: tuple[str, ...]
    since: str
    via: str  # MANUAL, or the DID of the list operator whose list named it

    def to_json(self) -> dict[str, Any]:
        """As `trust list --json` shows it."""
        return {
            "did": self.did,
            "name": self.name,
            "scopes": list(self.scopes),
            "since": self.since,
            "via": self.via,
        }


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS or name != name.strip():
        raise BadInputError(f"{what} must be 1 to {MAX_NAME_CHARS} characters, no edge spaces")
    return name


def _date(value: object, what: str) -> datetime:
    if not pinning.is_pinned_date_time(value):
        raise BadInputError(f"{what} is not written as YYYY-MM-DDThh:mm:ssZ")
    return datetime.strptime(str(value), pinning.DATE_TIME_FORMAT).replace(tzinfo=UTC)


def _check_scopes(scopes: object, what: str) -> tuple[str, ...]:
    if not isinstance(scopes, list) or not scopes or not all(s in SCOPES for s in scopes):
        raise BadInputError(f"{what} must name scopes among {', '.join(SCOPES)}")
    return tuple(sorted(set(scopes)))


class TrustStore:
    """Issuers trusted per scope and the challenges this wallet handed out, sealed at rest."""

    def __init__(
        self,
        home: Path,
        identity: keys.Identity,
        retired: Sequence[keys.Identity] = (),
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self._doc = SealedDocument(home, TRUST_FILE, identity, retired)
        self._random_bytes = random_bytes

    # -- issuers --------------------------------------------------------------------------------

    def issuers(self) -> list[TrustedIssuer]:
        """Every trusted issuer, by name. An issuer a list added counts only while the patient
        still trusts that list's operator for ``TrustList`` (removing the operator withdraws it)."""
        entries = self._doc.read().get("issuers", {})
        operators = {
            did for did, e in entries.items() if e["via"] == MANUAL and LIST_SCOPE in e["scopes"]
        }
        found = [
            TrustedIssuer(did, e["name"], tuple(e["scopes"]), e["since"], e["via"])
            for did, e in entries.items()
            if e["via"] == MANUAL or e["via"] in operators
        ]
        return sorted(found, key=lambda i: (i.name.casefold(), i.did))

    def trusted(self, did: str, scope: str) -> TrustedIssuer | None:
        """The issuer ``did`` when it is trusted for ``scope``."""
        return next((i for i in self.issuers() if i.did == did and scope in i.scopes), None)

    def list_expiry(self, issuer: TrustedIssuer) -> str | None:
        """When the trust list that added ``issuer`` expires (None: the user added it)."""
        if issuer.via == MANUAL:
            return None
        imported = self._doc.read().get("lists", {}).get(issuer.via)
        return None if imported is None else str(imported["expires"])

    def any_for(self, scope: str) -> bool:
        """True when some issuer is trusted for ``scope``."""
        return any(scope in issuer.scopes for issuer in self.issuers())

    def add(self, did: str, name: str, scopes: Sequence[str], now: datetime) -> TrustedIssuer:
        """Trust ``did`` for ``scopes`` by the user's own decision (replaces a list's entry)."""
        if not keys.is_did_key(did):
            raise UsageError("an issuer is named by its did:key", "e.g. did:key:z6Mk…")
        try:
            name = _check_name(name, "--name")
            chosen = _check_scopes(list(scopes), "--scope")
        except BadInputError as exc:
            raise UsageError(exc.message) from None
        with self._doc.update() as document:
            entries = document.setdefault("issuers", {})
            since = entries.get(did, {}).get("since", iso_utc(now))
            entries[did] = {"name": name, "scopes": list(chosen), "since": since, "via": MANUAL}
            if did in document.get("blocked", []):  # the user's own decision wins
                document["blocked"].remove(did)
        return TrustedIssuer(did, name, chosen, since, MANUAL)

    def remove(self, did: str) -> TrustedIssuer:
        """Stop trusting ``did`` (NotFoundError when it is not trusted)."""
        with self._doc.update() as document:
            entry = document.setdefault("issuers", {}).pop(did, None)
            if entry is None:
                raise NotFoundError("that issuer is not in your trust list", "see `trust list`")
            if entry["via"] != MANUAL:
                # It would come back with the next import of its list: keep it out.
                document.setdefault("blocked", []).append(did)
        return TrustedIssuer(did, entry["name"], tuple(entry["scopes"]), entry["since"], "removed")

    # -- trust lists ------------------------------------------------------------------------------

    def import_list(
        self, credential: dict[str, Any] | str, now: datetime, skew: timedelta
    ) -> dict[str, Any]:
        """Import a signed trust list from an operator trusted for the TrustList scope.

        Its entries replace the ones the previous import of the same operator's list made,
        so an issuer the operator dropped is no longer trusted. An older list than the one
        imported is refused (a replayed list must not bring a dropped issuer back).
        """
        trust_list = read_trust_list(credential)
        operator = self.trusted(trust_list.operator, LIST_SCOPE)
        if operator is None:
            raise VerificationError(
                "the trust list's operator is not trusted to publish trust lists",
                f"trust the operator first: `healthwallet trust add {trust_list.operator} "
                f'--name "…" --scope {LIST_SCOPE}`',
            )
        if now + skew < trust_list.issued:
            raise VerificationError(
                f"the trust list is not valid before {iso_utc(trust_list.issued)}"
            )
        if now - skew >= trust_list.expires:
            raise VerificationError(f"the trust list expired at {iso_utc(trust_list.expires)}")
        with self._doc.update() as document:
            lists = document.setdefault("lists", {})
            previous = lists.get(trust_list.operator)
            if previous is not None and previous["issued"] > iso_utc(trust_list.issued):
                raise VerificationError(
                    "this trust list is older than the one already imported from its operator",
                    "import the operator's current list",
                )
            entries = document.setdefault("issuers", {})
            blocked = set(document.get("blocked", []))
            old = {d: e for d, e in entries.items() if e["via"] == trust_list.operator}
            for did in old:
                del entries[did]
            added = []
            for did, (name, scopes) in trust_list.issuers.items():
                if did in blocked or entries.get(did, {}).get("via") == MANUAL:
                    continue
                since = old.get(did, {}).get("since", iso_utc(now))
                entry = {
                    "name": name,
                    "scopes": list(scopes),
                    "since": since,
                    "via": trust_list.operator,
                }
                entries[did] = entry
                added.append(did)
            lists[trust_list.operator] = {
                "id": trust_list.id,
                "name": trust_list.name,
                "issued": iso_utc(trust_list.issued),
                "expires": iso_utc(trust_list.expires),
                "imported": iso_utc(now),
            }
        return {
            "list_id": trust_list.id,
            "list_name": trust_list.name,
            "operator": trust_list.operator,
            "operator_name": operator.name,
            "issuers": sorted(added),
            "dropped": sorted(set(old) - set(added)),
        }

    # -- challenges -------------------------------------------------------------------------------

    def new_challenge(
        self, now: datetime, lifetime: timedelta = DEFAULT_CHALLENGE_LIFETIME
    ) -> dict[str, str]:
        """A fresh one-time challenge for a clinician's presentation."""
        nonce = keys.b64url(self._random_bytes(CHALLENGE_BYTES))
        expires = iso_utc(now + lifetime)
        with self._doc.update() as document:
            challenges = document.setdefault("challenges", {})
            for old in [n for n, c in challenges.items() if c["expires"] <= iso_utc(now)]:
                del challenges[old]  # expired ones are of no more use
            challenges[nonce] = {"created": iso_utc(now), "expires": expires}
        return {"challenge": nonce, "expires": expires}

    def open_challenge(self, nonce: str, now: datetime) -> None:
        """VerificationError unless ``nonce`` is an unused, unexpired challenge of this wallet."""
        challenge = self._doc.read().get("challenges", {}).get(nonce)
        if challenge is None:
            raise VerificationError(
                "the presentation answers no open challenge of this wallet (used, or never "
                "issued here: a presentation made for someone else or replayed)",
                "run `healthwallet trust challenge` and ask the clinician for a new presentation",
            )
        if challenge["expires"] <= iso_utc(now):
            raise VerificationError(
                f"the challenge expired at {challenge['expires']}",
                "run `healthwallet trust challenge` and ask for a new presentation",
            )

    def use_challenge(self, nonce: str) -> None:
        """Spend a challenge: a presentation answers it once."""
        with self._doc.update() as document:
            document.setdefault("challenges", {}).pop(nonce, None)


# -- the signed list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustList:
    """A trust list whose proof verified (its operator not yet judged)."""

    id: str
    operator: str
    name: str
    issued: datetime
    expires: datetime
    issuers: Mapping[str, tuple[str, tuple[str, ...]]]


def read_trust_list(credential: object) -> TrustList:
    """The content of a signed TrustedIssuerList; VerificationError for a bad proof."""
    if not isinstance(credential, dict | str):
        raise BadInputError("the trust list is not a credential")
    result = verify_file_credential(credential, "trust list")
    vc = result.credential
    only_members(
        vc,
        {"@context", "id", "type", "issuer", "issuanceDate", "expirationDate", "credentialSubject"},
        {"proof"},
        "trust list",
    )
    if vc["type"] != ["VerifiableCredential", TRUST_LIST_TYPE]:
        raise BadInputError(f"the credential is not a {TRUST_LIST_TYPE}")
    if not result.ok:
        raise VerificationError(
            "the trust list's signature does not verify (" + "; ".join(result.errors) + ")",
            "fetch the list again from its operator; do not use this copy",
        )
    subject = vc["credentialSubject"]
    if not isinstance(subject, Mapping):
        raise BadInputError("the trust list subject is not an object")
    only_members(subject, {"name", "trustedIssuers"}, set(), "trust list subject")
    listed = subject["trustedIssuers"]
    if not isinstance(listed, list) or len(listed) > MAX_LIST_ENTRIES:
        raise BadInputError("the trust list's trustedIssuers is malformed")
    issuers: dict[str, tuple[str, tuple[str, ...]]] = {}
    for entry in listed:
        if not isinstance(entry, Mapping):
            raise BadInputError("a trust list entry is not an object")
        only_members(entry, {"id", "name", "scopes"}, set(), "trust list entry")
        did = entry["id"]
        if not isinstance(did, str) or not keys.is_did_key(did) or did in issuers:
            raise BadInputError("a trust list entry's id is not a did:key, or repeats")
        scopes = tuple(
            s for s in _check_scopes(entry["scopes"], "trust list scopes") if s != LIST_SCOPE
        )
        if scopes:  # a list does not hand out the right to publish lists
            issuers[did] = (_check_name(entry["name"], "a trust list entry's name"), scopes)
    return TrustList(
        id=str(vc["id"]),
        operator=str(vc["issuer"]),
        name=_check_name(subject["name"], "the trust list's name"),
        issued=_date(vc["issuanceDate"], "trust list issuanceDate"),
        expires=_date(vc["expirationDate"], "trust list expirationDate"),
        issuers=issuers,
    )


def sign_trust_list(
    operator: keys.Identity,
    name: str,
    issuers: Sequence[TrustedIssuer],
    *,
    now: datetime,
    expires: datetime,
    fmt: Format = "ldp",
    random_bytes: RandomBytes = os.urandom,
) -> dict[str, Any] | str:
    """A TrustedIssuerList signed by ``operator`` naming ``issuers`` for their scopes."""
    _check_name(name, "the list name")
    if expires <= now:
        raise UsageError("the expiry must be in the future")
    entries = [
        {"id": i.did, "name": i.name, "scopes": [s for s in i.scopes if s != LIST_SCOPE]}
        for i in issuers
        if any(s != LIST_SCOPE for s in i.scopes)
    ]
    credential = {
        "@context": list(TRUST_LIST_CONTEXT),
        "id": new_grant_id(random_bytes),
        "type": ["VerifiableCredential", TRUST_LIST_TYPE],
        "issuer": operator.did,
        "issuanceDate": iso_utc(now),
        "expirationDate": iso_utc(expires),
        "credentialSubject": {"name": name, "trustedIssuers": entries},
    }
    return issue_credential(credential, operator, fmt, now)
