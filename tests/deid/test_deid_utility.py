"""Clinical value is kept wherever Safe Harbor allows it (measured on synth_clinical)."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest
from synth import fixed_now
from synth_clinical import clinical_facts, make_corpus, make_record

from healthwallet.deid import PseudonymKeys, deidentify, load_policy

SAFE_HARBOR = load_policy("safe-harbor")
UTILITY_TARGET = 0.95  # the figure benchmarks/bench_deid_utility.py reports, on a smaller corpus


def keys(study: str = "study-U", patient: int = 0) -> PseudonymKeys:
    return PseudonymKeys.derive(f"utility-{patient:04d}-secret-0123456789".encode(), study)


def share(resource: dict[str, Any], policy_name: str = "safe-harbor", **kw: Any) -> Any:
    policy = load_policy(policy_name)
    return deidentify(resource, policy, kw.get("k", keys()), now=fixed_now(), report=False).resource


def by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        found.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return found


@pytest.fixture(scope="module")
def record() -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    bundle = make_record(random.Random(7), 1)
    return bundle, by_type(share(bundle))


def test_safe_harbor_keeps_the_target_share_of_clinical_facts() -> None:
    before = after = 0
    for index, bundle in enumerate(make_corpus(99, 12)):
        facts = clinical_facts(bundle)
        kept = facts & clinical_facts(share(bundle, k=keys(patient=index)))
        before, after = before + sum(facts.values()), after + sum(kept.values())
    assert after / before >= UTILITY_TARGET


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("urn:oid:2.16.840.1.113883.6.1", "2345-7"),  # LOINC as an OID
        ("https://loinc.org", "2345-7"),
        ("urn:oid:2.16.840.1.113883.6.96", "44054006"),  # SNOMED CT as an OID
        ("http://www.cms.gov/Medicare/Coding/ICD10", "0DTJ4ZZ"),  # ICD-10-PCS
        ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "G0121"),
        ("http://id.who.int/icd/release/11/mms", "5A11"),
        ("http://www.orpha.net", "ORPHA:586"),
        ("http://dicom.nema.org/resources/ontology/DCM", "CT"),
        ("urn:oid:2.16.840.1.113883.6.238", "2106-3"),  # CDC race and ethnicity
        ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9"),
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
        ("http://hl7.org/fhir/administrative-gender", "female"),
    ],
)
def test_standard_terminologies_in_their_other_official_forms_are_kept(
    system: str, code: str
) -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": system, "code": code, "display": "x"}]},
    }
    assert share(condition)["code"] == {"coding": [{"system": system, "code": code}]}


def test_us_core_race_ethnicity_and_birth_sex_are_kept_without_their_text(record: Any) -> None:
    _, out = record
    (patient,) = out["Patient"]
    urls = [e["url"].rsplit("/", 1)[1] for e in patient["extension"]]
    assert urls == ["us-core-race", "us-core-ethnicity", "us-core-birthsex"]
    race = patient["extension"][0]["extension"]
    assert [e["url"] for e in race] == ["ombCategory"]
    assert race[0]["valueCoding"]["system"] == "urn:oid:2.16.840.1.113883.6.238"
    assert "display" not in race[0]["valueCoding"]
    assert patient["extension"][2]["valueCode"] in ("F", "M")


def test_coding_typed_elements_not_named_coding_are_kept(record: Any) -> None:
    _, out = record
    (study,) = out["ImagingStudy"]
    assert study["modality"][0]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
    series = study["series"][0]
    assert series["modality"] == study["modality"][0] and series["bodySite"]["code"] == "51185008"
    assert "uid" not in series and "identifier" not in study  # DICOM UIDs are unique numbers
    (response,) = out["QuestionnaireResponse"]
    assert response["item"][1]["answer"][0]["valueCoding"]["system"] == "http://loinc.org"


def test_required_status_elements_are_kept(record: Any) -> None:
    _, out = record
    for resource_type, resources in out.items():
        if resource_type in ("Patient", "AllergyIntolerance", "Condition"):
            continue  # no status element (clinicalStatus is a CodeableConcept)
        for resource in resources:
            assert "status" in resource, resource_type


def test_questionnaire_link_ids_and_questionnaire_are_kept(record: Any) -> None:
    bundle, out = record
    (response,) = out["QuestionnaireResponse"]
    (source,) = by_type(bundle)["QuestionnaireResponse"]
    assert response["questionnaire"] == "http://loinc.org/q/44249-1"
    assert [i["linkId"] for i in response["item"]] == [i["linkId"] for i in source["item"]]
    assert all("text" not in item for item in response["item"])
    local = dict(source, questionnaire="https://forms.stmungo.example/jane-doe-intake")
    assert "questionnaire" not in share(local)


def test_medication_dose_rate_quantity_and_days_supply_are_kept(record: Any) -> None:
    _, out = record
    dispense = out["MedicationDispense"][0]
    assert dispense["quantity"]["value"] == 30 and dispense["daysSupply"]["code"] == "d"
    dose = dispense["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["unit"] in ("mg", "ug")
    assert dose["route"]["coding"][0]["code"] == "26643006" and "text" not in dose
    request = out["MedicationRequest"][0]
    assert request["dispenseRequest"]["expectedSupplyDuration"]["value"] == 30
    (administration,) = out["MedicationAdministration"]
    assert administration["dosage"]["rateQuantity"] == {
        "value": 100,
        "unit": "mL/h",
        "system": "http://unitsofmeasure.org",
        "code": "mL/h",
    }


def test_claim_amounts_are_kept(record: Any) -> None:
    _, out = record
    (claim,) = out["Claim"]
    assert claim["total"]["currency"] == "USD" and claim["item"][0]["net"] == claim["total"]
    assert claim["diagnosis"][0]["sequence"] == 1 and claim["insurance"][0]["focal"] is True
    (benefit,) = out["ExplanationOfBenefit"]
    assert benefit["payment"]["amount"]["value"] > 0 and benefit["outcome"] == "complete"
    assert len(benefit["item"][0]["adjudication"]) == 2


def test_dateshift_policy_keeps_intervals_within_a_patient_and_a_study() -> None:
    policy = load_policy("dateshift")
    assert "NOT Safe Harbor" in policy.document["description"]
    assert policy.digest != SAFE_HARBOR.digest
    first = {"resourceType": "Encounter", "status": "finished",
             "period": {"start": "2024-03-01", "end": "2024-03-04"}}  # fmt: skip
    second = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2024-04-10"}
    a, b = share(first, "dateshift"), share(second, "dateshift")
    start = date.fromisoformat(a["period"]["start"])
    assert date.fromisoformat(a["period"]["end"]) - start == date(2024, 3, 4) - date(2024, 3, 1)
    assert date.fromisoformat(b["effectiveDateTime"]) - start == date(2024, 4, 10) - date(
        2024, 3, 1
    )
    assert start != date(2024, 3, 1)
    shifts = {
        date.fromisoformat(share(first, "dateshift", k=keys(study))["period"]["start"])
        for study in ("s1", "s2", "s3", "s4")
    }
    assert len(shifts) > 1  # another study, another shift
    patient = {"resourceType": "Patient", "birthDate": "1980-05-05"}
    assert share(patient, "dateshift")["birthDate"] == "1980"  # still the year only
    old = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "1931-01-05"}
    assert "effectiveDateTime" not in share(old, "dateshift")
