"""k-anonymity at ingest: equivalence classes, the generalization ladder, suppression."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import NOW_YEAR, fixed_now, make_patient

from healthwallet.deid import (
    AGE_GROUP_URL,
    DEFAULT_QUASI,
    PseudonymKeys,
    deidentify,
    k_anonymize,
    load_policy,
    quasi_identifiers,
)
from healthwallet.deid._kanon import AGE_BAND_URL
from healthwallet.errors import BadInputError, UsageError

NOW = fixed_now()


def classes(kept: list[list[dict[str, Any]]], quasi: list[str] | None = None) -> Counter:
    """Equivalence classes recomputed from the output alone."""
    return Counter(
        json.dumps(quasi_identifiers(records, quasi, now=NOW), sort_keys=True) for records in kept
    )


def patient(gender: str, birth_year: int | None, zip5: str | None, **extra: Any) -> list[dict]:
    resource: dict[str, Any] = {"resourceType": "Patient", "gender": gender, **extra}
    if birth_year is not None:
        resource["birthDate"] = str(birth_year)
    if zip5 is not None:
        resource["address"] = [{"state": "MA", "postalCode": zip5}]
    return [resource]


@pytest.fixture(scope="module")
def shared() -> list[list[dict[str, Any]]]:
    """60 de-identified shares, as the research group receives them."""
    rng = random.Random(5)
    policy = load_policy("safe-harbor")
    out = []
    for index in range(60):
        person = make_patient(
            rng,
            age=rng.choice([34, 35, 36, 52, 53, 71, 93]) if index else 93,
            gender=rng.choice(["female", "male"]),
            zip5=rng.choice(["02139", "02140", "03601", "10001"]),
            old_address=False,
        )
        keys = PseudonymKeys.derive(f"patient-{index:04d}-secret-bytes!!".encode(), "study-k")
        out.append([deidentify(person.bundle, policy, keys, now=NOW).resource])
    return out


def test_k_is_achieved_on_the_output(shared) -> None:
    for k in (2, 3, 5, 8):
        result = k_anonymize(shared, k=k, now=NOW)
        assert len(result.kept) + len(result.suppressed) == len(shared)
        sizes = classes(result.kept)
        assert min(sizes.values()) >= k
        assert result.k_achieved == min(sizes.values())
        assert result.report["k_achieved"] == result.k_achieved
        assert result.report["kept"] == len(result.kept)
        assert result.report["suppressed"] == len(result.suppressed)
        assert result.report["equivalence_classes"] == len(sizes)


def test_ladder_generalizes_before_suppressing(shared) -> None:
    strict = k_anonymize(shared, k=3, now=NOW, generalize=False)
    ladder = k_anonymize(shared, k=3, now=NOW)
    assert len(ladder.suppressed) <= len(strict.suppressed)
    assert strict.report["generalization"]["level"] == 0
    level = ladder.report["generalization"]["level"]
    assert level >= 1 and ladder.report["within_max_suppression"]
    assert len(ladder.suppressed) <= 0.05 * len(shared)
    for records in ladder.kept:
        person = records[0]["entry"][0]["resource"]
        assert "birthDate" not in person  # the birth year was dropped at this level
        bands = [e for e in person.get("extension", []) if e["url"] == AGE_BAND_URL]
        assert len(bands) == 1 and "low" in bands[0]["valueRange"]


def test_report_says_how_many_and_why(shared) -> None:
    result = k_anonymize(shared, k=8, now=NOW, generalize=False)
    assert result.suppressed
    (reason,) = result.report["suppression_reasons"]
    assert reason["reason"] == "equivalence class smaller than k=8"
    assert reason["patients"] == len(result.suppressed)
    assert reason["classes"] >= 1
    assert result.report["quasi_identifiers"] == list(DEFAULT_QUASI)
    assert result.report["levels_tried"][0]["suppressed"] == len(result.suppressed)


def test_ninety_plus_is_one_class_without_birth_year() -> None:
    marker = {"extension": [{"url": AGE_GROUP_URL, "valueString": "90+"}]}
    people = [patient("female", None, "02139", _birthDate=marker) for _ in range(3)]
    people += [patient("female", NOW_YEAR - 95, "02139")]  # not yet generalized: same class
    result = k_anonymize(people, k=4, now=NOW)
    assert result.suppressed == [] and result.k_achieved == 4
    values = quasi_identifiers(result.kept[3], now=NOW)
    assert values["birth"] == ["90+"]
    assert "birthDate" not in result.kept[3][0]


def test_uniform_population_needs_no_generalization() -> None:
    people = [patient("male", 1980, "02139") for _ in range(6)]
    result = k_anonymize(people, k=6, now=NOW)
    assert result.report["generalization"]["level"] == 0
    assert result.kept[0][0]["birthDate"] == "1980"
    assert result.kept[0][0]["address"][0]["postalCode"] == "021"  # ZIP3 enforced on output


def test_custom_quasi_identifier_by_field_name() -> None:
    def married(flag: str) -> dict[str, Any]:
        return {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": flag}
            ]
        }

    people = [patient("male", 1980, "02139", maritalStatus=married("M")) for _ in range(3)]
    people.append(patient("male", 1980, "02139", maritalStatus=married("S")))
    quasi = ["gender", "Patient.maritalStatus.coding.code"]
    result = k_anonymize(people, quasi, k=2, now=NOW)
    assert result.suppressed == [3]
    (key,) = classes(result.kept, quasi)
    values = json.loads(key)
    assert values["gender"] == ["male"]
    assert json.loads(values["p.maritalStatus"][0])["coding"][0]["code"] == "M"
    assert "birthDate" not in result.kept[0][0]  # not a chosen quasi-identifier: removed
    assert "address" not in result.kept[0][0]


def test_input_and_arguments_are_checked() -> None:
    with pytest.raises(UsageError):
        k_anonymize([], k=0)
    with pytest.raises(UsageError):
        k_anonymize([], quasi=["shoe_size"])
    with pytest.raises(UsageError):
        k_anonymize([], quasi=["Observation.code"])
    with pytest.raises(UsageError):
        k_anonymize([], quasi=[])
    with pytest.raises(BadInputError):
        k_anonymize([{"resourceType": "Patient"}], k=2)  # type: ignore[list-item]
    assert k_anonymize([], k=3).k_achieved == 0


def test_patients_without_a_patient_resource_form_their_own_class() -> None:
    people = [[{"resourceType": "Observation"}] for _ in range(2)]
    people += [patient("female", 1990, "02139")]
    result = k_anonymize(people, k=2, now=NOW, generalize=False)
    assert result.suppressed == [2]


PROFILE = st.tuples(
    st.sampled_from(["female", "male", "other"]),
    st.one_of(st.none(), st.integers(min_value=NOW_YEAR - 100, max_value=NOW_YEAR)),
    st.one_of(st.none(), st.sampled_from(["02139", "02140", "03601", "10001", "94110"])),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(PROFILE, max_size=40), st.integers(min_value=1, max_value=6), st.booleans())
def test_k_anonymity_property(profiles: list[tuple], k: int, generalize: bool) -> None:
    people = [patient(*profile) for profile in profiles]
    result = k_anonymize(people, k=k, now=NOW, generalize=generalize)
    assert len(result.kept) + len(result.suppressed) == len(people)
    assert result.suppressed == sorted(set(result.suppressed))
    if result.kept:
        assert min(classes(result.kept).values()) >= k == k
        assert result.k_achieved >= k
    else:
        assert result.k_achieved == 0
    # No birth year older than 89 years ever leaves.
    for records in result.kept:
        year = records[0].get("birthDate")
        assert year is None or NOW_YEAR - int(year) <= 89
