"""FHIR NDJSON (Bulk Data export) is FHIR: recognised, listed with its counts, read line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from healthwallet.fhir import ndjson

NAME = "Quixotica"  # health data: must never appear in an error or in JSON output


def export_lines() -> list[dict[str, Any]]:
    """A small Bulk Data export: two patients, their observations, and a practitioner."""
    return [
        {"resourceType": "Patient", "id": "p1", "name": [{"family": NAME}]},
        {"resourceType": "Patient", "id": "p2", "name": [{"family": "Umbriel"}]},
        {"resourceType": "Observation", "id": "o1", "status": "final",
         "subject": {"reference": "Patient/p1"}, "code": {"text": "Hemoglobin"},
         "effectiveDateTime": "2026-03-01", "valueQuantity": {"value": 13.2, "unit": "g/dL"}},
        {"resourceType": "Observation", "id": "o2", "status": "final",
         "subject": {"reference": "Patient/p2"}, "code": {"text": "Glucose"},
         "effectiveDateTime": "2026-01-02"},
        {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Lovelace"}]},
    ]


def write_ndjson(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources))
    return path


def test_ndjson_export_is_added_as_fhir_and_listed_with_its_counts(
    wallet: Cli, tmp_path: Path
) -> None:
    source = write_ndjson(tmp_path / "export.ndjson", export_lines())
    added = wallet.ok("record", "add", source, "--json").json()["records"][0]
    assert (added["type"], added["media_type"]) == ("fhir", "application/fhir+ndjson")
    listed = wallet.ok("record", "list", "--json").json()["records"][0]
    assert listed["resource_counts"] == {"Patient": 2, "Observation": 2, "Practitioner": 1}
    assert listed["clinical_date"] == "2026-01-02 – 2026-03-01"
    table = wallet.ok("record", "list").out
    assert "NDJSON:" in table and "Observation×2" in table
    summary = wallet.ok("record", "show", added["id"], "--summary").out.splitlines()
    assert summary[0] == "NDJSON, 5 resources"
    assert "  Hemoglobin 13.2 g/dL, 2026-03-01, final" in summary


def test_ndjson_is_recognised_by_its_content_without_the_suffix(
    wallet: Cli, tmp_path: Path
) -> None:
    source = write_ndjson(tmp_path / "download.txt", export_lines())
    added = wallet.ok("record", "add", source, "--json").json()["records"][0]
    assert (added["type"], added["media_type"]) == ("fhir", "application/fhir+ndjson")
    # A single JSON resource on one line stays a FHIR JSON record.
    single = tmp_path / "one.json"
    single.write_text(json.dumps(export_lines()[2]) + "\n")
    one = wallet.ok("record", "add", single, "--json").json()["records"][0]
    assert one["media_type"] == "application/fhir+json"


@pytest.mark.parametrize(
    ("bad_line", "says"),
    [
        ('{"resourceType": "Observation", "code": {"text": "' + NAME, "is not valid JSON"),
        ('["' + NAME + '"]', "is not a FHIR resource"),
        ('{"name": "' + NAME + '"}', "is not a FHIR resource"),
        ('"' + NAME + '"', "is not a FHIR resource"),
    ],
    ids=["truncated-json", "array", "no-resource-type", "string"],
)
def test_hostile_ndjson_line_is_refused_naming_its_line_number_only(
    wallet: Cli, tmp_path: Path, bad_line: str, says: str
) -> None:
    lines = [json.dumps(r) for r in export_lines()]
    lines.insert(3, "")  # a blank line is skipped but still counted
    lines.insert(4, bad_line)
    source = tmp_path / "export.ndjson"
    source.write_text("\n".join(lines) + "\n")
    result = wallet("record", "add", source)
    assert result.code == 2
    assert f"error: line 5 of the NDJSON file {says}" in result.err
    assert NAME not in result.err + result.out
    machine = wallet("record", "add", source, "--json")
    assert machine.code == 2 and NAME not in machine.out + machine.err
    assert "line 5" in json.loads(machine.out)["error"]["message"]
    assert wallet.ok("record", "list", "--json").json()["records"] == []


def test_huge_ndjson_line_is_refused_after_reading_at_most_the_limit(
    wallet: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "export.ndjson"
    with source.open("wb") as handle:
        handle.write(json.dumps(export_lines()[0]).encode() + b"\n")
        handle.write(b'{"resourceType": "Binary", "data": "')
        handle.write(b"A" * (ndjson.MAX_LINE_BYTES + 10))
        handle.write(b'"}\n')
    result = wallet("record", "add", source)
    assert result.code == 2
    assert "error: line 2 of the NDJSON file is longer than 64 MiB" in result.err


def test_ndjson_reader_streams_and_keeps_offsets(tmp_path: Path) -> None:
    source = write_ndjson(tmp_path / "x.ndjson", export_lines())
    raw = source.read_bytes()
    with source.open("rb") as handle:
        lines = list(ndjson.read_lines(handle, max_line=1024))
    assert [line.number for line in lines] == [1, 2, 3, 4, 5]
    third = lines[2]
    assert json.loads(raw[third.offset : third.offset + third.length]) == third.resource


def test_ndjson_added_as_other_can_be_retyped_as_fhir(wallet: Cli, tmp_path: Path) -> None:
    source = write_ndjson(tmp_path / "export.ndjson", export_lines())
    record = wallet.ok("record", "add", source, "--type", "other", "--json").json()["records"][0]
    assert record["type"] == "other"
    edited = wallet.ok("record", "edit", record["id"], "--type", "fhir", "--json").json()["record"]
    assert (edited["type"], edited["media_type"]) == ("fhir", "application/fhir+ndjson")
    assert edited["resource_counts"]["Observation"] == 2
