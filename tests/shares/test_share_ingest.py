"""Research ingest (core): many patients' shares, rejections with reasons, k-anonymity, output."""

from __future__ import annotations

import json
import stat
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import dataset_text
from local_status import local_lists
from share_helpers import (
    LATER,
    NOW,
    OTHER_GROUP,
    RESEARCH,
    leaked,
    patient_identity,
    person,
    share,
)

from healthwallet import research
from healthwallet.deid import quasi_identifiers
from healthwallet.errors import BadInputError, NotFoundError, UsageError


def ingest(files: list[Path], *args: Any, **kwargs: Any) -> research.IngestResult:
    """research.ingest, given each share's local status list as the user would type it."""
    kwargs.setdefault("status_sources", local_lists(files))
    return research.ingest(files, *args, **kwargs)

# Three classes of three (same gender, age, ZIP3) and one 93-year-old alone.
PROFILES = [
    *[dict(gender="female", age=40, zip5="02139")] * 3,
    *[dict(gender="male", age=62, zip5="97205")] * 3,
    *[dict(gender="female", age=25, zip5="80202")] * 3,
    dict(gender="other", age=93, zip5="03601"),
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Ten patients' shares for study-A, written to files."""
    root = tmp_path_factory.mktemp("cohort")
    files, people, dids = [], [], []
    for number, profile in enumerate(PROFILES):
        patient = person(100 + number, old_address=False, urn_references=number % 2 == 0, **profile)
        identity = patient_identity(100 + number)
        shared = share(root / f"home-{number}", identity, [patient])
        path = root / f"share-{number}.hwshare"
        path.write_bytes(shared.data)
        files.append(path)
        people.append(patient)
        dids.append(identity.did)
    return {"root": root, "files": files, "people": people, "dids": dids}


def output_text(out: Path) -> str:
    return dataset_text(out)


def test_ingest_merges_enforces_k_and_leaks_nothing(cohort: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    result = ingest(cohort["files"], RESEARCH, out, k=3, now=LATER)
    assert result.accepted == 10 and result.rejected == ()
    assert result.patients == 9 and result.suppressed == 1 and result.k == 3
    assert result.study == "study-A"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == list(result.files) and "report.json" in names and "Patient.ndjson" in names
    assert all(stat.S_IMODE((out / n).stat().st_mode) == 0o600 for n in names)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left

    # k holds on the output itself: recompute the classes from Patient.ndjson alone
    patients = [json.loads(line) for line in (out / "Patient.ndjson").read_text().splitlines()]
    assert len(patients) == 9
    classes = Counter(
        json.dumps(quasi_identifiers([p], now=LATER), sort_keys=True) for p in patients
    )
    assert min(classes.values()) >= 3
    report = json.loads((out / "report.json").read_text())
    assert report["k"] == {"requested": 3, "achieved": 3}
    assert report["suppressed"] == 1 and report["patients"] == 9
    assert report["suppression_reasons"][0]["reason"] == "equivalence class smaller than k=3"
    assert report["resources"] == result.resources == sum(report["resource_types"].values())
    assert report["policies"][0]["policy"] == "safe-harbor"

    text = output_text(out)
    secrets = [s for p in cohort["people"] for s in p.secrets]
    assert leaked(secrets, text) == []
    assert not [did for did in cohort["dids"] if did in text]  # no patient DID either
    assert "share-" not in text  # nor the file names


def test_rejections_have_reasons_and_never_stop_the_rest(
    cohort: dict[str, Any], tmp_path: Path
) -> None:
    root = cohort["root"]
    files: list[Path] = list(cohort["files"][:3])
    patient = cohort["people"][0]

    def write(name: str, data: bytes) -> Path:
        path = root / name
        path.write_bytes(data)
        return path

    withdrawn = share(tmp_path / "w", patient_identity(200), [patient])
    withdrawn.registry.revoke(withdrawn.share_id)
    expiring = share(
        tmp_path / "e", patient_identity(201), [patient], expires=NOW + timedelta(minutes=10)
    )
    elsewhere = share(tmp_path / "o", patient_identity(202), [patient], recipient=OTHER_GROUP)
    other_study = share(tmp_path / "s", patient_identity(203), [patient], study="study-B")
    extra = [
        write("withdrawn.hwshare", withdrawn.data),
        write("expired.hwshare", expiring.data),
        write("elsewhere.hwshare", elsewhere.data),
        write("study-b.hwshare", other_study.data),
        write("notes.txt", b"not a share at all\n"),
        cohort["files"][0],  # the same share twice
    ]
    result = ingest(
        files + extra,
        RESEARCH,
        tmp_path / "out",
        k=1,
        study="study-A",
        now=LATER + timedelta(minutes=30),
    )
    reasons = [(r.input, r.reason) for r in result.rejected]
    assert reasons == [
        (4, "withdrawn"),
        (5, "expired"),
        (6, "wrong-recipient"),
        (7, "wrong-study"),
        (8, "not-a-share"),
        (9, "duplicate"),
    ]
    assert result.accepted == 3 and result.patients == 3
    assert result.rejected[0].share_id == withdrawn.share_id
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["consents"]["rejected"][0] == {
        "input": 4,
        "reason": "withdrawn",
        "share_id": withdrawn.share_id,
    }
    assert "withdrawn.hwshare" not in output_text(tmp_path / "out")
    json_view = result.to_json()
    assert {"patients", "resources", "suppressed", "k", "rejected", "out"} <= set(json_view)
    assert json_view["rejected"][0]["file"].endswith("withdrawn.hwshare")


def test_without_study_the_first_accepted_share_sets_it(
    cohort: dict[str, Any], tmp_path: Path
) -> None:
    patient = cohort["people"][0]
    other_study = share(tmp_path / "s", patient_identity(203), [patient], study="study-B")
    path = tmp_path / "b.hwshare"
    path.write_bytes(other_study.data)
    result = ingest([cohort["files"][0], path], RESEARCH, tmp_path / "out", k=1, now=LATER)
    assert result.study == "study-A"
    assert [r.reason for r in result.rejected] == ["wrong-study"]


def test_one_patient_with_two_shares_is_one_patient(tmp_path: Path) -> None:
    identity = patient_identity(300)
    first = person(300, gender="female", age=40, zip5="02139", old_address=False)
    later = person(301, gender="female", age=40, zip5="02139", old_address=False)
    files = []
    for number, people in enumerate(([first], [first, later])):
        path = tmp_path / f"{number}.hwshare"
        path.write_bytes(share(tmp_path / "home", identity, people).data)
        files.append(path)
    # Two shares of one person must not look like a class of two.
    result = ingest(files, RESEARCH, tmp_path / "out", k=2, now=LATER)
    assert result.accepted == 2 and result.patients == 0 and result.suppressed == 1
    assert ingest(files, RESEARCH, tmp_path / "out1", k=1, now=LATER).patients == 1
    lines = (tmp_path / "out1" / "Observation.ndjson").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 8  # the repeated record is there once


def test_nothing_accepted_writes_nothing(cohort: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = ingest(cohort["files"][:2], OTHER_GROUP, out, k=1, now=LATER)
    assert result.accepted == 0 and not out.exists()
    assert [r.reason for r in result.rejected] == ["wrong-recipient", "wrong-recipient"]
    assert result.to_json()["out"] is None


def test_callers_mistakes_are_refused_before_any_work(
    cohort: dict[str, Any], tmp_path: Path
) -> None:
    files = cohort["files"][:1]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for kwargs, error in [
        (dict(k=0), UsageError),
        (dict(k=True), UsageError),
        (dict(k=2, quasi=["shoe_size"]), UsageError),
        (dict(k=2, study="bad study"), UsageError),
    ]:
        with pytest.raises(error):
            ingest(files, RESEARCH, tmp_path / "x", now=LATER, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not empty"):
        ingest(files, RESEARCH, busy, k=1, now=LATER)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(NotFoundError):
        ingest([tmp_path / "missing.hwshare"], RESEARCH, tmp_path / "x", k=1, now=LATER)
    with pytest.raises(BadInputError):
        ingest([tmp_path], RESEARCH, tmp_path / "x", k=1, now=LATER)
    with pytest.raises(NotFoundError):
        ingest(
            files,
            RESEARCH,
            tmp_path / "x",
            k=1,
            now=LATER,
            status_sources=[str(tmp_path / "nope.json")],
        )
    assert not (tmp_path / "x").exists()
    # an existing empty directory is fine, and is filled in one step
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ingest(files, RESEARCH, empty, k=1, now=LATER).accepted == 1
    assert (empty / "report.json").exists()
