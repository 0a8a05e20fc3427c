"""Safe Harbor holds for every representation: ages, elements inside kept ones, geography."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synth import fixed_now

from healthwallet.deid import PseudonymKeys, deidentify, load_policy
from healthwallet.deid._conform import is_age_question
from healthwallet.deid._units import unit_allowed

POLICY = load_policy("safe-harbor")
KEYS = PseudonymKeys.derive(b"representations-secret-0123456789", "study-R")
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
AGE_90 = {"value": 90, "comparator": ">=", "unit": "a", "system": UCUM, "code": "a"}


def share(resource: dict[str, Any]) -> dict[str, Any]:
    return deidentify(resource, POLICY, KEYS, now=fixed_now(), report=False).resource


def text(resource: dict[str, Any]) -> str:
    return json.dumps(share(resource))


def observation(code: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        **value,
    }


# -- ages over 89 ---------------------------------------------------------------------------------

UNIT_SPELLINGS = [
    {"unit": "a", "system": UCUM, "code": "a"},
    {"unit": "a_j", "system": UCUM, "code": "a_j"},
    {"unit": "a_g", "system": UCUM, "code": "a_g"},
    {"unit": "ANN"},
    {"unit": "years old"},
    {"unit": "yo"},
    {"unit": "y.o."},
    {"unit": "yrs"},
    {"unit": "years of age"},
    {"unit": "{years}"},
    {"unit": "Years"},
]


@pytest.mark.parametrize("unit", UNIT_SPELLINGS, ids=lambda u: u["unit"])
def test_age_over_89_in_any_unit_spelling_becomes_90_or_older(unit: dict[str, str]) -> None:
    out = share(observation("8302-2", valueQuantity={"value": 96, **unit}))
    assert out["valueQuantity"] == AGE_90


@pytest.mark.parametrize(("value", "unit"), [(1200, "mo"), (5000, "wk"), (35000, "d"), (96, None)])
def test_age_over_89_in_smaller_units_or_no_unit_under_an_age_code(
    value: int, unit: str | None
) -> None:
    quantity: dict[str, Any] = {"value": value}
    if unit:
        quantity |= {"unit": unit, "system": UCUM, "code": unit}
    out = share(observation("30525-0", valueQuantity=quantity))
    assert out["valueQuantity"] == AGE_90


@pytest.mark.parametrize("code", ["30525-0", "21612-7", "29553-5"])
def test_number_under_an_age_code_over_89_becomes_90_or_older(code: str) -> None:
    out = share(observation(code, valueInteger=95))
    assert "valueInteger" not in out and out["valueQuantity"] == AGE_90
    young = share(observation(code, valueInteger=45))
    assert young["valueInteger"] == 45


def test_range_and_component_under_an_age_code_over_89() -> None:
    out = share(observation("30525-0", valueRange={"low": {"value": 91}, "high": {"value": 95}}))
    assert out["valueRange"] == {"low": {"value": 90, "unit": "a", "system": UCUM, "code": "a"}}
    panel = observation(
        "55284-4",
        component=[
            {"code": {"coding": [{"system": LOINC, "code": "21612-7"}]}, "valueInteger": 97},
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueInteger": 120},
        ],
    )
    out = share(panel)
    assert out["component"][0]["valueQuantity"] == AGE_90
    assert out["component"][1]["valueInteger"] == 120  # not an age: kept as it is


def test_questionnaire_answer_to_an_age_question_over_89() -> None:
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {"linkId": "patient-age", "answer": [{"valueInteger": 94}]},
            {"linkId": "ageYears", "answer": [{"valueDecimal": 91.5}]},
            {"linkId": "dosage", "answer": [{"valueInteger": 500}]},
        ],
    }
    out = share(response)
    assert out["item"][0]["answer"] == [{"valueQuantity": AGE_90}]
    assert out["item"][1]["answer"] == [{"valueQuantity": AGE_90}]
    assert out["item"][2]["answer"] == [{"valueInteger": 500}]


def test_onset_age_and_family_member_ages_over_89() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "onsetAge": {"value": 93, "unit": "yo"},
    }
    assert share(condition)["onsetAge"] == AGE_90
    history = {
        "resourceType": "FamilyMemberHistory",
        "status": "completed",
        "patient": {"reference": "Patient/p"},
        "relationship": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}
            ]
        },
        "ageAge": {"value": 1150, "unit": "months"},
        "deceasedRange": {"low": {"value": 92, "unit": "a"}},
        "condition": [
            {
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "22298006"}]},
                "onsetAge": {"value": 95, "unit": "years"},
            }
        ],
    }
    out = share(history)
    assert out["ageAge"] == AGE_90
    assert out["deceasedRange"] == {"low": {"value": 90, "unit": "a", "system": UCUM, "code": "a"}}
    assert out["condition"][0]["onsetAge"] == AGE_90


def test_age_that_dates_show_is_now_over_89_is_removed() -> None:
    # 70 in 2000: 95 in 2025. Neither value alone says so; together they do.
    old = observation("30525-0", effectiveDateTime="2000-06-01", valueInteger=70)
    out = share(old)
    assert out["effectiveDateTime"] == "2000"
    assert "valueInteger" not in out and "valueQuantity" not in out
    recent = observation("30525-0", effectiveDateTime="2020-06-01", valueInteger=70)
    assert share(recent)["valueInteger"] == 70


# -- default deny all the way down ------------------------------------------------------------------


def test_unknown_member_inside_a_kept_coding_is_removed() -> None:
    obs = observation("8302-2", valueQuantity={"value": 180, "unit": "cm"})
    obs["code"]["coding"][0]["patientName"] = "Jane Doe"
    obs["code"]["coding"][0]["fhir_comments"] = ["MRN 12345"]
    obs["code"]["fhir_comments"] = ["MRN 12345"]
    out = share(obs)
    assert "Jane Doe" not in json.dumps(out) and "12345" not in json.dumps(out)
    assert out["code"] == {"coding": [{"system": LOINC, "code": "8302-2"}]}


def test_free_text_in_quantity_unit_is_removed() -> None:
    out = share(observation("2345-7", valueQuantity={"value": 98, "unit": "mg/dL (pt Jane Doe)"}))
    assert out["valueQuantity"] == {"value": 98}
    kept = share(
        observation(
            "2345-7", valueQuantity={"value": 98, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}
        )
    )
    assert kept["valueQuantity"] == {"value": 98, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}


def test_non_terminology_url_in_quantity_or_coding_system_is_removed() -> None:
    out = share(
        observation(
            "2345-7",
            valueQuantity={
                "value": 98,
                "unit": "mg/dL",
                "system": "https://jane-doe.example/u",
                "code": "x",
            },
            interpretation=[{"coding": [{"system": "https://jane-doe.example/i", "code": "H"}]}],
        )
    )
    assert "jane-doe" not in json.dumps(out)
    assert out["valueQuantity"] == {"value": 98, "unit": "mg/dL"}


def test_coding_version_and_free_strings_in_coded_fields_are_removed() -> None:
    obs = observation("2345-7", valueQuantity={"value": 98})
    obs["code"]["coding"][0]["version"] = "2.74 entered by Jane Doe"
    obs["code"]["coding"].append({"system": LOINC, "code": "Jane Doe 555-1234"})
    obs["status"] = "final, called Jane Doe"
    obs["valueQuantity"]["comparator"] = "Jane"
    out = share(obs)
    assert "Jane" not in json.dumps(out) and "2.74" not in json.dumps(out)
    assert out["code"] == {"coding": [{"system": LOINC, "code": "2345-7"}]}


# -- geography ----------------------------------------------------------------------------------------


def patient(address: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Patient", "gender": "female", "address": [address]}


def test_foreign_postal_code_is_removed() -> None:
    out = share(patient({"city": "Paris", "postalCode": "75008", "country": "FR"}))
    assert out["address"] == [{"country": "FR"}]


def test_us_zip_generalizes_to_zip3_or_000() -> None:
    assert share(patient({"state": "MA", "postalCode": "02139-4307", "country": "US"}))[
        "address"
    ] == [{"state": "MA", "country": "US", "postalCode": "021"}]
    assert share(patient({"state": "NH", "postalCode": "03601"}))["address"] == [
        {"state": "NH", "postalCode": "000"}
    ]


def test_zip_hidden_in_state_or_text_is_removed() -> None:
    out = share(
        patient(
            {
                "state": "MA 02139",
                "text": "12 Quarry Lane, Cambridge MA 02139",
                "country": "USA",
                "postalCode": "02139",
            }
        )
    )
    assert "02139" not in json.dumps(out) and "Quarry" not in json.dumps(out)
    assert out["address"] == [{"country": "USA", "postalCode": "021"}]


def test_addresses_outside_the_patient_are_removed() -> None:
    related = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": "Patient/p"},
        "address": [{"state": "MA", "postalCode": "02139"}],
    }
    assert "address" not in share(related)


@pytest.mark.parametrize(
    "unit",
    ["mg/dL", "mmol/L", "10*3/uL", "mL/min/{1.73_m2}", "{beats}/min", "/min", "kg/m2", "mm[Hg]",
     "Cel", "[degF]", "%", "ug/L", "U/L", "mL/h", "{tablet}", "a", "mo", "[in_i]"],
)  # fmt: skip
def test_ucum_units_and_known_displays_are_kept(unit: str) -> None:
    assert unit_allowed(unit)


@pytest.mark.parametrize(
    "unit",
    ["mg/dL (pt Jane Doe)", "Jane", "{Jane Doe}", "mg/{MRN12345}", "https://x.example/u",
     "555-0199", "mg/dL;drop table", "x" * 41],
)  # fmt: skip
def test_free_text_units_are_refused(unit: str) -> None:
    assert not unit_allowed(unit)


@pytest.mark.parametrize(
    ("link_id", "asks_age"),
    [("age", True), ("patient-age", True), ("ageYears", True), ("patientAge", True),
     ("AGE_AT_VISIT", True), ("page", False), ("stage", False), ("dosage", False),
     ("agent", False), ("average", False), ("q7", False)],
)  # fmt: skip
def test_age_questions_are_recognised_by_link_id_words(link_id: str, asks_age: bool) -> None:
    assert is_age_question(link_id) is asks_age
