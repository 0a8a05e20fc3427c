"""What a link carries: FHIR records as Bundles, other files as DocumentReference attachments."""

from __future__ import annotations

import base64
import json

from healthwallet.links.content import SharedRecord, link_files

LABS = SharedRecord("fhir", "application/fhir+json", "labs", json.dumps(
    {"resourceType": "Bundle", "type": "collection",
     "entry": [{"resource": {"resourceType": "Observation", "status": "final"}}]}).encode())
ALLERGY = SharedRecord("fhir", "application/fhir+json", "allergy", json.dumps(
    {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p"}}).encode())
LETTER = SharedRecord("pdf", "application/pdf", "Discharge letter", b"%PDF-1.4\n%%EOF\n")
SCAN = SharedRecord("image", "image/png", "knee", b"\x89PNG\r\n\x1a\n....")


def _load(files: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(f) for f in files]


def test_each_fhir_record_is_a_bundle_and_documents_ride_together() -> None:
    bundles = _load(link_files([LABS, ALLERGY, LETTER, SCAN], single_file=False))
    assert [b["resourceType"] for b in bundles] == ["Bundle"] * 3
    assert bundles[0] == json.loads(LABS.content)
    assert bundles[1]["entry"][0]["resource"]["resourceType"] == "AllergyIntolerance"
    documents = [e["resource"] for e in bundles[2]["entry"]]
    assert [d["resourceType"] for d in documents] == ["DocumentReference"] * 2
    attachment = documents[0]["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == LETTER.content
    assert attachment["title"] == "Discharge letter" and attachment["size"] == len(LETTER.content)


def test_single_file_link_carries_everything_in_one_bundle() -> None:
    [bundle] = _load(link_files([LABS, ALLERGY, LETTER], single_file=True))
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Observation", "AllergyIntolerance", "DocumentReference"]
    assert bundle["type"] == "collection"


def test_more_records_than_a_relay_takes_files_share_one_bundle() -> None:
    many = [SharedRecord("fhir", "application/fhir+json", f"o{n}", json.dumps(
        {"resourceType": "Observation", "id": f"o{n}", "status": "final"}).encode())
        for n in range(60)]
    files = _load(link_files([*many, LETTER], single_file=False))
    assert len(files) == 2
    assert len(files[0]["entry"]) == 60
    assert files[1]["entry"][0]["resource"]["resourceType"] == "DocumentReference"
    assert len(link_files(many[:49], single_file=False)) == 49
