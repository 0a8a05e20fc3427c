"""The one spelling of every signed member: a credential verifies only as healthwallet writes it.

A Linked Data proof signs the RDF graph, and didkit 0.3.3 reads a credential into its own data
model before hashing, so JSON that differs from what was issued can still hash alike: a
reordered ``type`` array (an RDF set), ``…00.000Z`` for ``…00Z`` (a date-time read and written
back), an issuer written as ``{"id": …}``, a one-element subject list, a number for a string
that a context types, an unsorted ``@set``. The signature alone does not pin those bytes, so
every verifier (grant, share consent, status list) also requires each member in the one form
our issuer writes (docs/format-grant.md, "Spelling"). Members that didkit hashes as written
(plain strings, ids, ``@list`` order) are pinned by the signature itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from .contexts import JSON_LITERAL_TERMS, KNOWN_CONTEXTS

DATE_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
"""The one spelling of a date-time: UTC, to the second, with ``Z`` (``2026-12-01T10:00:00Z``)."""
DATE_TIME_MEMBERS: Final = ("issuanceDate", "expirationDate")
"""Top-level members that are date-times (``proof.created`` is one too)."""
_DATE_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_BASE_TYPE = "VerifiableCredential"


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_ISSUED_CONTEXTS: Final = frozenset(_canonical(context) for context in KNOWN_CONTEXTS)


def _container_terms(container: str) -> frozenset[str]:
    """Terms our contexts define with ``@container: container``."""
    terms: set[str] = set()

    def walk(definitions: object) -> None:
        if isinstance(definitions, Mapping):
            for term, definition in definitions.items():
                if isinstance(definition, Mapping):
                    if definition.get("@container") == container:
                        terms.add(term)
                    walk(definition.get("@context"))
        elif isinstance(definitions, list):
            for item in definitions:
                walk(item)

    walk(list(KNOWN_CONTEXTS))
    return frozenset(terms)


SET_TERMS: Final = _container_terms("@set")
"""Members signed without their order: written sorted and without repeats."""
ARRAY_TERMS: Final = SET_TERMS | _container_terms("@list")
"""The only members (below the top-level ``type``) that are written as arrays."""


def is_pinned_date_time(value: object) -> bool:
    """True when ``value`` is a valid date-time spelled exactly as :data:`DATE_TIME_FORMAT`."""
    if not isinstance(value, str) or not _DATE_TIME_RE.fullmatch(value):
        return False
    try:
        return datetime.strptime(value, DATE_TIME_FORMAT).strftime(DATE_TIME_FORMAT) == value
    except ValueError:
        return False


def spelling_errors(credential: Mapping[str, Any]) -> list[str]:
    """Why ``credential`` is not spelled as healthwallet issues it (empty when it is).

    Checked before the proof, for JSON-LD proofs and for the credential decoded from a JWT
    alike, so every verifier reads the same bytes the issuer signed.
    """
    errors: list[str] = []
    if _canonical(credential.get("@context")) not in _ISSUED_CONTEXTS:
        errors.append("@context is not spelled exactly as healthwallet issues it")
    types = credential.get("type")
    if not (
        isinstance(types, list)
        and len(types) == 2
        and types[0] == _BASE_TYPE
        and isinstance(types[1], str)
        and types[1] != _BASE_TYPE
    ):
        errors.append('type is not written as ["VerifiableCredential", <type>]')
    if not isinstance(credential.get("issuer"), str):
        errors.append("issuer is not written as a DID string")
    for member in ("credentialSubject", "credentialStatus", "proof"):
        if member in credential and not isinstance(credential[member], Mapping):
            errors.append(f"{member} is not written as one JSON object")
    for member in DATE_TIME_MEMBERS:
        if member in credential and not is_pinned_date_time(credential[member]):
            errors.append(f"{member} is not written as YYYY-MM-DDThh:mm:ssZ")
    proof = credential.get("proof")
    if isinstance(proof, Mapping) and not is_pinned_date_time(proof.get("created")):
        errors.append("proof.created is not written as YYYY-MM-DDThh:mm:ssZ")
    body = {k: v for k, v in credential.items() if k not in ("@context", "type", "proof")}
    errors.extend(_value_errors(body))
    return errors


def _value_errors(value: object, path: str = "") -> list[str]:
    """Errors for every member below ``value`` not written as our issuer writes it.

    Every value is a string, an object, or an array where the context makes it one (a
    one-element array, ``null`` and ``[]`` read as the same graph as other spellings).
    """
    name = path.rsplit(".", 1)[-1]
    if isinstance(value, Mapping):
        errors: list[str] = []
        for key, item in value.items():
            if key not in JSON_LITERAL_TERMS:  # @json: signed as canonical JSON
                errors.extend(_value_errors(item, f"{path}.{key}" if path else str(key)))
        return errors
    if isinstance(value, list):
        if name not in ARRAY_TERMS:
            return [f"{path} is not written as one value"]
        if name in SET_TERMS and not (
            all(isinstance(item, str) for item in value) and value == sorted(set(value))
        ):
            return [f"{path} is not written sorted and without repeats"]
        errors = []
        for item in value:
            if isinstance(item, list):
                errors.append(f"{path} holds an array in an array")
            else:
                errors.extend(_value_errors(item, path))
        return errors
    if not isinstance(value, str):
        return [f"{path} is not written as a JSON string"]
    return []
