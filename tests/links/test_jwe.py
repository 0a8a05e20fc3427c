"""SHL files as compact JWE (dir, A256GCM): round trips, strict headers, bounded inflation."""

from __future__ import annotations

import json
import os
import zlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from healthwallet import keys
from healthwallet.errors import BadInputError, VerificationError
from healthwallet.links import jwe

KEY = bytes(range(32))


def _header(compact: str) -> dict[str, object]:
    return json.loads(keys.b64url_decode(compact.split(".")[0]))


@pytest.mark.parametrize("compress", [True, False], ids=["zip", "plain"])
def test_a_file_round_trips_with_its_content_type(compress: bool) -> None:
    body = json.dumps({"resourceType": "Bundle", "type": "collection"}).encode()
    compact = jwe.encrypt(KEY, body, "application/fhir+json", os.urandom, compress=compress)
    header = _header(compact)
    assert header["alg"] == "dir" and header["enc"] == "A256GCM"
    assert header["cty"] == "application/fhir+json"
    assert ("zip" in header) is compress
    assert compact.split(".")[1] == ""
    assert jwe.decrypt(KEY, compact) == jwe.Decrypted("application/fhir+json", body)


def test_another_key_does_not_open_a_file() -> None:
    compact = jwe.encrypt(KEY, b"{}", "application/fhir+json", os.urandom)
    with pytest.raises(VerificationError):
        jwe.decrypt(bytes(32), compact)


def _forge(header: dict[str, object], plaintext: bytes, *, key: bytes = KEY) -> str:
    protected = keys.b64url(json.dumps(header).encode())
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, plaintext, protected.encode())
    return ".".join([protected, "", keys.b64url(iv), keys.b64url(sealed[:-16]),
                     keys.b64url(sealed[-16:])])


def test_a_decompression_bomb_is_refused_at_the_cap() -> None:
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = squeezer.compress(b"\0" * (8 << 20)) + squeezer.flush()
    assert len(bomb) < 16 << 10
    compact = _forge({"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json",
                      "zip": "DEF"}, bomb)
    with pytest.raises(jwe.DecompressionBombError, match="inflates to more than 1 MiB"):
        jwe.decrypt(KEY, compact, max_plaintext=1 << 20)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"alg": "A256KW", "enc": "A256GCM", "cty": "application/fhir+json"}, "alg dir"),
        ({"alg": "dir", "enc": "A128GCM", "cty": "application/fhir+json"}, "alg dir"),
        ({"alg": "dir", "enc": "A256GCM"}, "content type"),
        ({"alg": "dir", "enc": "A256GCM", "cty": "x\u202e/y"}, "content type"),
        ({"alg": "dir", "enc": "A256GCM", "cty": "a/b", "zip": "GZ"}, "unknown method"),
        ({"alg": "dir", "enc": "A256GCM", "cty": "a/b", "crit": ["exp"]}, "does not know"),
    ],
    ids=["alg", "enc", "no-cty", "bidi-cty", "zip", "crit"],
)
def test_headers_outside_the_profile_are_refused(header: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        jwe.decrypt(KEY, _forge(header, b"{}"))


@pytest.mark.parametrize(
    ("compact", "message"),
    [
        ("a.b.c", "five parts"),
        ("e30.x.AAAA.AAAA.AAAA", "alg dir"),
        ("!!.." + "A" * 16 + ".AA." + "A" * 22, "base64url"),
        ("A" * 200_000_000, "larger than"),
    ],
    ids=["parts", "empty-header", "bad-base64", "huge"],
)
def test_malformed_files_are_refused(compact: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        jwe.decrypt(KEY, compact)


def test_an_encrypted_key_part_is_refused() -> None:
    parts = jwe.encrypt(KEY, b"{}", "application/fhir+json", os.urandom).split(".")
    parts[1] = "AAAA"
    with pytest.raises(BadInputError, match="encrypted key"):
        jwe.decrypt(KEY, ".".join(parts))
