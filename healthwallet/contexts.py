"""JSON-LD contexts for healthwallet credentials (VC Data Model 1.1).

didkit has no network document loader, and third-party verifiers should not need one, so the
healthwallet terms travel as an inline context object after the standard contexts. Every term
a credential uses is defined (JSON-LD "safe mode" verifiers reject undefined terms, and a term
that expands to nothing would silently fall outside the signature). Spec: docs/credentials.md.

The vocabulary is versioned by its IRI (``urn:healthwallet:vocab:v1#``): a change in meaning
gets a new IRI and a new context version, never an edit of this one.
"""

from __future__ import annotations

from typing import Any, Final

CREDENTIALS_V1: Final = "https://www.w3.org/2018/credentials/v1"
STATUS_LIST_2021_V1: Final = "https://w3id.org/vc/status-list/2021/v1"

VOCAB: Final = "urn:healthwallet:vocab:v1#"
CONTEXT_VERSION: Final = 1

GRANT_TYPE: Final = "HealthRecordAccessGrant"
CONSENT_TYPE: Final = "ResearchDataConsent"
CLINICIAN_TYPE: Final = "ClinicianCredential"
TRUST_LIST_TYPE: Final = "TrustedIssuerList"


def _term(name: str, **extra: Any) -> dict[str, Any]:
    return {"@id": VOCAB + name, **extra}


# Shared by both credentials: same name, same meaning, same IRI.
_PURPOSE = _term("purpose")

# Record ids in a grant are wallet ids (hex), not IRIs. The property-scoped context turns `id`
# inside `records` into a plain string, so it is signed as written (JSON-LD 1.1 §4.1.11 lets a
# property-scoped context override the protected `id` of the credentials context). `@list`
# keeps the records' order inside the signature, since it is the payload order.
_RECORDS = _term(
    "records",
    **{
        "@container": "@list",
        "@context": {
            "@protected": True,
            "id": _term("recordId"),
            "mediaType": _term("mediaType"),
            "commitment": _term("commitment"),
        },
    },
)

_GRANT_TERMS: dict[str, Any] = {
    "@version": 1.1,
    "@protected": True,
    GRANT_TYPE: _term(GRANT_TYPE),
    "purpose": _PURPOSE,
    "records": _RECORDS,
    "envelopeDigest": _term("envelopeDigest"),
    # Anchor proofs (Merkle inclusion proof, root, ledger receipt) are opaque JSON here:
    # signed as a JSON literal (canonical JSON), not as RDF.
    "anchors": _term("anchors", **{"@type": "@json"}),
}

_CONSENT_TERMS: dict[str, Any] = {
    "@version": 1.1,
    "@protected": True,
    CONSENT_TYPE: _term(CONSENT_TYPE),
    "study": _term("study"),
    "purpose": _PURPOSE,
    "dataCategories": _term("dataCategories", **{"@container": "@set"}),
    "policy": _term("policy"),
    "policyDigest": _term("policyDigest"),
    "datasetDigest": _term("datasetDigest"),
}

_CLINICIAN_TERMS: dict[str, Any] = {
    "@version": 1.1,
    "@protected": True,
    CLINICIAN_TYPE: _term(CLINICIAN_TYPE),
    "name": _term("name"),
    "role": _term("role"),
    "licenceNumber": _term("licenceNumber"),
    "jurisdiction": _term("jurisdiction"),
}

# A trust list names issuers (their DIDs are the entries' `id`, an IRI), in the operator's
# order (`@list`), each with a display name and the credential types it is trusted for.
_TRUST_LIST_TERMS: dict[str, Any] = {
    "@version": 1.1,
    "@protected": True,
    TRUST_LIST_TYPE: _term(TRUST_LIST_TYPE),
    "name": _term("name"),
    "trustedIssuers": _term(
        "trustedIssuers",
        **{
            "@container": "@list",
            "@context": {
                "@protected": True,
                "name": _term("name"),
                "scopes": _term("scopes", **{"@container": "@set"}),
            },
        },
    ),
}

JSON_LITERAL_TERMS: Final = frozenset({"anchors"})
"""Terms whose values are JSON literals (``@type: @json``): opaque to JSON-LD."""

GRANT_CONTEXT: Final[list[str | dict[str, Any]]] = [
    CREDENTIALS_V1,
    STATUS_LIST_2021_V1,
    _GRANT_TERMS,
]
"""The full ``@context`` of a HealthRecordAccessGrant."""

GRANT_VOUCHED_CONTEXT: Final[list[str | dict[str, Any]]] = [
    CREDENTIALS_V1,
    STATUS_LIST_2021_V1,
    {**_GRANT_TERMS, "vouchedBy": _term("vouchedBy")},
]
"""A grant that names the ClinicianCredential (its id) that vouched for the recipient."""

CONSENT_CONTEXT: Final[list[str | dict[str, Any]]] = [
    CREDENTIALS_V1,
    STATUS_LIST_2021_V1,
    _CONSENT_TERMS,
]
"""The full ``@context`` of a ResearchDataConsent."""

STATUS_LIST_CONTEXT: Final[list[str | dict[str, Any]]] = [CREDENTIALS_V1, STATUS_LIST_2021_V1]
"""The full ``@context`` of a StatusList2021Credential."""

CLINICIAN_CONTEXT: Final[list[str | dict[str, Any]]] = [
    CREDENTIALS_V1,
    STATUS_LIST_2021_V1,
    _CLINICIAN_TERMS,
]
"""The full ``@context`` of a ClinicianCredential (an institution vouching for its staff)."""

TRUST_LIST_CONTEXT: Final[list[str | dict[str, Any]]] = [CREDENTIALS_V1, _TRUST_LIST_TERMS]
"""The full ``@context`` of a TrustedIssuerList (a list operator naming trusted issuers)."""

KNOWN_CONTEXTS: Final[tuple[list[str | dict[str, Any]], ...]] = (
    GRANT_CONTEXT,
    CONSENT_CONTEXT,
    STATUS_LIST_CONTEXT,
    [CREDENTIALS_V1],
    GRANT_VOUCHED_CONTEXT,
    CLINICIAN_CONTEXT,
    TRUST_LIST_CONTEXT,
)
"""Every ``@context`` healthwallet issues. A Linked Data proof signs the RDF graph, not the
JSON text, so a verifier that reads the JSON must also know the exact context it was read
with (docs/credentials.md, "Reading a credential as JSON")."""


def is_known_context(context: object) -> bool:
    """True when ``context`` is exactly one of :data:`KNOWN_CONTEXTS` (key order aside)."""
    return any(context == known for known in KNOWN_CONTEXTS)


# Contexts didkit 0.3.3 has built in (checked in tests/test_credentials.py); nothing else can be
# referenced by URL, because nothing is ever fetched.
BUNDLED_CONTEXT_URLS: Final = frozenset({CREDENTIALS_V1, STATUS_LIST_2021_V1})

__all__ = [
    "BUNDLED_CONTEXT_URLS",
    "CLINICIAN_CONTEXT",
    "CLINICIAN_TYPE",
    "CONSENT_CONTEXT",
    "CONSENT_TYPE",
    "CONTEXT_VERSION",
    "CREDENTIALS_V1",
    "GRANT_CONTEXT",
    "GRANT_TYPE",
    "GRANT_VOUCHED_CONTEXT",
    "JSON_LITERAL_TERMS",
    "KNOWN_CONTEXTS",
    "STATUS_LIST_2021_V1",
    "STATUS_LIST_CONTEXT",
    "TRUST_LIST_CONTEXT",
    "TRUST_LIST_TYPE",
    "VOCAB",
    "is_known_context",
]
