"""Issuing and verifying W3C Verifiable Credentials (Data Model 1.1) with didkit.

This is the only module that imports didkit, and it does so lazily, on the first call, so
commands that never sign or verify start fast. Two proof formats (docs/credentials.md):

- ``ldp``: a JSON-LD credential with an ``Ed25519Signature2018`` proof (assertionMethod).
- ``jwt``: a compact JWS (``alg`` EdDSA, ``kid`` = the issuer's verification method), VC-JWT
  as in VC Data Model 1.1 §6.3.1.

:func:`verify_proof` checks the signature and that it was made by a key of the issuer. It does
NOT judge time: ``issuanceDate``/``expirationDate`` (and ``nbf``/``exp``) are checked by the
caller on its own injectable clock (healthwallet.grants ValidityPolicy). Only Ed25519
``did:key`` issuers are accepted, so verifying never touches the network.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Literal, overload

from . import jsonutil, keys, pinning
from .contexts import (
    BUNDLED_CONTEXT_URLS,
    CONSENT_CONTEXT,
    CREDENTIALS_V1,
    GRANT_CONTEXT,
    JSON_LITERAL_TERMS,
    is_known_context,
)
from .errors import BadInputError, InternalError, UsageError

Format = Literal["ldp", "jwt"]
FORMATS: tuple[Format, ...] = ("ldp", "jwt")

PROOF_TYPE = "Ed25519Signature2018"
PROOF_PURPOSE = "assertionMethod"
JWT_ALG = "EdDSA"

# didkit drops a Linked Data proof whose `created` is later than the verifier's "now" (the
# system clock). Time is judged by the caller, so verification passes a moment no proof can
# be later than.
_NO_TIME_LIMIT = "9999-12-31T23:59:59Z"
# didkit 0.3.3 refuses a JWT whose `exp` has passed on the system clock, with this message.
_DIDKIT_JWT_TIME_REFUSAL = "No applicable JWS or proof"

_B64URL_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+\Z")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")
_INVALID_URI = re.compile(r"Invalid URI: .*?(?= at line \d|$)", re.DOTALL)

__all__ = [
    "CONSENT_CONTEXT",
    "FORMATS",
    "GRANT_CONTEXT",
    "Format",
    "ProofResult",
    "issue_credential",
    "verify_proof",
]


@dataclass(frozen=True)
class ProofResult:
    """The outcome of checking one credential's proof (nothing else is judged)."""

    ok: bool
    credential: dict[str, Any]
    """The credential in Data Model form (for ``jwt``: decoded from the token)."""
    errors: list[str]
    fmt: Format
    warnings: list[str] = field(default_factory=list)


# -- the didkit adapter --------------------------------------------------------------------------

_didkit_module: ModuleType | None = None


def _didkit() -> ModuleType:
    global _didkit_module
    if _didkit_module is None:
        import didkit

        _didkit_module = didkit
    return _didkit_module


def _call_didkit(call: Callable[[], Awaitable[str]]) -> str:
    """Run one didkit coroutine to completion from synchronous code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # called from async code: give didkit a loop of its own in a helper thread
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(_call_didkit, call).result()

    async def main() -> str:
        return await call()  # didkit needs the running loop when the call is made

    try:
        return asyncio.run(main())
    except Exception as exc:  # DIDKitException, or ValueError from its JSON parser
        raise _DidkitRefusedError(_safe_error(str(exc))) from None
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":  # a Rust panic inside didkit
            raise _DidkitRefusedError("didkit failed on this input") from None
        raise
    finally:
        _settle_didkit_threads()


class _DidkitRefusedError(Exception):
    """didkit refused its input; the message has no quoted input in it."""


def _settle_didkit_threads(deadline: float = 10.0) -> None:
    """Wait until no didkit (tokio) thread is still inside asyncio's call_soon_threadsafe.

    didkit hands its result over from a tokio thread via ``loop.call_soon_threadsafe``. That
    thread can lose the GIL half-way (the waiting main thread asks for it), so the main thread
    sees the result and may run on to interpreter shutdown while the tokio thread still
    needs the GIL back to finish. A thread taking the GIL during finalization is ended with
    pthread_exit, which a Rust thread cannot survive: exit 134 (abort) or 139 (segfault).
    Letting that thread finish first removes the race (docs/credentials.md, "didkit and
    process exit").
    """
    end = time.monotonic() + deadline
    while _didkit_thread_in_python() and time.monotonic() < end:
        time.sleep(0.0005)


def _didkit_thread_in_python() -> bool:
    known = {thread.ident for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident in known:
            continue
        walker: Any = frame
        while walker is not None:
            if walker.f_code.co_name == "call_soon_threadsafe":
                return True
            walker = walker.f_back
    return False


def _safe_error(message: str) -> str:
    """A didkit message without quoted input (which could be health data), kept short."""
    text = _INVALID_URI.sub("Invalid URI", _QUOTED.sub('"…"', message.strip()))
    return text[:300] or "rejected"


# -- issuing -------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise UsageError("a time without a time zone was given", "pass an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _issuer_id(credential: Mapping[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    if isinstance(issuer, Mapping):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else None


def _context_urls(context: object) -> list[str]:
    items = context if isinstance(context, list) else [context]
    return [item for item in items if isinstance(item, str)]


def _check_unsigned(credential: Mapping[str, Any], identity: keys.Identity) -> None:
    context = credential.get("@context")
    urls = _context_urls(context)
    # VC Data Model 1.1 §4.1: the first context is the credentials v1 context.
    if not urls or (context[0] if isinstance(context, list) else context) != CREDENTIALS_V1:
        raise UsageError("a credential's first @context must be " + CREDENTIALS_V1)
    unknown = [url for url in urls if url not in BUNDLED_CONTEXT_URLS]
    if unknown:
        raise UsageError(
            f"@context {unknown[0]} cannot be used (nothing is fetched)",
            "define extra terms in an inline context object (healthwallet.contexts)",
        )
    if not is_known_context(context):
        raise UsageError(
            "the credential's @context is not one healthwallet issues",
            "use a context list from healthwallet.contexts as it is",
        )
    if _has_keyword_key({k: v for k, v in credential.items() if k != "@context"}):
        raise UsageError("the credential uses JSON-LD keywords inside the document")
    if "proof" in credential:
        raise UsageError("the credential already carries a proof")
    if _issuer_id(credential) != identity.did:
        raise UsageError("the credential's issuer is not this wallet's DID")


@overload
def issue_credential(
    credential: Mapping[str, Any],
    identity: keys.Identity,
    fmt: Literal["ldp"] = "ldp",
    now: datetime | None = None,
) -> dict[str, Any]: ...
@overload
def issue_credential(
    credential: Mapping[str, Any],
    identity: keys.Identity,
    fmt: Literal["jwt"],
    now: datetime | None = None,
) -> str: ...
@overload
def issue_credential(
    credential: Mapping[str, Any],
    identity: keys.Identity,
    fmt: Format,
    now: datetime | None = None,
) -> dict[str, Any] | str: ...
def issue_credential(
    credential: Mapping[str, Any],
    identity: keys.Identity,
    fmt: Format = "ldp",
    now: datetime | None = None,
) -> dict[str, Any] | str:
    """Sign ``credential`` as ``identity``: a VC dict with a proof (ldp) or a compact JWS (jwt)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown credential format {fmt!r}", "use ldp or jwt")
    _check_unsigned(credential, identity)
    created = _iso(now if now is not None else datetime.now(UTC))
    options: dict[str, str] = {
        "proofPurpose": PROOF_PURPOSE,
        "verificationMethod": identity.verification_method,
    }
    if fmt == "jwt":
        options["proofFormat"] = "jwt"  # nbf/exp come from issuanceDate/expirationDate
    else:
        options["type"] = PROOF_TYPE
        options["created"] = created
    didkit = _didkit()
    try:
        unsigned = json.dumps(credential)
    except (TypeError, ValueError):
        raise UsageError("the credential is not plain JSON") from None
    key = identity.jwk()
    try:
        signed = _call_didkit(lambda: didkit.issue_credential(unsigned, json.dumps(options), key))
    except _DidkitRefusedError as exc:
        raise UsageError(f"didkit cannot sign this credential ({exc})") from None
    if fmt == "jwt":
        return signed.strip()
    parsed = jsonutil.loads(signed)
    if not isinstance(parsed, dict):
        raise InternalError("didkit returned something other than a credential")
    return parsed


# -- verifying -----------------------------------------------------------------------------------


def verify_proof(vc: Mapping[str, Any] | str) -> ProofResult:
    """Check the proof of a credential (dict: ldp, str: JWT); BadInputError if not a credential."""
    if isinstance(vc, str):
        return _verify_jwt(vc)
    if isinstance(vc, Mapping):
        return _verify_ldp(vc)
    raise BadInputError("not a credential (neither a JSON object nor a JWT)")


def _require_credential_shape(credential: object, what: str) -> dict[str, Any]:
    if not isinstance(credential, dict):
        raise BadInputError(f"{what} is not a JSON object")
    types = credential.get("type")
    type_list = types if isinstance(types, list) else [types]
    if "@context" not in credential or "VerifiableCredential" not in type_list:
        raise BadInputError(f"{what} is not a verifiable credential (no @context or type)")
    return credential


def _didkit_verdict(raw: str) -> tuple[list[str], list[str], list[str]]:
    try:
        report = jsonutil.loads(raw)
        checks = [str(c) for c in report.get("checks", [])]
        errors = [_safe_error(str(e)) for e in report.get("errors", [])]
        warnings = [_safe_error(str(w)) for w in report.get("warnings", [])]
    except (ValueError, AttributeError):
        return [], ["didkit returned an unreadable report"], []
    return checks, errors, warnings


def _issuer_key_errors(issuer: str | None, method: object) -> list[str]:
    """Errors unless ``method`` is the verification method of ``issuer``, an Ed25519 did:key."""
    if issuer is None:
        return ["the credential has no issuer"]
    if not keys.is_did_key(issuer):
        return ["the issuer is not an Ed25519 did:key (no other DID is resolved)"]
    if not isinstance(method, str) or method.split("#", 1)[0] != issuer:
        return ["the proof's verification method does not belong to the issuer"]
    if method != keys.verification_method(issuer):
        return ["the proof's verification method is not the issuer's key"]
    return []


def _verify_ldp(vc: Mapping[str, Any]) -> ProofResult:
    try:
        text = json.dumps(vc)
    except (TypeError, ValueError):
        raise BadInputError("the credential is not plain JSON") from None
    credential = _require_credential_shape(jsonutil.loads(text), "the credential")

    def failed(*errors: str) -> ProofResult:
        return ProofResult(False, credential, list(errors), "ldp")

    proof = credential.get("proof")
    if proof is None:
        return failed("the credential has no proof")
    if not isinstance(proof, dict):
        return failed("the credential must carry exactly one proof")
    if proof.get("type") != PROOF_TYPE:
        return failed(f"the proof is not an {PROOF_TYPE}")
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        return failed("the proof's purpose is not assertionMethod")
    key_errors = _issuer_key_errors(_issuer_id(credential), proof.get("verificationMethod"))
    if key_errors:
        return failed(*key_errors)
    profile_errors = _json_view_errors(credential) or pinning.spelling_errors(credential)
    if profile_errors:
        return failed(*profile_errors)

    didkit = _didkit()
    options = json.dumps({"proofPurpose": PROOF_PURPOSE, "created": _NO_TIME_LIMIT})
    try:
        raw = _call_didkit(lambda: didkit.verify_credential(text, options))
    except _DidkitRefusedError as exc:
        return failed(f"didkit cannot read the credential ({exc})")
    checks, errors, warnings = _didkit_verdict(raw)
    if not errors and "proof" not in checks:
        errors = ["didkit checked no proof"]
    return ProofResult(not errors, credential, errors, "ldp", warnings)


# The detached JWS of an Ed25519Signature2018 proof: unencoded payload (RFC 7797 §3).
_DETACHED_JWS_HEADER = {"alg": JWT_ALG, "b64": False, "crit": ["b64"]}


def _json_view_errors(credential: Mapping[str, Any]) -> list[str]:
    """Errors unless the JSON a reader sees is exactly what the Linked Data proof signs.

    The proof signs the RDF graph, not the JSON text. With a context we did not write, or
    with JSON-LD keywords inside the document, two different JSON documents can have the same
    graph (terms renamed or swapped, unused definitions edited), and the signature would still
    verify. So the context must be one healthwallet issues, the only keyword is the top-level
    ``@context`` (JSON literals aside), and the proof's JWS must be in its one canonical form.
    """
    if not is_known_context(credential.get("@context")):
        return ["the credential's @context is not one healthwallet issues"]
    if _has_keyword_key({k: v for k, v in credential.items() if k != "@context"}):
        return ["the credential uses JSON-LD keywords inside the document"]
    proof = credential.get("proof")
    jws = proof.get("jws") if isinstance(proof, Mapping) else None
    parts = jws.split(".") if isinstance(jws, str) else []
    if len(parts) != 3 or parts[1] != "":
        return ["the proof's jws is not a detached JWS"]
    try:
        header = _b64url_json(parts[0], "proof's JWS header")
        signature = _b64url_bytes(parts[2], "proof's signature")
    except BadInputError as exc:
        return [exc.message]
    if header != _DETACHED_JWS_HEADER or len(signature) != 64:
        return ["the proof's jws is not an EdDSA detached JWS"]
    return []


def _has_keyword_key(value: object) -> bool:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("@"):
                return True
            if key not in JSON_LITERAL_TERMS and _has_keyword_key(item):
                return True
    elif isinstance(value, list):
        return any(_has_keyword_key(item) for item in value)
    return False


def _b64url_json(segment: str, what: str) -> dict[str, Any]:
    raw = _b64url_bytes(segment, what)
    try:
        value = jsonutil.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadInputError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadInputError(f"the {what} is not a JSON object")
    return value


def _b64url_bytes(segment: str, what: str) -> bytes:
    if not _B64URL_SEGMENT.match(segment):
        raise BadInputError(f"the {what} is not base64url")
    try:
        raw = keys.b64url_decode(segment)
    except (binascii.Error, ValueError):
        raise BadInputError(f"the {what} is not base64url") from None
    if keys.b64url(raw) != segment:  # RFC 7515 §2: no padding, canonical trailing bits
        raise BadInputError(f"the {what} is not canonical base64url")
    return raw


def _seconds_to_iso(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def _same_instant(iso_text: object, seconds: object) -> bool:
    if not isinstance(iso_text, str) or isinstance(seconds, bool):
        return False
    if not isinstance(seconds, int | float):
        return False
    try:
        moment = datetime.fromisoformat(iso_text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        return False
    return int(moment.timestamp()) == int(seconds)


def _decode_jwt_credential(payload: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """VC Data Model 1.1 §6.3.1 (JWT decoding): the ``vc`` claim plus the registered claims."""
    credential = _require_credential_shape(payload.get("vc"), "the JWT's vc claim")
    credential = json.loads(json.dumps(credential))
    errors: list[str] = []
    iss = payload.get("iss")
    if iss is not None:
        if "issuer" not in credential:
            credential["issuer"] = iss
        elif _issuer_id(credential) != iss:
            errors.append("the JWT's iss and the credential's issuer differ")
    jti = payload.get("jti")
    if jti is not None:
        if "id" not in credential:
            credential["id"] = jti
        elif credential["id"] != jti:
            errors.append("the JWT's jti and the credential's id differ")
    subject = credential.get("credentialSubject")
    sub = payload.get("sub")
    if sub is not None and isinstance(subject, dict):
        if "id" not in subject:
            subject["id"] = sub
        elif subject["id"] != sub:
            errors.append("the JWT's sub and the credential subject's id differ")
    for claim, member in (("nbf", "issuanceDate"), ("exp", "expirationDate")):
        seconds = payload.get(claim)
        if seconds is None:
            continue
        if member not in credential:
            filled = _seconds_to_iso(seconds)
            if filled is None:
                errors.append(f"the JWT's {claim} is not a time")
            else:
                credential[member] = filled
        elif not _same_instant(credential[member], seconds):
            errors.append(f"the JWT's {claim} and the credential's {member} differ")
    return credential, errors


def _verify_jwt(token: str) -> ProofResult:
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3:
        raise BadInputError("not a credential (a string must be a compact JWS: three parts)")
    header = _b64url_json(parts[0], "JWT header")
    payload = _b64url_json(parts[1], "JWT payload")
    signature = _b64url_bytes(parts[2], "JWT signature")
    credential, errors = _decode_jwt_credential(payload)
    errors = errors or pinning.spelling_errors(credential)

    def failed(*more: str) -> ProofResult:
        return ProofResult(False, credential, [*errors, *more], "jwt")

    if errors:
        return failed()
    if header.get("alg") != JWT_ALG:
        return failed(f"the JWT's alg is not {JWT_ALG}")
    if "crit" in header:
        return failed("the JWT has critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str):
        return failed("the JWT header has no kid")
    key_errors = _issuer_key_errors(_issuer_id(credential), kid)
    if key_errors:
        return failed(*key_errors)

    didkit = _didkit()
    options = json.dumps({"proofFormat": "jwt", "created": _NO_TIME_LIMIT})
    try:
        raw = _call_didkit(lambda: didkit.verify_credential(token, options))
    except _DidkitRefusedError as exc:
        return failed(f"didkit cannot read the JWT ({exc})")
    checks, didkit_errors, warnings = _didkit_verdict(raw)
    if not didkit_errors and "JWS" in checks:
        return ProofResult(True, credential, [], "jwt", warnings)
    if didkit_errors == [_DIDKIT_JWT_TIME_REFUSAL] and _expired_by_system_clock(payload):
        # didkit judges `exp` on the system clock and will not check the signature of an
        # expired JWT. Expiry is the caller's call, so check the EdDSA signature here
        # (RFC 8037 §3.1 over the JWS signing input, RFC 7515 §5.2), with the key the
        # issuer's did:key names (checked above).
        signing_input = (parts[0] + "." + parts[1]).encode("ascii")
        public_key = keys.ed25519_from_did(kid.split("#", 1)[0])
        if keys.verify_signature(public_key, signing_input, signature):
            note = "expired on the system clock: signature checked without didkit"
            return ProofResult(True, credential, [], "jwt", [*warnings, note])
        return failed("the JWT's signature does not verify")
    return failed(*(didkit_errors or ["didkit checked no JWS"]))


def _expired_by_system_clock(payload: Mapping[str, Any]) -> bool:
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return False
    return exp <= time.time()


def did_of(identity: keys.Identity) -> str:
    """The identity's did:key as didkit computes it (``key_to_did``), checked against ours."""
    did = str(_didkit().key_to_did("key", identity.jwk()))
    if did != identity.did:
        raise InternalError("didkit and healthwallet disagree on the did:key encoding")
    return did
