"""Records people can read: what each record is in `record list`, and `record show --summary`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, fhir_bundle

from healthwallet.fhir import describe, synopsis

HEMOGLOBIN = {
    "resourceType": "Observation", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7",
                         "display": "Hemoglobin [Mass/volume] in Blood"}], "text": "Hemoglobin"},
    "effectiveDateTime": "2026-03-01T09:00:00Z", "valueQuantity": {"value": 13.2, "unit": "g/dL"},
}


def test_an_observation_reads_as_a_sentence() -> None:
    assert describe(HEMOGLOBIN) == ["Hemoglobin 13.2 g/dL, 2026-03-01, final"]
    found = synopsis(HEMOGLOBIN)
    assert (found.resource_counts, found.clinical_date, found.title) == (
        {"Observation": 1}, "2026-03-01", "Hemoglobin")


def test_a_bundle_is_listed_grouped_by_type_with_its_date_range() -> None:
    bundle = fhir_bundle()
    bundle["entry"].append({"resource": dict(HEMOGLOBIN, effectiveDateTime="2025-01-02")})
    bundle["entry"].append({"resource": HEMOGLOBIN})
    lines = describe(bundle)
    assert lines[0] == "Bundle (collection), 5 resources"
    assert lines[1] == "Observation (4)" and "  Hemoglobin 13.2 g/dL, 2025-01-02, final" in lines
    assert "Patient (1)" in lines
    assert synopsis(bundle).clinical_date == "2025-01-02 – 2026-03-01"


@pytest.fixture
def records(wallet: Cli, tmp_path: Path) -> Cli:
    (tmp_path / "hb.json").write_text(json.dumps(HEMOGLOBIN))
    (tmp_path / "bundle.json").write_text(json.dumps(fhir_bundle()))
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    wallet.ok("record", "add", tmp_path / "hb.json", tmp_path / "bundle.json",
              tmp_path / "scan.pdf", "--tag", "2026")
    return wallet


def test_record_list_says_what_each_record_is_within_80_columns(records: Cli) -> None:
    result = records.ok("record", "list", env={"COLUMNS": "80"})
    lines = result.out.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert any("Observation" in line and "Hemoglobin" in line and "2026-03-01" in line
               for line in lines)
    assert any("Bundle: Observation×2, Patient" in line for line in lines)
    assert any("pdf" in line and "scan.pdf" in line for line in lines)
    short = lines[1].split()[0]
    assert len(short) >= 8 and records.ok("record", "show", short, "--summary").code == 0


def test_record_list_json_carries_types_date_and_title(records: Cli) -> None:
    listed = records.ok("record", "list", "--json").json()["records"]
    hb = next(r for r in listed if r["label"] == "hb.json")
    assert hb["resource_counts"] == {"Observation": 1}
    assert hb["clinical_date"] == "2026-03-01" and hb["title"] == "Hemoglobin"
    bundle = next(r for r in listed if r["label"] == "bundle.json")
    assert bundle["resource_counts"] == {"Observation": 2, "Patient": 1}


def test_record_show_summary_renders_fhir_and_refuses_other_types(records: Cli) -> None:
    listed = records.ok("record", "list", "--json").json()["records"]
    ids = {r["label"]: r["id"] for r in listed}
    assert records.ok("record", "show", ids["hb.json"], "--summary").out == (
        "Hemoglobin 13.2 g/dL, 2026-03-01, final\n")
    machine = records.ok("record", "show", ids["bundle.json"], "--summary", "--json").json()
    assert machine["lines"][0] == "Bundle (collection), 3 resources"
    pdf = records("record", "show", ids["scan.pdf"], "--summary")
    assert pdf.code == 2 and "is not FHIR" in pdf.err


@pytest.mark.parametrize("hostile", [
    {"resourceType": "Bundle", "type": "collection", "entry": 5},
    {"resourceType": "Observation", "status": 3, "code": [1, {"coding": "x"}], "component": 7,
     "valueQuantity": {"value": "13", "unit": ["g"]}, "effectiveDateTime": 2026},
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "gender": {}}}]},
])
def test_type_confused_fhir_is_summarised_not_crashed(hostile: dict) -> None:
    found = synopsis(hostile)
    assert isinstance(found.resource_counts, dict)
    assert all(isinstance(text, str) for text in describe(hostile))
