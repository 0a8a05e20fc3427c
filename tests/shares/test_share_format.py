"""Share files: build, parse, verify, open; pseudonym keys; tampering and bad inputs."""

from __future__ import annotations

import io
import json
import os
import random
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from leaks import container_text
from local_status import status_path
from share_helpers import (
    EXPIRES,
    LATER,
    NOW,
    OTHER_GROUP,
    POLICY,
    PSEUDONYM,
    RESEARCH,
    Shared,
    dataset_for,
    leaked,
    patient_identity,
    person,
    share,
)

from healthwallet import shares
from healthwallet.credentials import verify_proof
from healthwallet.errors import (
    AccessDeniedError,
    BadInputError,
    NotFoundError,
    UsageError,
    VerificationError,
)
from healthwallet.keys import Identity

PATIENT = patient_identity(1)


@pytest.fixture(scope="module")
def people() -> list[Any]:
    # Both reference styles; the first is 93, the second lives in a restricted ZIP3 area.
    return [
        person(1, age=93, urn_references=True),
        person(2, restricted_zip=True, urn_references=False),
    ]


@pytest.fixture
def shared(tmp_path: Path, people: list[Any]) -> Shared:
    return share(tmp_path / "patient", PATIENT, people)


def own_list(data: bytes) -> shares.StatusLists:
    """The share's own local status list, given as a verifier types a path."""
    path = status_path(data)
    return shares.StatusLists([path] if path and Path(path).is_file() else [])


def verify(data: bytes, **kwargs: Any) -> shares.ShareVerdict:
    kwargs.setdefault("recipient_did", RESEARCH.did)
    kwargs.setdefault("now", LATER)
    kwargs.setdefault("status", own_list(data))
    return shares.verify_share(io.BytesIO(data), **kwargs)


def open_share(data: bytes, identity: Identity, **kwargs: Any) -> shares.OpenedShare:
    kwargs.setdefault("status", own_list(data))
    return shares.open_share(io.BytesIO(data), identity, **kwargs)


# -- keys ------------------------------------------------------------------------------------------


def test_deid_secret_is_its_own_key() -> None:
    one, two = patient_identity(1), patient_identity(2)
    assert one.deid_secret == Identity(one.seed).deid_secret  # deterministic
    assert len(one.deid_secret) == 32
    assert one.deid_secret not in (one.seed, one.vault_key, two.deid_secret)


def test_pseudonyms_link_within_a_study_and_not_across(people: list[Any]) -> None:
    first = dataset_for(PATIENT, people, "study-A")
    again = dataset_for(PATIENT, people, "study-A")
    other_study = dataset_for(PATIENT, people, "study-B")
    other_patient = dataset_for(patient_identity(2), people, "study-A")
    assert first.ndjson() == again.ndjson()
    tokens = set(PSEUDONYM.findall(first.ndjson().decode()))
    assert len(tokens) > 20
    assert tokens.isdisjoint(PSEUDONYM.findall(other_study.ndjson().decode()))
    assert tokens.isdisjoint(PSEUDONYM.findall(other_patient.ndjson().decode()))
    for bad in ("a study with spaces", "study\n", "", "-study", "x" * 201):
        with pytest.raises(UsageError):
            shares.pseudonym_keys(PATIENT, bad)


# -- the dataset ----------------------------------------------------------------------------------


def test_bundles_are_flattened_and_references_still_resolve(people: list[Any]) -> None:
    dataset = dataset_for(PATIENT, people)
    assert all(r["resourceType"] != "Bundle" for r in dataset.resources)
    present = {f"{r['resourceType']}/{r['id']}" for r in dataset.resources}
    references = [
        holder["reference"] for r in dataset.resources for holder in shares._references(r)
    ]
    assert len(references) > 30
    # urn:uuid references became Type/id of the entry they named: every one resolves
    # (`#id` points at a contained resource inside the same resource).
    assert [ref for ref in references if ref not in present and ref[0] != "#"] == []
    assert dataset.categories == sorted({r["resourceType"] for r in dataset.resources})
    lines = dataset.ndjson().splitlines()
    assert len(lines) == len(dataset.resources) == 30
    # the dry-run report says the Bundle's own fields do not leave, whatever the policy kept
    actions = {(c["path"], c["action"]) for c in dataset.changes}
    assert {("Bundle.type", "unbundle"), ("Bundle.entry.fullUrl", "unbundle")} <= actions
    assert ("Bundle.identifier", "redact") in actions
    assert not [
        a
        for p, a in actions
        if p.startswith("Bundle.") and a not in shares._REMOVED_ACTIONS | {"unbundle"}
    ]


def test_the_same_record_twice_is_shared_once(people: list[Any]) -> None:
    once = dataset_for(PATIENT, people[:1])
    twice = dataset_for(PATIENT, [people[0], people[0]])
    assert twice.resources == once.resources
    # the report still counts what happened in each record
    counts = {(c["path"], c["action"]): c["count"] for c in once.changes}
    assert {key: 2 * n for key, n in counts.items()} == {
        (c["path"], c["action"]): c["count"] for c in twice.changes
    }


def test_non_fhir_content_is_refused_by_record_id() -> None:
    with pytest.raises(BadInputError) as caught:
        shares.prepare_dataset(
            [("00c0ffee00c0ffee", b"%PDF-1.7 Wolfgangsdottir")],
            POLICY,
            shares.pseudonym_keys(PATIENT, "s"),
        )
    assert "00c0ffee00c0ffee" in caught.value.message
    assert "Wolfgangsdottir" not in caught.value.message
    nan = b'{"resourceType": "Observation", "id": "o", "status": "final", "valueInteger": NaN}'
    with pytest.raises(BadInputError, match="00c0ffee00c0ffee"):
        shares.prepare_dataset(
            [("00c0ffee00c0ffee", nan)], POLICY, shares.pseudonym_keys(PATIENT, "s")
        )
    with pytest.raises(BadInputError, match="line 2"):
        shares.parse_ndjson(b'{"resourceType": "Patient"}\n{"resourceType": "Patient", "x": NaN}\n')


# -- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ldp", "jwt"])
def test_round_trip_leaks_nothing(tmp_path: Path, people: list[Any], fmt: str) -> None:
    shared = share(tmp_path / "patient", PATIENT, people, fmt=fmt)
    assert shared.data.startswith(b"healthwallet-share/v1\n")
    verdict = verify(shared.data, study="study-A")
    assert verdict.valid, verdict.to_json()
    assert [c.name for c in verdict.checks] == [
        "proof",
        "dataset",
        "validity",
        "study",
        "status",
        "recipient",
    ]
    opened = open_share(shared.data, RESEARCH, now=LATER)
    assert opened.resources == shared.dataset.resources
    assert opened.claims.id == shared.share_id and opened.claims.issuer == PATIENT.did
    assert opened.claims.categories == tuple(shared.dataset.categories)
    assert opened.claims.policy == "safe-harbor"
    assert "sha256:" + opened.claims.policy_digest == POLICY.digest
    secrets = [s for p in people for s in p.secrets]
    text = container_text(shared.data) + "\n".join(json.dumps(r) for r in opened.resources)
    assert leaked(secrets, text) == []
    summary = shared.summary
    assert summary["resources"] == len(opened.resources) and summary["study"] == "study-A"
    assert summary["bytes"] == len(shared.data)


def test_consent_names_policy_and_dataset(shared: Shared) -> None:
    header = shares.read_share_header(io.BytesIO(shared.data))
    credential = header.credential
    assert isinstance(credential, dict)
    assert credential["type"] == ["VerifiableCredential", "ResearchDataConsent"]
    subject = credential["credentialSubject"]
    assert set(subject) == {
        "id",
        "study",
        "purpose",
        "dataCategories",
        "policy",
        "policyDigest",
        "datasetDigest",
    }
    assert "sha256:" + subject["policyDigest"] == POLICY.digest
    assert subject["datasetDigest"] == shared.summary["dataset_digest"]
    assert subject["dataCategories"] == shared.dataset.categories
    assert credential["credentialStatus"]["type"] == "StatusList2021Entry"
    assert credential["expirationDate"] == EXPIRES.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- checks ---------------------------------------------------------------------------------------


def test_each_check_names_its_reason(tmp_path: Path, people: list[Any]) -> None:
    shared = share(tmp_path / "patient", PATIENT, people)
    cases = {
        "wrong-recipient": dict(recipient_did=OTHER_GROUP.did),
        "wrong-study": dict(study="study-B"),
        "expired": dict(now=EXPIRES + timedelta(minutes=2)),
        # issuanceDate is the start of the UTC day the consent was made (format-share.md)
            "not-yet-valid": dict(now=NOW.replace(hour=0) - timedelta(minutes=5)),
    }
    for reason, kwargs in cases.items():
        verdict = verify(shared.data, **kwargs)
        assert not verdict.valid and verdict.to_json()["reason"] == reason, (reason, verdict)
    # within the clock skew (60 s) it is still valid
    assert verify(shared.data, now=EXPIRES + timedelta(seconds=30)).valid
    assert verify(shared.data, now=EXPIRES, skew=timedelta(0)).to_json()["reason"] == "expired"

    with pytest.raises(AccessDeniedError):
        open_share(shared.data, OTHER_GROUP, now=LATER)
    with pytest.raises(VerificationError, match="expired"):
        open_share(shared.data, RESEARCH, now=EXPIRES + timedelta(days=1))


def test_withdrawn_consent_and_status_sources(tmp_path: Path, people: list[Any]) -> None:
    shared = share(tmp_path / "patient", PATIENT, people)
    kept = share(tmp_path / "patient", PATIENT, people[:1])
    old_list = tmp_path / "old-list.json"
    old_list.write_bytes(next((tmp_path / "patient" / "status").glob("*.json")).read_bytes())
    result = shared.registry.revoke(shared.share_id)
    assert result["kind"] == "consent"
    verdict = verify(shared.data)
    assert verdict.to_json()["reason"] == "withdrawn"
    assert verdict.check("status").detail == "consent withdrawn by the patient"  # type: ignore[union-attr]
    assert verify(kept.data).valid
    # A list given by the verifier is used for the consents it belongs to.
    given = shares.StatusLists([str(old_list)])
    assert verify(shared.data, status=given).valid  # a stale copy: StatusList2021 cannot tell
    # Another patient's consent is not judged by this patient's list, nor by its own file://
    # list (a credential's local path is never read); it takes the list given for it.
    stranger = patient_identity(7)
    theirs = share(tmp_path / "stranger", stranger, people[:1])
    assert verify(theirs.data, status=given).to_json()["reason"] == "status-unavailable"
    assert verify(theirs.data).valid  # own_list(): its list, typed as a path
    both = shares.StatusLists([str(old_list), str(status_path(theirs.data))])
    assert verify(theirs.data, status=both).valid and verify(shared.data, status=both).valid
    # A list that cannot be had fails closed.
    (tmp_path / "stranger" / "status" / "1.json").unlink()
    assert verify(theirs.data).to_json()["reason"] == "status-unavailable"
    with pytest.raises(BadInputError):
        shares.StatusLists([str(tmp_path / "patient" / "grants.sqlite")])


def test_status_list_named_by_a_consent_is_never_read_from_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    lists = shares.StatusLists()
    # A directory, a FIFO (a read would hang), stdin, a missing file: one answer, nothing read.
    for target in (tmp_path.as_uri(), fifo.as_uri(), "file:///dev/stdin", "/etc/passwd",
                   (tmp_path / "missing.json").as_uri()):
        with pytest.raises(NotFoundError, match="on its issuer's machine only"):
            lists.lookup({"statusListCredential": target}, PATIENT.did)


def test_dataset_must_match_its_categories(tmp_path: Path, people: list[Any]) -> None:
    class Mislabelled(shares.Dataset):
        @property
        def categories(self) -> list[str]:
            return ["Observation"]

    honest = dataset_for(PATIENT, people[:1])
    shared = share(tmp_path / "p", PATIENT, [], dataset=Mislabelled(honest.resources))
    assert verify(shared.data).valid  # the file is intact and the consent signed ...
    with pytest.raises(VerificationError, match="resource types"):
        open_share(shared.data, RESEARCH, now=LATER)  # ... but it lies


def test_issue_refuses_bad_requests(tmp_path: Path, people: list[Any]) -> None:
    dataset = dataset_for(PATIENT, people[:1])
    for kwargs, fragment in [
        (dict(recipient=PATIENT), "yourself"),
        (dict(study="has space"), "study id"),
        (dict(expires=NOW - timedelta(seconds=1)), "future"),
        (dict(dataset=shares.Dataset([])), "nothing is left"),
    ]:
        with pytest.raises(UsageError, match=fragment):
            share(tmp_path / "p", PATIENT, [], **{"dataset": dataset, **kwargs})  # type: ignore[arg-type]


# -- not a share, tampering -----------------------------------------------------------------------


def test_not_a_share_is_bad_input(shared: Shared, tmp_path: Path) -> None:
    data = shared.data
    header_length = struct.unpack(">I", data[22:26])[0]
    cases = {
        "empty": b"",
        "text": b"hello\n",
        "grant": b"healthwallet-grant/v1\n" + data[22:],
        "future": b"healthwallet-share/v9\n" + data[22:],
        "short-header": data[:40],
        "huge-length": data[:22] + struct.pack(">I", 2**31) + data[26:],
        "truncated": data[:-10],
        "trailing": data + b"\0",
        "not-canonical": data[:22] + struct.pack(">I", header_length + 1) + b" " + data[26:],
    }
    for content in cases.values():
        with pytest.raises(BadInputError):
            shares.verify_share(io.BytesIO(content), now=LATER)
    with pytest.raises(BadInputError, match="grant file"):
        shares.read_share_header(io.BytesIO(cases["grant"]))


def test_random_byte_flips_are_never_accepted(shared: Shared) -> None:
    data = shared.data
    rng = random.Random(11)
    positions = [rng.randrange(len(data)) for _ in range(40)] + [0, 30, len(data) - 1]
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << rng.randrange(8)
        try:
            verdict = verify(bytes(flipped))
        except BadInputError:
            continue
        assert not verdict.valid, position
        with pytest.raises((VerificationError, AccessDeniedError, BadInputError)):
            open_share(bytes(flipped), RESEARCH, now=LATER)


def test_reordered_data_categories_are_refused(shared: Shared) -> None:
    data = shared.data
    header = json.loads(data[26 : 26 + struct.unpack(">I", data[22:26])[0]])
    categories = header["credential"]["credentialSubject"]["dataCategories"]
    assert len(categories) > 1
    categories.reverse()
    # The Linked Data proof signs a @set without its order, so didkit alone would accept this
    # copy; the pinned spelling (healthwallet.pinning) refuses it ...
    result = verify_proof(header["credential"])
    assert not result.ok and "sorted" in result.errors[0]
    body = shares.canonical_json(header)
    changed = data[:22] + struct.pack(">I", len(body)) + body + data[26 + len(body) :]
    # ... and only one order is accepted: other bytes, other file.
    with pytest.raises(BadInputError, match="sorted"):
        verify(changed)
