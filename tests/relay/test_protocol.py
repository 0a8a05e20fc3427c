"""The relay's DID-signed management requests: fresh, bound to the request, used once."""

from __future__ import annotations

import pytest

from healthwallet import keys
from healthwallet.relay import protocol

ALICE = keys.Identity(b"\x01" * 32)
MALLORY = keys.Identity(b"\x02" * 32)
TARGET = "/api/v1/links?x=1"


def _ledger() -> tuple[set[tuple[str, str]], object]:
    seen: set[tuple[str, str]] = set()

    def nonce_seen(did: str, nonce: str, _expires: int) -> bool:
        if (did, nonce) in seen:
            return True
        seen.add((did, nonce))
        return False

    return seen, nonce_seen


def test_signed_request_names_its_signer() -> None:
    _, seen = _ledger()
    header = protocol.sign_request(ALICE, "post", TARGET, b"{}", now=1_000)
    assert protocol.verify_request(header, "POST", TARGET, b"{}", 1_100, seen) == ALICE.did  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "target", "body", "now", "reason"),
    [
        ("POST", TARGET, b'{"a":1}', 1_000, "bad signature"),
        ("DELETE", TARGET, b"{}", 1_000, "bad signature"),
        ("POST", "/api/v1/links?x=2", b"{}", 1_000, "bad signature"),
        ("POST", TARGET, b"{}", 1_000 + protocol.MAX_CLOCK_SKEW + 1, "too far"),
        ("POST", TARGET, b"{}", 1_000 - protocol.MAX_CLOCK_SKEW - 1, "too far"),
    ],
    ids=["body", "method", "target", "late", "early"],
)
def test_request_altered_or_stale_is_refused(
    method: str, target: str, body: bytes, now: int, reason: str
) -> None:
    _, seen = _ledger()
    header = protocol.sign_request(ALICE, "POST", TARGET, b"{}", now=1_000)
    with pytest.raises(protocol.AuthError, match=reason):
        protocol.verify_request(header, method, target, body, now, seen)  # type: ignore[arg-type]


def test_replayed_request_is_refused() -> None:
    _, seen = _ledger()
    header = protocol.sign_request(ALICE, "POST", TARGET, b"{}", now=1_000)
    protocol.verify_request(header, "POST", TARGET, b"{}", 1_000, seen)  # type: ignore[arg-type]
    with pytest.raises(protocol.AuthError, match="replayed"):
        protocol.verify_request(header, "POST", TARGET, b"{}", 1_001, seen)  # type: ignore[arg-type]


def test_signature_by_another_key_under_a_claimed_did_is_refused() -> None:
    _, seen = _ledger()
    forged = protocol.sign_request(MALLORY, "POST", TARGET, b"{}", now=1_000)
    forged = forged.replace(MALLORY.did, ALICE.did)
    with pytest.raises(protocol.AuthError, match="bad signature"):
        protocol.verify_request(forged, "POST", TARGET, b"{}", 1_000, seen)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        'HW-Sig did="x"',
        'HW-Sig did="did:key:z6Mk", ts="1", nonce="aaaaaaaaaaaaaaaaaaaa", sig="AA"',
        "HW-Sig " + "a" * 5000,
        'HW-Sig did="a", did="b", ts="1", nonce="n", sig="s"',
    ],
    ids=["none", "empty", "bearer", "partial", "bad-did", "huge", "duplicate"],
)
def test_malformed_header_is_refused_before_any_crypto(header: str | None) -> None:
    _, seen = _ledger()
    with pytest.raises(protocol.AuthError):
        protocol.verify_request(header, "POST", TARGET, b"{}", 1, seen)  # type: ignore[arg-type]
