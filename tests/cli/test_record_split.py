"""`record add --split resource|patient`: a Bundle or an NDJSON file becomes several records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from test_fhir_ndjson import NAME, export_lines, write_ndjson

from healthwallet.fhir.split import compartment


def export_bundle(path: Path) -> Path:
    """The same resources as a Bundle whose references use urn:uuid fullUrls."""
    entries: list[dict[str, Any]] = []
    for resource in export_lines():
        entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{resource['id']}-0000", "resource": resource}
        subject = resource.get("subject")
        if subject:
            patient = subject["reference"].split("/")[1]
            entry["resource"] = dict(resource, subject={"reference": f"urn:uuid:{patient}-0000"})
        entries.append(entry)
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    return path


@pytest.fixture(params=["ndjson", "bundle"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "ndjson":
        return write_ndjson(tmp_path / "export.ndjson", export_lines())
    return export_bundle(tmp_path / "export.json")


def _listed(wallet: Cli) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in wallet.ok("record", "list", "--json").json()["records"]}


def test_split_by_resource_makes_one_record_each_keeping_tags(
    wallet: Cli, source: Path
) -> None:
    result = wallet.ok("record", "add", source, "--split", "resource", "--tag", "2026",
                       "--label", "March export", "--json")
    made = result.json()["records"]
    assert [r["part"] for r in made] == [
        "Patient/p1", "Patient/p2", "Observation/o1", "Observation/o2", "Practitioner/dr1"]
    assert NAME not in result.out + result.err
    listed = _listed(wallet)
    assert len(listed) == 5
    hb = listed[made[2]["id"]]
    assert hb["label"] == "March export · Observation/o1" and hb["tags"] == ["2026"]
    assert (hb["resource_counts"], hb["title"], hb["media_type"]) == (
        {"Observation": 1}, "Hemoglobin", "application/fhir+json")
    shown = wallet.ok("record", "show", made[2]["id"]).out
    assert json.loads(shown)["code"] == {"text": "Hemoglobin"}


def test_split_by_patient_groups_each_compartment_and_a_remainder(
    wallet: Cli, source: Path
) -> None:
    result = wallet.ok("record", "add", source, "--split", "patient")
    lines = result.out.splitlines()
    assert [line.split("  ")[-1] for line in lines] == ["Patient/p1", "Patient/p2", "no patient"]
    listed = list(_listed(wallet).values())
    counts = [r["resource_counts"] for r in listed]
    assert counts == [{"Patient": 1, "Observation": 1}, {"Patient": 1, "Observation": 1},
                      {"Practitioner": 1}]
    assert listed[2]["label"] == f"{source.name} · no patient"
    p1 = wallet.ok("record", "show", listed[0]["id"]).out
    held = p1.splitlines() if source.suffix == ".ndjson" else None
    if held is not None:  # NDJSON pieces keep the original lines, byte for byte
        assert held == [json.dumps(r) for r in export_lines()[::2][:2]]
    else:
        assert json.loads(p1)["resourceType"] == "Bundle"
    assert NAME in p1 and "Umbriel" not in p1


def test_split_again_notices_every_piece_is_already_there(wallet: Cli, source: Path) -> None:
    wallet.ok("record", "add", source, "--split", "resource")
    again = wallet("record", "add", source, "--split", "resource")
    assert again.code == 2
    assert "error: every piece of the file is already in the wallet (5 record(s)" in again.err
    assert "--allow-duplicate" in again.err
    assert len(_listed(wallet)) == 5
    wallet.ok("record", "add", source, "--split", "resource", "--allow-duplicate")
    assert len(_listed(wallet)) == 10


def test_split_skips_pieces_already_in_the_wallet_and_adds_the_rest(
    wallet: Cli, tmp_path: Path
) -> None:
    wallet.ok("record", "add", write_ndjson(tmp_path / "jan.ndjson", export_lines()[:3]),
              "--split", "resource")
    later = write_ndjson(tmp_path / "feb.ndjson", export_lines())
    result = wallet.ok("record", "add", later, "--split", "resource", "--json")
    body = result.json()
    assert [r["part"] for r in body["records"]] == ["Observation/o2", "Practitioner/dr1"]
    assert [s["part"] for s in body["skipped"]] == ["Patient/p1", "Patient/p2", "Observation/o1"]
    assert "note: skipped Patient/p1 of the file: already in the wallet as record" in result.err


def test_split_of_a_file_added_whole_is_refused(wallet: Cli, source: Path) -> None:
    whole = wallet.ok("record", "add", source, "--json").json()["records"][0]["id"]
    result = wallet("record", "add", source, "--split", "patient")
    assert result.code == 2
    assert f"error: the file is already in the wallet as record {whole}" in result.err
    assert f"`healthwallet record rm {whole}`" in result.err


def test_split_refuses_what_is_not_a_bundle_or_ndjson(wallet: Cli, tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(export_lines()[2]))
    result = wallet("record", "add", one, "--split", "resource")
    assert result.code == 2 and "this is one Observation resource" in result.err
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    assert wallet("record", "add", pdf, "--split", "patient").code == 2
    assert wallet("record", "add", one, "--split", "encounter").code == 2
    assert wallet.ok("record", "list", "--json").json()["records"] == []


def test_split_of_hostile_ndjson_names_the_line_and_adds_nothing(
    wallet: Cli, tmp_path: Path
) -> None:
    lines = [json.dumps(r) for r in export_lines()]
    lines.append('{"resourceType": "Observation", "note": "' + NAME)
    source = tmp_path / "export.ndjson"
    source.write_text("\n".join(lines) + "\n")
    result = wallet("record", "add", source, "--split", "patient", "--json")
    assert result.code == 2 and NAME not in result.out + result.err
    assert "line 6 of the NDJSON file is not valid JSON" in json.loads(result.out)["error"][
        "message"]
    assert wallet.ok("record", "list", "--json").json()["records"] == []


def test_compartment_follows_the_r4_definition() -> None:
    assert compartment({"resourceType": "Observation", "subject": {"reference": "Patient/a"},
                        "performer": [{"reference": "Practitioner/x"}]}) == "Patient/a"
    assert compartment({"resourceType": "Procedure",
                        "performer": [{"actor": {"reference": "https://h/fhir/Patient/b"}}]}
                       ) == "Patient/b"
    assert compartment({"resourceType": "Encounter",
                        "subject": {"reference": "Patient/c/_history/2"}}) == "Patient/c"
    assert compartment({"resourceType": "Group", "member": [
        {"entity": {"reference": "Patient/a"}}, {"entity": {"reference": "Patient/b"}}]}) is None
    assert compartment({"resourceType": "Medication", "id": "m"}) is None
    assert compartment({"resourceType": "Observation",
                        "subject": {"reference": "urn:uuid:1"}}, {"urn:uuid:1": "Patient/z"}
                       ) == "Patient/z"


def test_ndjson_piece_reads_back_in_any_chunk_size_and_refuses_a_changed_file(
    tmp_path: Path,
) -> None:
    from healthwallet.errors import BadInputError
    from healthwallet.fhir.split import split_ndjson

    source = write_ndjson(tmp_path / "x.ndjson", export_lines())
    with source.open("rb") as handle:
        pieces = split_ndjson(handle, "x", "patient")
        whole = pieces[0].content.open().read()
        reader = pieces[0].content.open()
        small = b"".join(iter(lambda: reader.read(7), b""))
        assert small == whole == (json.dumps(export_lines()[0]) + "\n"
                                  + json.dumps(export_lines()[2]) + "\n").encode()
        with source.open("ab") as grow:
            grow.write(b'{"resourceType": "Patient", "id": "late"}\n')
        with pytest.raises(BadInputError, match="changed while it was being split"):
            pieces[1].content.open().read()


def test_split_into_more_pieces_than_the_limit_is_refused_before_adding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthwallet.errors import UsageError
    from healthwallet.fhir import split

    monkeypatch.setattr(split, "MAX_PIECES", 3)
    source = write_ndjson(tmp_path / "x.ndjson", export_lines())
    with source.open("rb") as handle, pytest.raises(UsageError, match="more than 3 records"):
        split.split_ndjson(handle, "x", "resource")
    with source.open("rb") as handle:
        assert len(split.split_ndjson(handle, "x", "patient")) == 3
