"""Research sharing end to end through the CLI: 12 patients, a research group, consents withdrawn
(status list as a file and over real HTTP), expired and misaddressed, k-anonymity at ingest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import Cli, new_wallet, serving
from leaks import container_text, leaked
from local_status import local_lists, typing_status_lists

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deid"))
from synth import SynthPatient, make_patient

from healthwallet import shares
from healthwallet.deid import quasi_identifiers
from healthwallet.httpfetch import Fetcher
from healthwallet.keys import Identity
from healthwallet.unlock import open_wallet

STUDY = "study-A"
# Three classes of four, three, four (gender, age, ZIP3 alike) and one 93-year-old alone in a
# restricted ZIP3 area: with k=3 exactly that one patient is suppressed.
PROFILES = [
    *[dict(gender="female", age=40, zip5="02139")] * 4,
    *[dict(gender="male", age=62, zip5="97205")] * 4,
    *[dict(gender="female", age=25, zip5="80202")] * 3,
    dict(gender="other", age=93, zip5="03601", restricted_zip=True),
]
PSEUDONYM = re.compile(r"[0-9a-f]{64}")


def did(cli: Cli) -> str:
    return cli.ok("id").out.strip()


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with the SHA-256 of its content."""
    files = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                files[str(path)] = "dir"
    return files


# The patients' lists are served from 127.0.0.1, which the guarded fetcher refuses unless local
# URLs are allowed, as the research group's `allow-local-urls` setting does in the CLI.
LOCAL_FETCHER = Fetcher(allow_local=True)


def identity_of(cli: Cli) -> Identity:
    return open_wallet(cli.home, lambda new: cli.env["HEALTHWALLET_PASSPHRASE"]).identity


def open_with(identity: Identity, path: Path) -> shares.OpenedShare:
    """Decrypt a share file in the test, with the research group's own identity."""
    with path.open("rb") as handle:
        lists = shares.StatusLists(local_lists([path]), transport=LOCAL_FETCHER)
        return shares.open_share(handle, identity, status=lists)


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a directory."""
    root = tmp_path_factory.mktemp("www")
    with serving(root) as base:
        yield root, base


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, www: tuple[Path, str]) -> dict[str, Any]:
    """A research group, another group, 12 patients who shared for study-A, and three more
    patients for the withdrawal and expiry cases. Built in parallel to keep it fast."""
    root = tmp_path_factory.mktemp("share-cli")

    def wallet(name: str) -> Cli:
        return typing_status_lists(new_wallet(root, name))

    with ThreadPoolExecutor(max_workers=4) as pool:
        research, other = pool.map(wallet, ["research", "other-group"])
    research.ok("config", "set", "clock-skew-seconds", "0")
    research.ok("config", "set", "allow-local-urls", "true")  # the lists are on 127.0.0.1
    research_did = did(research)
    rng = random.Random(2026)
    people = [
        make_patient(rng, old_address=False, urn_references=n % 2 == 0, **p)  # type: ignore[arg-type]
        for n, p in enumerate(PROFILES)
    ]
    extra_people = [make_patient(rng) for _ in range(3)]

    def patient(number: int, person: SynthPatient, expires: str | None = None) -> dict[str, Any]:
        cli = wallet(f"patient-{number}")
        family = person.bundle["entry"][0]["resource"]["name"][0]["family"]
        labs = root / f"labs-{family}-{number}.json"  # the file name is identifying too
        labs.write_text(json.dumps(person.bundle))
        record = cli.ok("record", "add", labs, "--label", f"labs of {family}", "--json").json()
        # consents need a hostable status location (here a real server on 127.0.0.1)
        cli.ok("config", "set", "status-url", www[1] + "/status/")
        out = root / f"p{number}-{STUDY}.hwshare"
        args = ["share", research_did, "--study", STUDY, "--type", "fhir", "--out", out, "--json"]
        result = cli.ok(*args, *(["--expires", expires] if expires else []))
        summary = result.json()
        assert "note:" not in result.err and summary["status_list"].startswith(www[1])
        cli.ok("status", "publish", "--out", www[0] / "status")
        return {
            "cli": cli,
            "person": person,
            "file": out,
            "summary": summary,
            "record": record["records"][0]["id"],
            "did": did(cli),
        }

    jobs = [(n, p, None) for n, p in enumerate(people)]
    jobs += [
        (100, extra_people[0], "3s"),  # expires soon
        (101, extra_people[1], None),  # withdrawn, list given as a file
        (102, extra_people[2], None),  # withdrawn, list over HTTP
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        made = list(pool.map(lambda job: patient(*job), jobs))
    return {
        "root": root,
        "www": www[0],
        "research": research,
        "research_did": research_did,
        "other": other,
        "patients": made[:12],
        "expiring": made[12],
        "withdrawn_file": made[13],
        "withdrawn_http": made[14],
    }


def test_share_files_hold_no_identifier_and_pseudonyms_link_only_within_a_study(
    world: dict[str, Any],
) -> None:
    research = identity_of(world["research"])
    for entry in world["patients"]:
        summary = entry["summary"]
        assert set(summary) >= {"share_id", "recipient", "study", "resources", "file"}
        assert summary["recipient"] == world["research_did"] and summary["study"] == STUDY
        assert summary["share_id"].startswith("urn:uuid:") and summary["file"] == str(entry["file"])
        opened = open_with(research, entry["file"])
        assert len(opened.resources) == summary["resources"] == 15
        plaintext = "\n".join(json.dumps(r) for r in opened.resources)
        raw = container_text(entry["file"].read_bytes())
        secrets = entry["person"].secrets
        assert leaked(secrets, plaintext) == [], "identifiers in the decrypted dataset"
        assert leaked(secrets, raw) == [], "identifiers in the share file"
        assert entry["record"] not in raw  # not even the wallet's record id

    # The same patient again, same study: the same pseudonyms. Another study: none in common.
    first = world["patients"][0]
    cli = first["cli"]
    again, other_study = (
        first["file"].with_name("again.hwshare"),
        first["file"].with_name("b.hwshare"),
    )
    cli.ok(
        "share",
        world["research_did"],
        "--study",
        STUDY,
        "--record",
        first["record"],
        "--out",
        again,
    )
    cli.ok(
        "share", world["research_did"], "--study", "study-B", "--type", "fhir", "--out", other_study
    )
    cli.ok("status", "publish", "--out", world["www"] / "status")
    tokens = {
        name: set(PSEUDONYM.findall(json.dumps(open_with(research, path).resources)))
        for name, path in [("a", first["file"]), ("a2", again), ("b", other_study)]
    }
    assert len(tokens["a"]) >= 15 and tokens["a"] == tokens["a2"]
    assert tokens["a"].isdisjoint(tokens["b"])
    second = open_with(research, world["patients"][1]["file"])
    assert tokens["a"].isdisjoint(PSEUDONYM.findall(json.dumps(second.resources)))

    log = cli.ok("log", "--json").json()
    assert log["ok"] and [e["event"] for e in log["entries"]] == ["share.issued"] * 3
    assert log["entries"][0]["details"]["study"] == STUDY
    assert leaked(first["person"].secrets, json.dumps(log)) == []
    listed = cli.ok("grants", "--json").json()["grants"]
    assert {g["grant_id"] for g in listed} >= {first["summary"]["share_id"]}


def test_ingest_writes_a_k_anonymous_dataset_without_identifiers(
    world: dict[str, Any], tmp_path: Path
) -> None:
    research = world["research"]
    files = [entry["file"] for entry in world["patients"]]
    out = tmp_path / "dataset"
    result = research.ok(
        "research", "ingest", *files, "--k", "3", "--study", STUDY, "--out", out, "--json"
    ).json()
    assert set(result) >= {"patients", "resources", "suppressed", "k", "rejected", "out"}
    assert result["rejected"] == [] and result["out"] == str(out)
    assert result["patients"] == 11 and result["suppressed"] == 1 and result["k"] >= 3
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    names = sorted(p.name for p in out.iterdir())
    assert "report.json" in names and "Patient.ndjson" in names and "Observation.ndjson" in names
    assert all(
        re.fullmatch(r"[A-Z][A-Za-z]+\.(ndjson|parquet)", n) for n in names if n != "report.json"
    )

    # k holds on the output alone
    patients = [json.loads(line) for line in (out / "Patient.ndjson").read_text().splitlines()]
    assert len(patients) == 11
    classes = Counter(json.dumps(quasi_identifiers([p]), sort_keys=True) for p in patients)
    assert min(classes.values()) >= 3 and sum(classes.values()) == 11
    report = json.loads((out / "report.json").read_text())
    assert report["k"]["achieved"] == result["k"] and report["k"]["requested"] == 3
    assert report["suppressed"] == 1 and report["suppression_reasons"]
    lines = sum(len(p.read_text().splitlines()) for p in out.glob("*.ndjson"))
    assert lines == result["resources"] == report["resources"] == 11 * 15

    # grep every output file for every identifier of every patient, and for their DIDs
    text = "\n".join(
        json.dumps(pq.read_table(p).to_pylist()) if p.suffix == ".parquet" else p.read_text()
        for p in out.iterdir()
    )
    everyone = [s for entry in world["patients"] for s in entry["person"].secrets]
    assert leaked(everyone, text) == []
    assert [e["did"] for e in world["patients"] if e["did"] in text] == []
    assert "labs-" not in text and ".hwshare" not in text

    human = research.ok("research", "ingest", *files[:4], "--k", "2", "--out", tmp_path / "h").out
    assert "Ingested 4 patient(s)" in human and "k=2 requested, k=4 achieved" in human

    # no class reaches k: it says so, exits 1 and writes nothing
    none = research("research", "ingest", *files[:4], "--k", "50", "--out", tmp_path / "n")
    assert none.code == 1 and not (tmp_path / "n").exists()
    assert "No patient's equivalence class reaches k=50" in none.out
    as_json = research("research", "ingest", *files[:4], "--k", "50", "--out", tmp_path / "n", "--json")
    assert as_json.code == 1 and as_json.json()["outcome"] == "k-not-met"


def test_withdrawn_expired_misaddressed_and_junk_are_rejected_with_reasons(
    world: dict[str, Any], tmp_path: Path, www: tuple[Path, str]
) -> None:
    research = world["research"]
    by_file, by_http = world["withdrawn_file"], world["withdrawn_http"]
    for entry in (by_file, by_http):
        revoked = entry["cli"].ok("revoke", entry["summary"]["share_id"], "--json").json()
        assert revoked["status"] == "revoked"
    root, base = www
    by_http["cli"].ok("status", "publish", "--out", root / "status")
    assert by_http["summary"]["status_list"].startswith(base + "/status/")

    misaddressed = tmp_path / "to-other.hwshare"
    world["patients"][6]["cli"].ok(
        "share", did(world["other"]), "--study", STUDY, "--type", "fhir", "--out", misaddressed
    )
    junk = tmp_path / "notes.txt"
    junk.write_text("not a share\n")

    expiring = world["expiring"]
    expires = datetime.fromisoformat(expiring["summary"]["expires"].replace("Z", "+00:00"))
    time.sleep(max(0.0, expires.timestamp() - time.time() + 0.2))

    files = [
        world["patients"][1]["file"],
        expiring["file"],
        by_file["file"],
        by_http["file"],
        misaddressed,
        junk,
    ]
    status_file = by_file["cli"].home / "status" / by_file["summary"]["status_list"].split("/")[-1]
    result = research.ok(
        "research",
        "ingest",
        *files,
        "--k",
        "1",
        "--out",
        tmp_path / "out",
        "--status-list",
        status_file,
        "--json",
    ).json()
    reasons = [(r["input"], r["reason"]) for r in result["rejected"]]
    assert reasons == [
        (2, "expired"),
        (3, "withdrawn"),
        (4, "withdrawn"),
        (5, "wrong-recipient"),
        (6, "not-a-share"),
    ]
    assert (
        result["patients"] == 1
        and result["rejected"][1]["share_id"] == by_file["summary"]["share_id"]
    )
    assert all(r["detail"] for r in result["rejected"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["reason"] for r in report["consents"]["rejected"]] == [r for _, r in reasons]

    # Every file bad: exit 1, reasons still reported, nothing written. The list comes from
    # the URL the consent names and, once more, from an explicit --status-list URL.
    for extra in ([], ["--status-list", by_http["summary"]["status_list"]]):
        failed = research(
            "research",
            "ingest",
            by_http["file"],
            junk,
            "--k",
            "1",
            "--out",
            tmp_path / "none",
            *extra,
            "--json",
        )
        assert failed.code == 1, failed
        assert [r["reason"] for r in failed.json()["rejected"]] == ["withdrawn", "not-a-share"]
        assert not (tmp_path / "none").exists()
    human = research("research", "ingest", junk, "--k", "1", "--out", tmp_path / "none")
    assert human.code == 1 and "nothing was written" in human.out


def test_dry_run_shows_every_field_and_writes_nothing(
    world: dict[str, Any], tmp_path: Path
) -> None:
    entry = world["patients"][2]
    cli = entry["cli"]
    work = tmp_path / "cwd"
    work.mkdir()
    before = snapshot(cli.home, work)
    args = ["share", world["research_did"], "--study", "study-dry", "--type", "fhir", "--dry-run"]
    as_json = cli.ok(*args, "--out", work / "never.hwshare", "--json", cwd=work).json()
    human = cli.ok(*args, cwd=work).out
    assert snapshot(cli.home, work) == before  # no file, no status slot, no audit entry
    assert as_json["dry_run"] is True and as_json["resources"] == 15
    actions = {(c["path"], c["action"]) for c in as_json["changes"]}
    assert ("Patient.name", "redact") in actions and ("Patient.gender", "keep") in actions
    assert ("Patient.birthDate", "generalize") in actions
    assert ("Patient.id", "cryptohash") in actions and ("Patient.telecom", "redact") in actions
    assert all(set(c) == {"path", "action", "count"} for c in as_json["changes"])
    assert "Patient.name" in human and "removed" in human and "nothing was written" in human
    for output in (json.dumps(as_json), human):
        assert leaked(entry["person"].secrets, output) == []


def test_non_fhir_records_are_refused_by_id(world: dict[str, Any], tmp_path: Path) -> None:
    entry = world["patients"][3]
    cli = entry["cli"]
    scan = tmp_path / "scan-Wolfgangsdottir.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    pdf = cli.ok("record", "add", scan, "--json").json()["records"][0]["id"]
    before = snapshot(cli.home)
    for selection in (
        ["--record", pdf],
        ["--record", entry["record"], "--record", pdf],
        ["--type", "pdf"],
        ["--type", "pdf", "--dry-run"],
    ):
        result = cli(
            "share",
            world["research_did"],
            "--study",
            STUDY,
            *selection,
            "--out",
            tmp_path / "x.hwshare",
        )
        assert result.code == 2, (selection, result)
        assert pdf in result.err and "FHIR" in result.err
        assert "Wolfgangsdottir" not in result.err + result.out
        assert not (tmp_path / "x.hwshare").exists()
    assert snapshot(cli.home) == before


def test_bad_requests_are_usage_errors(world: dict[str, Any], tmp_path: Path) -> None:
    cli = world["patients"][4]["cli"]
    research_did = world["research_did"]
    out = ["--out", tmp_path / "x"]
    fhir = ["--type", "fhir"]
    cases = [
        ([research_did, "--study", "has space", *fhir, *out], 2),
        (["did:web:example.org", "--study", STUDY, *fhir, *out], 2),
        ([research_did, "--study", STUDY, *fhir], 2),  # no --out
        ([research_did, "--study", STUDY, *out], 2),  # nothing chosen
        ([research_did, "--study", STUDY, *fhir, "--expires", "400d", *out], 2),
        ([research_did, "--study", STUDY, "--record", "ffffffffffffffff", *out], 3),
        ([research_did, "--study", STUDY, *fhir, "--policy", tmp_path / "none.json", *out], 3),
        ([did(cli), "--study", STUDY, *fhir, *out], 2),  # to yourself
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: cli("share", *case[0], "--json"), cases))
    for (args, code), result in zip(cases, results, strict=True):
        assert result.code == code, (args, result)
        assert result.json()["error"]["exit_code"] == code
    assert not (tmp_path / "x").exists()
    research = world["research"]
    share_file = world["patients"][4]["file"]
    ingests = [
        ([share_file, "--k", "0"], 2),
        ([share_file, "--k", "x"], 2),
        ([share_file, "--k", "2", "--quasi", "shoe_size"], 2),
        ([share_file, "--k", "2", "--status-list", tmp_path / "none.json"], 3),
        ([tmp_path / "missing.hwshare", "--k", "1"], 3),
        ([tmp_path, "--k", "1"], 2),  # a directory
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda case: research("research", "ingest", *case[0], "--out", tmp_path / "o"),
                ingests,
            )
        )
    for (args, code), result in zip(ingests, results, strict=True):
        assert result.code == code, (args, result)
        assert result.err.startswith("error: ") and "Traceback" not in result.err
    assert not (tmp_path / "o").exists()


def test_share_to_stdout(world: dict[str, Any]) -> None:
    entry = world["patients"][5]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthwallet",
            "share",
            world["research_did"],
            "--study",
            STUDY,
            "--type",
            "fhir",
            "--out",
            "-",
        ],
        env=entry["cli"].env,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0 and b"shared urn:uuid:" in proc.stderr
    assert proc.stdout.startswith(b"healthwallet-share/v1\n")
    # the consent's list is hosted on 127.0.0.1: fetched with local URLs allowed
    listed = shares.StatusLists(transport=LOCAL_FETCHER)
    opened = shares.open_share(
        io.BytesIO(proc.stdout), identity_of(world["research"]), status=listed
    )
    assert len(opened.resources) == 15
