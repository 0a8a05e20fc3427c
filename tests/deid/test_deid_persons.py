"""Every person resource in a share is de-identified: each Patient, wherever it sits, and
RelatedPerson and Person records, top-level, in a Bundle, contained or in a nested Bundle."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from synth import fixed_now

from healthwallet.deid import PseudonymKeys, deidentify, load_policy
from healthwallet.shares import flatten

POLICY = load_policy("safe-harbor")
KEYS = PseudonymKeys.derive(b"persons-secret-0123456789abcdefgh", "study-P")
MARKERS = ("Zebulon", "Quuxley", "MRN-7731", "555-0199", "Larkspur", "Wexford", "1931-02-03",
           "1980-05-05", "1960-01-02", "75008", "02139", "zeb@example.org", "Mumford")  # fmt: skip
PATIENT_MEMBERS = {
    "resourceType", "id", "gender", "birthDate", "_birthDate", "address", "active",
    "deceasedBoolean", "deceasedDateTime", "multipleBirthBoolean", "communication",
    "extension", "maritalStatus",
}  # fmt: skip


def person(resource_type: str, rid: str, birth: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "id": rid,
        "identifier": [{"system": "urn:mrn", "value": "MRN-7731"}],
        "name": [{"family": "Quuxley", "given": ["Zebulon"]}],
        "telecom": [{"system": "phone", "value": "555-0199"}, {"value": "zeb@example.org"}],
        "gender": "male",
        "birthDate": birth,
        "address": [address],
        "contact": [{"name": {"family": "Mumford"}}],
    }


def share_bundle() -> dict[str, Any]:
    home = {"line": ["12 Larkspur Terrace"], "city": "Wexford", "state": "MA",
            "postalCode": "02139", "country": "US"}  # fmt: skip
    abroad = {"line": ["3 Wexford Rd"], "city": "Paris", "postalCode": "75008", "country": "FR"}
    first = person("Patient", "p1", "1980-05-05", home)
    second = person("Patient", "p2", "1931-02-03", abroad)
    related = person("RelatedPerson", "r1", "1960-01-02", home) | {
        "patient": {"reference": "Patient/p1"}
    }
    someone = person("Person", "x1", "1960-01-02", home)
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": "#cp"},
        "performer": [{"reference": "#crp"}],
        "contained": [
            person("Patient", "cp", "1980-05-05", home),
            person("RelatedPerson", "crp", "1960-01-02", home)
            | {"patient": {"reference": "Patient/p1"}},
        ],
    }
    nested = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": person("Patient", "np", "1980-05-05", home)}],
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (first, second, related, someone, observation, nested)],
    }


def persons(node: Any) -> Iterator[dict[str, Any]]:
    """Every resource of a person type anywhere in the tree."""
    if isinstance(node, dict):
        if node.get("resourceType") in ("Patient", "RelatedPerson", "Person"):
            yield node
        for value in node.values():
            yield from persons(value)
    elif isinstance(node, list):
        for value in node:
            yield from persons(value)


def test_every_person_resource_in_a_share_is_deidentified() -> None:
    out = deidentify(share_bundle(), POLICY, KEYS, now=fixed_now(), report=False).resource
    text = json.dumps(out)
    assert [m for m in MARKERS if m in text] == []
    found = list(persons(out))
    kinds = sorted(r["resourceType"] for r in found)
    assert kinds == ["Patient"] * 4 + ["Person"] + ["RelatedPerson"] * 2
    for resource in found:
        if resource["resourceType"] != "Patient":
            # Relatives and linked persons: nothing that narrows who or where they are.
            assert not {"birthDate", "address", "gender", "name"} & set(resource)
            continue
        assert set(resource) <= PATIENT_MEMBERS
        assert re.fullmatch(r"\d{4}", resource.get("birthDate", "0000"))
        for address in resource.get("address", []):
            assert set(address) <= {"state", "country", "postalCode"}
            assert re.fullmatch(r"\d{3}", address.get("postalCode", "000"))


def test_contained_and_second_patients_get_the_same_rules_as_the_first() -> None:
    out = deidentify(share_bundle(), POLICY, KEYS, now=fixed_now(), report=False).resource
    patients = [r for r in persons(out) if r["resourceType"] == "Patient"]
    first, second, contained, nested = patients
    strip = lambda r: {k: v for k, v in r.items() if k != "id"}  # noqa: E731
    assert strip(contained) == strip(first) == strip(nested)
    assert first["birthDate"] == "1980" and first["address"] == [
        {"state": "MA", "country": "US", "postalCode": "021"}
    ]
    assert (
        "birthDate" not in second and second["_birthDate"]["extension"][1]["valueString"] == "90+"
    )
    assert second["address"] == [{"country": "FR"}]  # no foreign postal code


def test_flattened_share_keeps_every_patient_deidentified() -> None:
    out = deidentify(share_bundle(), POLICY, KEYS, now=fixed_now(), report=False).resource
    lines = flatten(out)
    assert [r["resourceType"] for r in lines].count("Patient") == 3  # + 1 contained
    assert [m for m in MARKERS if m in json.dumps(lines)] == []
