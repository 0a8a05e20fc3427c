"""Shares of one patient for two studies cannot be paired: per-study identities, per-study status
lists, day-rounded times and padded sizes (docs/format-share.md, "Unlinkability across studies").
Real wallets through the CLI, status lists hosted on a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, new_wallet, serving

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deid"))
from synth import make_patient

from healthwallet import shares, studyid
from healthwallet.keys import Identity
from healthwallet.unlock import open_wallet

STUDIES = ("NCT00000001", "urn:study:cardio-2026")

try:  # the lists are served on 127.0.0.1: in-process verifiers opt in, as allow-local-urls does
    from healthwallet.httpfetch import Fetcher  # type: ignore[attr-defined]

    LOCAL_LISTS: dict[str, Any] = {"transport": Fetcher(allow_local=True)}
except ImportError:  # before the guarded fetcher, loopback lists were read as they are
    LOCAL_LISTS = {}
PATIENTS = 4


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def header_of(data: bytes) -> tuple[dict[str, Any], int]:
    """The share's readable header and its length."""
    magic = shares.MAGIC
    (length,) = struct.unpack(">I", data[len(magic) : len(magic) + 4])
    return json.loads(data[len(magic) + 4 : len(magic) + 4 + length]), length


def readable_fields(data: bytes) -> dict[str, str]:
    """Every leaf of the header (path -> JSON value), plus the sizes anyone can measure."""
    header, header_length = header_of(data)
    fields: dict[str, str] = {
        "size:file": str(len(data)),
        "size:header": str(header_length),
        "size:payload": str(len(data) - len(shares.MAGIC) - 4 - header_length),
    }
    stack: list[tuple[str, Any]] = [("", header)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            fields[path] = json.dumps(value)
    return fields


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1: where every patient hosts their status lists."""
    root = tmp_path_factory.mktemp("www")
    with serving(root) as base:
        yield root, base + "/status/"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, www: tuple[Path, str]) -> dict[str, Any]:
    """A research group and four patients, each of whom shared for both studies."""
    root = tmp_path_factory.mktemp("unlinkable")

    def wallet(name: str) -> Cli:
        return new_wallet(root, name)

    research = wallet("research")
    research_did = research.ok("id").out.strip()
    # the lists are on 127.0.0.1 (a setting only where the guarded fetcher refuses loopback)
    research("config", "set", "allow-local-urls", "true")
    rng = random.Random(1010)
    people = [make_patient(rng) for _ in range(PATIENTS)]

    def patient(number: int) -> dict[str, Any]:
        cli = wallet(f"patient-{number}")
        record = root / f"record-{number}.json"
        record.write_text(json.dumps(people[number].bundle))
        cli.ok("record", "add", record)
        cli.ok("config", "set", "status-url", www[1])
        files = {}
        for study in STUDIES:
            out = root / f"p{number}-{hashlib.sha256(study.encode()).hexdigest()[:8]}.hwshare"
            cli.ok("share", research_did, "--study", study, "--type", "fhir", "--out", out)
            files[study] = out
        cli.ok("status", "publish", "--out", www[0] / "status")
        return {"cli": cli, "did": cli.ok("id").out.strip(), "files": files}

    with ThreadPoolExecutor(max_workers=2) as pool:
        patients = list(pool.map(patient, range(PATIENTS)))
    return {"root": root, "research": research, "patients": patients}


def test_shares_of_one_patient_for_two_studies_cannot_be_paired(world: dict[str, Any]) -> None:
    first, second = STUDIES
    fields = {
        study: [readable_fields(p["files"][study].read_bytes()) for p in world["patients"]]
        for study in STUDIES
    }
    for path in fields[first][0]:
        for i in range(PATIENTS):
            # Does patient i's value in study 1 match their value in study 2 any more than
            # it matches another patient's? Then this field pairs the two files.
            same = fields[first][i][path] == fields[second][i].get(path)
            for j in range(PATIENTS):
                other = fields[first][i][path] == fields[second][j].get(path)
                assert same == other, f"{path} pairs patient {i}'s shares ({same} vs {j}: {other})"

    # Sizes say the size class and nothing else: every file of one study has the same size.
    for study in STUDIES:
        assert len({f["size:file"] for f in fields[study]}) == 1, study
        payload = int(fields[study][0]["size:payload"])
        assert payload > studyid.MIN_PADDED_BYTES  # padded, plus the AEAD's tags

    # Nothing that names the patient or the machine: no wallet DID, no path, no user name.
    for patient in world["patients"]:
        for study in STUDIES:
            data = patient["files"][study].read_bytes()
            text = header_of(data)[0]
            blob = json.dumps(text)
            assert patient["did"] not in blob
            assert "file:" not in blob and str(world["root"]) not in blob
            credential = text["credential"]
            assert credential["issuer"] != patient["did"]
            assert credential["credentialStatus"]["statusListCredential"].endswith(".json")
            assert credential["issuanceDate"].endswith("T00:00:00Z")
            assert credential["proof"]["created"].endswith("T00:00:00Z")
            assert credential["expirationDate"].endswith("T00:00:00Z")
            index = int(credential["credentialStatus"]["statusListIndex"])
            assert studyid.INDEX_LOW <= index < studyid.INDEX_HIGH

    # ...and the research group still ingests them: the per-study identity's proofs and lists
    # verify, and one patient is one patient within a study.
    research = world["research"]
    for study in STUDIES:
        out = world["root"] / f"dataset-{hashlib.sha256(study.encode()).hexdigest()[:8]}"
        files = [p["files"][study] for p in world["patients"]]
        result = research.ok(
            "research", "ingest", *files, "--k", "1", "--study", study, "--out", out, "--json"
        ).json()
        assert result["rejected"] == [] and result["patients"] == PATIENTS


def identity_of(cli: Cli) -> Identity:
    return open_wallet(cli.home, lambda new: cli.env["HEALTHWALLET_PASSPHRASE"]).identity


def test_consent_is_signed_by_the_per_study_identity_and_revoke_still_withdraws_it(
    world: dict[str, Any], www: tuple[Path, str]
) -> None:
    patient = world["patients"][0]
    cli = patient["cli"]
    identity = identity_of(cli)
    research = identity_of(world["research"])
    share_ids = {}
    for study in STUDIES:
        with patient["files"][study].open("rb") as handle:
            lists = shares.StatusLists(**LOCAL_LISTS)
            opened = shares.open_share(handle, research, study=study, status=lists)
        assert opened.claims.issuer == studyid.study_identity(identity, study).did
        share_ids[study] = opened.claims.id

    revoked = cli.ok("revoke", share_ids[STUDIES[0]], "--json").json()
    assert revoked["status"] == "revoked"
    cli.ok("status", "publish", "--out", www[0] / "status")
    verdicts = {}
    for study in STUDIES:
        with patient["files"][study].open("rb") as handle:
            verdicts[study] = shares.verify_share(
                handle, recipient_did=research.did, status=shares.StatusLists(**LOCAL_LISTS)
            )
    assert verdicts[STUDIES[0]].to_json()["reason"] == "withdrawn"
    assert verdicts[STUDIES[1]].valid  # a withdrawal for one study leaves the other alone
    listed = {g["grant_id"]: g["status"] for g in cli.ok("grants", "--json").json()["grants"]}
    assert listed[share_ids[STUDIES[0]]] == "revoked"
    assert listed[share_ids[STUDIES[1]]] == "active"


def test_share_without_a_hostable_status_location_is_refused(
    world: dict[str, Any], tmp_path: Path
) -> None:
    cli = new_wallet(tmp_path, "unhosted-patient")
    record = tmp_path / "r.json"
    record.write_text(json.dumps(make_patient(random.Random(7)).bundle))
    cli.ok("record", "add", record)
    research_did = world["research"].ok("id").out.strip()
    out = tmp_path / "s.hwshare"
    args = ["share", research_did, "--study", STUDIES[0], "--type", "fhir", "--out", out]
    before = snapshot(cli.home)
    refused = cli(*args)
    assert refused.code == 2, refused
    assert refused.err.startswith("error: research shares need a hostable status location")
    assert "hint: set one with `healthwallet config set status-url https://" in refused.err
    assert "Traceback" not in refused.err
    as_json = cli(*args, "--json")
    assert as_json.code == 2 and as_json.json()["error"]["exit_code"] == 2
    assert not out.exists() and snapshot(cli.home) == before  # no slot, no list, no log entry
    # a dry run shows what would leave and needs no status location
    cli.ok("share", research_did, "--study", STUDIES[0], "--type", "fhir", "--dry-run")
    # a file:// location is not hostable either (refused by `share`, or already by `config set`)
    if cli("config", "set", "status-url", (tmp_path / "status").as_uri() + "/").code == 0:
        assert cli(*args).code == 2
    assert not out.exists()


def test_dataset_padding_is_json_whitespace_every_reader_skips() -> None:
    assert studyid.padded_length(1) == studyid.MIN_PADDED_BYTES
    assert studyid.padded_length(studyid.MIN_PADDED_BYTES + 1) == 2 * studyid.MIN_PADDED_BYTES
    assert studyid.padded_length(shares.MAX_DATASET_BYTES) == shares.MAX_DATASET_BYTES
    lines = [b'{"id":"p%d","resourceType":"Patient"}' % n for n in range(3)]
    ndjson = b"".join(line + b"\n" for line in lines)
    padded = studyid.pad_dataset(ndjson)
    assert len(padded) == studyid.MIN_PADDED_BYTES
    assert [line.rstrip(b" ") for line in padded.split(b"\n")[:-1]] == lines
    sizes = [len(line) for line in padded.split(b"\n")[:-1]]
    assert max(sizes) - min(sizes) <= 1  # spread over the lines, no one line grows alone
    assert [r["id"] for r in shares.parse_ndjson(padded)] == ["p0", "p1", "p2"]


def test_per_study_identity_is_its_own_key_for_each_study() -> None:
    wallet = Identity(hashlib.sha256(b"patient").digest())
    one, two = (studyid.study_identity(wallet, s) for s in STUDIES)
    assert one == studyid.study_identity(wallet, STUDIES[0])  # deterministic
    assert len({wallet.did, one.did, two.did}) == 3
    assert one.seed not in (wallet.seed, wallet.vault_key, wallet.deid_secret)
    draws = iter(bytes([b]) for b in io.BytesIO(bytes(range(256)) * 40).read())
    indexes = {
        studyid.draw_index(lambda n: b"".join(next(draws) for _ in range(n))) for _ in range(100)
    }
    assert all(studyid.INDEX_LOW <= i < studyid.INDEX_HIGH for i in indexes)


def test_per_study_lists_are_still_signed_after_a_key_rotation(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from healthwallet import statuslist
    from healthwallet.errors import UsageError
    from healthwallet.issued import IssuedGrants

    old, new = (Identity(hashlib.sha256(n).digest()) for n in (b"old key", b"new key"))
    group = Identity(hashlib.sha256(b"group").digest()).did
    expires = datetime.now(UTC) + timedelta(days=30)
    with pytest.raises(UsageError, match="hostable status location"):
        IssuedGrants(tmp_path, old).reserve(group, expires, study=STUDIES[0])
    base = "https://status.example.org/hw/"
    before = IssuedGrants(tmp_path, old, status_base_url=base)
    reservation = before.reserve(group, expires, study=STUDIES[0])
    before.confirm_consent(reservation, STUDIES[0])
    assert reservation.list_url.startswith(base) and reservation.list_url != base + "1.json"
    after = IssuedGrants(tmp_path, new, status_base_url=base, retired=(old,))
    result = after.revoke(reservation.grant_id)
    status_file = Path(result["status_file"])
    assert status_file.name == reservation.list_url.rsplit("/", 1)[-1]
    credential = json.loads(status_file.read_text())
    signer = studyid.study_identity(old, STUDIES[0]).did
    assert statuslist.check_status(reservation.entry, credential, signer) is True
    # a slot given back leaves a list no consent names: publishing skips it, and goes on
    given_back = after.reserve(group, expires, study=STUDIES[1])
    after.release(given_back)
    published = after.publish(tmp_path / "www")
    assert [p.name for p in published] == [status_file.name]
