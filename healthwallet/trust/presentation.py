"""Verifiable Presentations of clinician credentials, bound to one patient and one challenge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import jsonutil, keys
from ..contexts import CREDENTIALS_V1
from ..credentials import Format
from ..errors import BadInputError, UsageError, VerificationError
from ..presentations import sign_presentation, verify_presentation_proof

MAX_CHALLENGE_CHARS = 200
MAX_CREDENTIALS = 16


def make_presentation(
    holder: keys.Identity,
    credentials: Sequence[dict[str, Any] | str],
    *,
    challenge: str,
    domain: str,
    fmt: Format,
    now: datetime,
) -> dict[str, Any] | str:
    """A presentation of ``credentials`` signed by ``holder`` for ``challenge`` and ``domain``."""
    for value, what in ((challenge, "--challenge"), (domain, "--domain")):
        if not 0 < len(value) <= MAX_CHALLENGE_CHARS or not value.isprintable():
            raise UsageError(f"{what} must be 1 to {MAX_CHALLENGE_CHARS} printable characters")
    if not credentials:
        raise UsageError("a presentation needs at least one credential")
    presentation = {
        "@context": [CREDENTIALS_V1],
        "type": ["VerifiablePresentation"],
        "holder": holder.did,
        "verifiableCredential": list(credentials),
    }
    return sign_presentation(
        presentation, holder, challenge=challenge, domain=domain, fmt=fmt, now=now
    )


def challenge_of(presentation: object) -> str:
    """The challenge a presentation claims to answer (read before anything is verified)."""
    if isinstance(presentation, str):
        parts = presentation.strip().split(".")
        try:
            payload: Any = keys.b64url_decode(parts[1]) if len(parts) == 3 else b""
            nonce = (
                jsonutil.loads(payload, what="the JWT payload").get("nonce") if payload else None
            )
        except (ValueError, AttributeError):  # JsonInputError (nesting too, size) is a ValueError
            nonce = None
    elif isinstance(presentation, Mapping) and isinstance(presentation.get("proof"), Mapping):
        nonce = presentation["proof"].get("challenge")
    else:
        raise BadInputError("not a presentation (neither a JSON object nor a JWT)")
    if not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_CHALLENGE_CHARS:
        raise BadInputError("the presentation carries no challenge")
    return nonce


def verify_presentation(
    presentation: dict[str, Any] | str, *, holder: str, challenge: str, domain: str
) -> list[dict[str, Any] | str]:
    """The credentials inside a presentation whose holder is ``holder`` and whose proof, by
    the holder's key, answers ``challenge`` for ``domain``. The credentials are NOT verified
    here (didkit does not either): the caller checks each one."""
    content, errors = verify_presentation_proof(presentation, challenge=challenge, domain=domain)
    if errors:
        raise VerificationError(
            "the presentation does not verify (" + "; ".join(errors) + ")",
            "ask the clinician for a new presentation for your challenge",
        )
    if content.get("holder") != holder:
        raise VerificationError(
            "the presentation was made by someone other than the grant's recipient",
            "a clinician can vouch only for their own DID: grant to the DID that presented",
        )
    embedded = content.get("verifiableCredential")
    if isinstance(embedded, dict | str):
        embedded = [embedded]
    if not isinstance(embedded, list) or not 0 < len(embedded) <= MAX_CREDENTIALS:
        raise BadInputError("the presentation holds no credential")
    if not all(isinstance(c, dict | str) for c in embedded):
        raise BadInputError("the presentation holds something other than credentials")
    return list(embedded)
