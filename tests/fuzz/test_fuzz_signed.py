"""Class: type confusion an attacker signs with their own key still ends in a documented exit.

A forger can sign anything: mutations that pass the proof reach the checks behind it. Each
input is a real credential (status list, grant) with members damaged and then signed by an
attacker's own did:key, so the shape and status checks see it, not only the proof check.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from healthwallet import grants, statuslist
from healthwallet.credentials import issue_credential
from healthwallet.errors import HealthWalletError
from healthwallet.keys import Identity

from .conftest import Corpus, examples
from .mutate import SIGNABLE_SWAPS, expect_documented, frame, mutated_json, split_framed

ATTACKER = Identity(hashlib.sha256(b"fuzz attacker").digest())
GRANT_MAGIC = b"healthwallet-grant/v1\n"
NOW = datetime.now(UTC)


def sign(credential: Any, fmt: str) -> dict[str, Any] | str | None:
    """``credential`` signed by the attacker, or None when it cannot be signed at all."""
    if not isinstance(credential, dict):
        return None
    credential = dict(credential, issuer=ATTACKER.did)
    credential.pop("proof", None)
    try:
        return issue_credential(credential, ATTACKER, fmt)  # type: ignore[call-overload, no-any-return]
    except HealthWalletError:
        return None


def unsigned(credential: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in credential.items() if k != "proof"}


def test_fuzz_self_signed_status_list(corpus: Corpus) -> None:
    base = unsigned(json.loads(corpus.status_list))
    list_url = base["id"]
    entry = {"type": "StatusList2021Entry", "statusListIndex": "7",
             "statusPurpose": "revocation", "statusListCredential": list_url}

    @settings(max_examples=examples(20))
    @given(mutated_json(base, SIGNABLE_SWAPS), st.sampled_from(["ldp", "jwt"]))
    def run(document: Any, fmt: str) -> None:
        signed = sign(document, fmt)
        if signed is not None:
            expect_documented(lambda: statuslist.check_status(entry, signed, ATTACKER.did))

    run()


def test_fuzz_self_signed_grant(corpus: Corpus) -> None:
    header, payload = split_framed(corpus.grant_ldp, GRANT_MAGIC)
    base = unsigned(header["credential"])

    @settings(max_examples=examples(20))
    @given(mutated_json(base, SIGNABLE_SWAPS), st.sampled_from(["ldp", "jwt"]))
    def run(credential: Any, fmt: str) -> None:
        signed = sign(credential, fmt)
        if signed is None:
            return
        data = frame(GRANT_MAGIC, dict(header, credential=signed), payload)
        expect_documented(lambda: grants.verify_grant(
            io.BytesIO(data), status_source=str(corpus.status_list_path), now=NOW,
            recipient_did=corpus.doctor_did))

    run()
