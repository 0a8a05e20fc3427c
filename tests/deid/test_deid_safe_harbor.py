"""The built-in safe-harbor policy on synthetic patients: nothing identifying leaves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from synth import NOW_YEAR, SynthPatient, fixed_now, make_population

from healthwallet.deid import (
    AGE_GROUP_URL,
    DEID_BASE,
    DeidResult,
    PseudonymKeys,
    deidentify,
    load_policy,
)

NOW = fixed_now()
POLICY = load_policy("safe-harbor")
SECRET = b"patient-0001-secret-from-seed-xx"

PSEUDONYM = re.compile(
    r"(?:[0-9a-f]{64}|#[0-9a-f]{64}|urn:uuid:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
    rf"|(?:{re.escape(DEID_BASE)})?[A-Z][A-Za-z]+/[0-9a-f]{{64}})\Z"
)
DATE_WITH_MONTH = re.compile(r"\d{4}-\d{2}")
ALLOWED_EXTENSIONS = {
    "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
    AGE_GROUP_URL,
    # US Core race, ethnicity (coded parts only) and birth sex: not Safe Harbor identifiers.
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
    "ombCategory",
    "detailed",
}


def keys(study: str = "study-A", secret: bytes = SECRET) -> PseudonymKeys:
    return PseudonymKeys.derive(secret, study)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, leaf value) in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")
    else:
        yield path, node


@pytest.fixture(scope="module")
def people() -> list[SynthPatient]:
    # Both reference styles; patient 0 is 93, patient 1 lives in a restricted ZIP3 area.
    return make_population(11, 4, urn_references=True) + make_population(
        12, 4, urn_references=False
    )


@pytest.fixture(scope="module")
def results(people: list[SynthPatient]) -> list[DeidResult]:
    return [deidentify(p.bundle, POLICY, keys(), now=NOW) for p in people]


def test_no_identifying_value_survives_anywhere(people, results) -> None:
    for person, result in zip(people, results, strict=True):
        text = json.dumps(result.resource)
        leaked = [secret for secret in person.secrets if secret in text]
        assert leaked == [], f"identifiers left the wallet: {leaked[:5]}"
        assert len(person.secrets) > 60  # the generator really planted them


def test_only_years_remain_of_dates(results) -> None:
    for result in results:
        for path, value in walk(result.resource):
            if isinstance(value, str) and DATE_WITH_MONTH.search(value):
                assert PSEUDONYM.match(value), (path, "a date finer than the year survived")


def test_every_string_is_a_code_a_year_or_a_pseudonym(results) -> None:
    # Default deny: the only free strings left are codes, states, countries, zip3, statuses,
    # URLs of code systems, and pseudonyms. No spaces: no names, no sentences.
    free = re.compile(r"[A-Za-z0-9.\-:/_#+>=]{1,120}\Z")
    for result in results:
        for path, value in walk(result.resource):
            if isinstance(value, str):
                assert free.match(value), path
            if path.endswith(".system") and isinstance(value, str):
                assert not value.startswith("https://stmungo"), path


def test_age_over_89_is_grouped_as_90_plus(people, results) -> None:
    old = [(p, r) for p, r in zip(people, results, strict=True) if p.age > 89]
    assert len(old) == 2
    for person, result in old:
        birth_year = person.birth_date[:4]
        patient = result.resource["entry"][0]["resource"]
        assert "birthDate" not in patient
        marker = {e["url"]: e for e in patient["_birthDate"]["extension"]}
        assert marker[AGE_GROUP_URL]["valueString"] == "90+"
        # The birth year must not survive anywhere, as a string or a number.
        for path, value in walk(result.resource):
            assert value != int(birth_year), path
            if isinstance(value, str) and not PSEUDONYM.match(value):
                assert birth_year not in value, path
        age_obs = [
            e["resource"]
            for e in result.resource["entry"]
            if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "30525-0"
        ]
        assert age_obs[0]["valueQuantity"] == {
            "value": 90,
            "comparator": ">=",
            "unit": "a",
            "system": "http://unitsofmeasure.org",
            "code": "a",
        }


def test_younger_patients_keep_birth_year_only(people, results) -> None:
    for person, result in zip(people, results, strict=True):
        if person.age <= 89:
            patient = result.resource["entry"][0]["resource"]
            assert patient["birthDate"] == person.birth_date[:4]
            assert NOW_YEAR - int(patient["birthDate"]) <= 89


def test_zip_kept_to_three_digits_and_restricted_areas_become_000(people, results) -> None:
    for person, result in zip(people, results, strict=True):
        patient = result.resource["entry"][0]["resource"]
        home = patient["address"][0]
        expected = "000" if person.restricted_zip else person.zip5[:3]
        assert home["postalCode"] == expected
        assert set(home) <= {"state", "country", "postalCode"}
    assert sum(p.restricted_zip for p in people) == 2


def test_unknown_extensions_are_removed(results) -> None:
    for result in results:
        for path, value in walk(result.resource):
            if path.endswith(".url") and ".extension[" in path:
                assert value in ALLOWED_EXTENSIONS, path
            assert not path.endswith(".modifierExtension"), path


def test_references_resolve_within_the_bundle(people, results) -> None:
    for person, result in zip(people, results, strict=True):
        bundle = result.resource
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]}
        checked = 0
        for entry in bundle["entry"]:
            contained = {c["id"] for c in entry["resource"].get("contained", [])}
            for path, value in walk(entry["resource"]):
                if not path.endswith(".reference"):
                    continue
                checked += 1
                assert PSEUDONYM.match(value), path
                if value.startswith("#"):
                    assert value[1:] in contained, path
                elif value.startswith("urn:uuid:"):
                    assert value in full_urls, path
                else:
                    rtype, rid = value.removeprefix(DEID_BASE).split("/")
                    assert (rtype, rid) in ids, path
        assert checked > 15
        # Every entry kept its identity, and fullUrls stay absolute or urn:uuid.
        assert len(full_urls) == len(bundle["entry"]) == len(person.bundle["entry"])
        for url in full_urls:
            assert url.startswith(("urn:uuid:", DEID_BASE))


def test_pseudonyms_are_stable_within_a_study(people) -> None:
    person = people[0]
    first = deidentify(person.bundle, POLICY, keys("study-A"), now=NOW).resource
    again = deidentify(person.bundle, POLICY, keys("study-A"), now=NOW).resource
    assert first == again


def test_pseudonyms_differ_across_studies_and_patients(people) -> None:
    person = people[4]

    def pseudonyms(result: dict[str, Any]) -> set[str]:
        return {v for _, v in walk(result) if isinstance(v, str) and PSEUDONYM.match(v)}

    in_a = pseudonyms(deidentify(person.bundle, POLICY, keys("study-A"), now=NOW).resource)
    in_b = pseudonyms(deidentify(person.bundle, POLICY, keys("study-B"), now=NOW).resource)
    other = keys("study-A", secret=b"another-patient-secret-000000000")
    in_other = pseudonyms(deidentify(person.bundle, POLICY, other, now=NOW).resource)
    assert len(in_a) > 10
    hex_a = {re.sub(r".*[/#:]", "", v).replace("-", "")[:32] for v in in_a}
    hex_b = {re.sub(r".*[/#:]", "", v).replace("-", "")[:32] for v in in_b}
    assert not hex_a & hex_b, "the same pseudonym appeared in two studies"
    assert not in_a & in_other


def test_free_text_and_identifier_fields_are_reported_not_leaked(people, results) -> None:
    person, result = people[0], results[0]
    report_text = json.dumps([list(c) for c in result.changes]) + json.dumps(result.summary())
    assert [s for s in person.secrets if s in report_text] == []
    summary = {(row["path"], row["action"]) for row in result.summary()}
    for expected in [
        ("Patient.name", "redact"),
        ("Patient.identifier", "redact"),
        ("Patient.telecom", "redact"),
        ("Patient.photo", "redact"),
        ("Patient.text", "redact"),
        ("Patient.extension", "redact"),
        ("Patient.birthDate", "generalize"),
        ("Patient.address", "generalize"),
        ("Patient.gender", "keep"),
        ("Patient.id", "cryptohash"),
        ("Observation.valueString", "redact"),
        ("Observation.note", "redact"),
        ("DocumentReference.content.attachment.url", "redact"),
        ("DocumentReference.content.attachment.data", "redact"),
        ("DocumentReference.content.attachment.title", "redact"),
        ("DocumentReference.content.attachment.contentType", "keep"),
        ("Device.serialNumber", "redact"),
        ("Coverage.subscriberId", "redact"),
        ("Encounter.period", "generalize"),
        ("Patient.nickname2", "remove"),
        ("Bundle.entry.fullUrl", "cryptohash"),
    ]:
        assert expected in summary, expected


def test_single_resources_are_deidentified_like_entries(people) -> None:
    person = people[5]
    whole = deidentify(person.bundle, POLICY, keys(), now=NOW).resource
    for entry, original in zip(whole["entry"], person.resources, strict=True):
        alone = deidentify(original, POLICY, keys(), now=NOW).resource
        assert alone == entry["resource"]


def test_clinical_content_survives(people, results) -> None:
    person, result = people[2], results[2]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in result.resource["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    weight, _, _, heart = by_type["Observation"]
    assert weight["code"]["coding"] == [{"system": "http://loinc.org", "code": "29463-7"}]
    assert weight["valueQuantity"]["unit"] == "kg" and "extension" not in weight["valueQuantity"]
    assert (
        weight["effectiveDateTime"]
        == person.bundle["entry"][5]["resource"]["effectiveDateTime"][:4]
    )
    # Only the LOINC coding survives; the hospital's local code (an account number) does not.
    assert heart["code"]["coding"] == [{"system": "http://loinc.org", "code": "8867-4"}]
    assert heart["referenceRange"] == [
        {"low": {"value": 60, "unit": "/min"}, "high": {"value": 100, "unit": "/min"}}
    ]
    (condition,) = by_type["Condition"]
    assert {c["code"] for c in condition["code"]["coding"]} == {"44054006", "E11.9"}
    assert len(condition["onsetDateTime"]) == 4
    (request,) = by_type["MedicationRequest"]
    dose = request["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["value"] == 500
    assert dose["timing"]["repeat"] == {
        "frequency": 2,
        "period": 1,
        "periodUnit": "d",
        "boundsPeriod": {"start": person.bundle["entry"][5]["resource"]["effectiveDateTime"][:4]},
    }
    (encounter,) = by_type["Encounter"]
    assert encounter["class"]["code"] == "IMP" and encounter["status"] == "finished"
