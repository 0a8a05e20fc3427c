"""Verifiable Presentations (VC Data Model 1.1 §4.10): signed by the holder, bound to a
challenge and a domain, and checked here for the holder's proof only (trust/ checks what a
presentation carries). didkit is reached through credentials.py's wrapper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import jsonutil, keys, pinning
from .contexts import CREDENTIALS_V1
from .credentials import (
    _NO_TIME_LIMIT,
    JWT_ALG,
    PROOF_TYPE,
    Format,
    _b64url_bytes,
    _b64url_json,
    _call_didkit,
    _didkit,
    _didkit_verdict,
    _DidkitRefusedError,
    _iso,
    _issuer_key_errors,
)
from .errors import BadInputError, UsageError

PRESENTATION_PURPOSE = "authentication"
_VP_MEMBERS = frozenset({"@context", "type", "holder", "verifiableCredential", "proof"})
_VP_PROOF_MEMBERS = frozenset(
    {"type", "proofPurpose", "verificationMethod", "created", "challenge", "domain", "jws"}
)


def sign_presentation(
    presentation: Mapping[str, Any],
    identity: keys.Identity,
    *,
    challenge: str,
    domain: str,
    fmt: Format,
    now: datetime,
) -> dict[str, Any] | str:
    """Sign a presentation as its holder, bound to ``challenge`` and ``domain``."""
    options: dict[str, str] = {
        "proofPurpose": PRESENTATION_PURPOSE,
        "verificationMethod": identity.verification_method,
        "challenge": challenge,
        "domain": domain,
    }
    if fmt == "ldp":
        options.update(type=PROOF_TYPE, created=_iso(now))
    else:
        options["proofFormat"] = "jwt"  # challenge → nonce, domain → aud
    didkit, unsigned, key = _didkit(), json.dumps(presentation), identity.jwk()
    try:
        signed = _call_didkit(lambda: didkit.issue_presentation(unsigned, json.dumps(options), key))
    except _DidkitRefusedError as exc:
        raise UsageError(f"didkit cannot sign this presentation ({exc})") from None
    return signed.strip() if fmt == "jwt" else dict(jsonutil.loads(signed))


def verify_presentation_proof(
    vp: Mapping[str, Any] | str, *, challenge: str, domain: str
) -> tuple[dict[str, Any], list[str]]:
    """The presentation (decoded from a JWT) and why its holder's proof fails (empty: it
    verifies, made by the holder's key for this ``challenge`` and ``domain``).

    didkit checks the proof only: not the embedded credentials, not ``expirationDate``.
    """
    if isinstance(vp, str):
        return _verify_jwt_presentation(vp.strip(), challenge, domain)
    presentation = dict(vp)
    proof = presentation.get("proof")
    holder = presentation.get("holder")
    errors: list[str] = []
    if set(presentation) != _VP_MEMBERS or presentation["@context"] != [CREDENTIALS_V1]:
        errors.append("the presentation's members or @context are not the ones healthwallet writes")
    elif presentation["type"] != ["VerifiablePresentation"] or not isinstance(holder, str):
        errors.append("the presentation's type or holder is malformed")
    elif not isinstance(proof, dict) or set(proof) != _VP_PROOF_MEMBERS:
        errors.append("the presentation's proof is not one Ed25519Signature2018 proof")
    elif (proof["type"], proof["proofPurpose"]) != (PROOF_TYPE, PRESENTATION_PURPOSE):
        errors.append("the presentation's proof is not an authentication proof")
    elif (proof["challenge"], proof["domain"]) != (challenge, domain):
        errors.append("the presentation is bound to another challenge or domain")
    else:
        errors = _issuer_key_errors(holder, proof["verificationMethod"])
        errors = [e.replace("issuer", "holder") for e in errors]
    if isinstance(proof, dict) and not errors and not pinning.is_pinned_date_time(proof["created"]):
        errors.append("the presentation's proof.created is not written as YYYY-MM-DDThh:mm:ssZ")
    if errors:
        return presentation, errors
    options = {"proofPurpose": PRESENTATION_PURPOSE, "challenge": challenge, "domain": domain}
    options["created"] = _NO_TIME_LIMIT
    return presentation, _didkit_presentation_errors(json.dumps(presentation), options, "proof")


def _verify_jwt_presentation(
    token: str, challenge: str, domain: str
) -> tuple[dict[str, Any], list[str]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise BadInputError("not a presentation (a string must be a compact JWS: three parts)")
    header = _b64url_json(parts[0], "JWT header")
    payload = _b64url_json(parts[1], "JWT payload")
    _b64url_bytes(parts[2], "JWT signature")
    presentation = payload.get("vp")
    if not isinstance(presentation, dict):
        raise BadInputError("the JWT has no vp claim")
    presentation = dict(presentation)
    holder = payload.get("iss")
    presentation.setdefault("holder", holder)
    errors: list[str] = []
    if presentation["holder"] != holder or not isinstance(holder, str):
        errors.append("the JWT's iss and the presentation's holder differ")
    elif header.get("alg") != JWT_ALG or "crit" in header:
        errors.append(f"the JWT's alg is not {JWT_ALG}")
    elif (payload.get("nonce"), payload.get("aud")) != (challenge, domain):
        errors.append("the presentation is bound to another challenge or domain")
    else:
        errors = [
            e.replace("issuer", "holder") for e in _issuer_key_errors(holder, header.get("kid"))
        ]
    if errors:
        return presentation, errors
    options = {"proofFormat": "jwt", "challenge": challenge, "domain": domain}
    return presentation, _didkit_presentation_errors(token, options, "JWS")


def _didkit_presentation_errors(text: str, options: Mapping[str, str], check: str) -> list[str]:
    didkit = _didkit()
    try:
        raw = _call_didkit(lambda: didkit.verify_presentation(text, json.dumps(options)))
    except _DidkitRefusedError as exc:
        return [f"didkit cannot read the presentation ({exc})"]
    checks, errors, _ = _didkit_verdict(raw)
    if not errors and check not in checks:
        errors = ["didkit checked no proof"]
    return errors
