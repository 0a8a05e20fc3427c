"""The leak check the share tests rely on: it finds real leaks and ignores chance matches."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from leaks import container_text, leaked


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, object]) -> str:
    head = b64(json.dumps({"alg": "EdDSA"}).encode())
    return f"{head}.{b64(json.dumps(claims).encode())}.{b64(bytes(64))}"


def container(header: dict[str, object], payload: bytes) -> bytes:
    body = json.dumps(header).encode()
    return b"healthwallet-share/v1\n" + struct.pack(">I", len(body)) + body + payload


def test_short_secrets_count_only_standing_alone() -> None:
    assert leaked(["Ely"], '{"city": "Ely"}') == ["Ely"]
    assert leaked(["Ely"], "moved to Ely, then back") == ["Ely"]
    assert leaked(["Ely"], "kZ3hElyQ0w-x") == []  # inside base64 noise
    assert leaked(["89301"], "a4f89301be") == []  # inside a hex pseudonym
    assert leaked(["89301"], "zip 89301") == ["89301"]
    assert leaked(["Fairweather"], "xxFairweatherxx") == ["Fairweather"]  # long: anywhere


def test_a_jwt_is_read_decoded() -> None:
    token = jwt({"vc": {"credentialSubject": {"note": "lives in Ely"}}})
    assert "Ely" not in token
    assert leaked(["Ely"], token) == []
    data = container({"credential": token, "envelope": {"records": [{"length": 3}]}}, b"abc")
    assert leaked(["Ely"], container_text(data)) == ["Ely"]


def test_ciphertext_is_set_aside_but_nothing_may_follow_it() -> None:
    header = {"credential": {}, "envelope": {"records": [{"length": 8}]}}
    assert "Ely" not in container_text(container(header, b"xxElyxxx"))
    with pytest.raises(AssertionError, match="beyond the declared"):
        container_text(container(header, b"xxElyxxx" + b" Ely"))
    with pytest.raises(AssertionError, match="not a grant or share file"):
        container_text(b'{"city": "Ely"}')
