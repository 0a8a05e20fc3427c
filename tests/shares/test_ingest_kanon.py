"""k-anonymity is true on what research ingest writes: every narrowing field counts."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from ingest_helpers import ingest, patient_resources, read_dataset, share_file
from share_helpers import LATER, RESEARCH

from healthwallet.deid import quasi_identifiers

AGE_LOINC = {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]}


def age_observation(number: int, years: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"age{number:05d}",
        "status": "final",
        "code": AGE_LOINC,
        "subject": {"reference": f"Patient/p{number:05d}"},
        "valueQuantity": {"value": years, "unit": "a", "system": "http://unitsofmeasure.org"},
    }


def recomputed_k(out: Path) -> tuple[int, int]:
    """(k, classes) from the files alone: resources join their Patient by reference."""
    people: dict[str, list[dict[str, Any]]] = {}
    for kind, resources in read_dataset(out).items():
        for resource in resources:
            if kind == "Patient":
                key = f"Patient/{resource['id']}"
            elif kind == "Bundle":  # these tests' Bundles are named after their patient
                key = f"Patient/p{resource['id'][1:]}"
            else:
                key = (resource.get("subject") or resource.get("patient") or {})["reference"]
            people.setdefault(key, []).append(resource)
    classes = Counter(
        json.dumps(quasi_identifiers(records, now=LATER), sort_keys=True)
        for records in people.values()
    )
    return min(classes.values()), len(classes)


def run(tmp_path: Path, cohort: list[list[dict[str, Any]]], k: int) -> Any:
    root = tmp_path / "shares"
    root.mkdir()
    files = [share_file(root, n, resources) for n, resources in enumerate(cohort)]
    return ingest(files, RESEARCH, tmp_path / "out", k=k, now=LATER)


def test_report_k_is_the_k_recomputed_from_the_files_on_disk(tmp_path: Path) -> None:
    cohort = [
        patient_resources(n, state=state, extra=[age_observation(n, 44)])
        for n, state in enumerate(["MA", "MA", "MA", "OR", "OR", "OR"])
    ]
    result = run(tmp_path, cohort, k=3)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    k, classes = recomputed_k(tmp_path / "out")
    assert report["k"]["achieved"] == result.k == k >= 3
    assert report["k_anonymity"]["equivalence_classes"] == classes == 2
    assert report["k_anonymity"]["computed_on"] == "written output"
    assert report["k_anonymity"]["generalization"]["level"] == 0
    ages = [o for o in read_dataset(tmp_path / "out")["Observation"] if o["id"].startswith("age")]
    assert ages and all("valueQuantity" not in o for o in ages)
    assert {json.dumps(o["valueRange"], sort_keys=True) for o in ages} == {
        json.dumps(
            {
                "low": {
                    "value": 40,
                    "unit": "a",
                    "system": "http://unitsofmeasure.org",
                    "code": "a",
                },
                "high": {
                    "value": 44,
                    "unit": "a",
                    "system": "http://unitsofmeasure.org",
                    "code": "a",
                },
            },
            sort_keys=True,
        )
    }


def _with_hidden_patients(number: int, bundle_birth: str, contained_birth: str) -> list[Any]:
    base = patient_resources(number)
    hidden_zip = {"postalCode": "97205", "state": "OR"}
    bundle = {
        "resourceType": "Bundle",
        "id": f"b{number:05d}",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": f"x{number}", "gender": "female"}},
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": f"y{number}",
                    "birthDate": bundle_birth,
                    "address": [hidden_zip],
                }
            },
        ],
    }
    observation = {
        "resourceType": "Observation",
        "id": f"c{number:05d}",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/p{number:05d}"},
        "contained": [
            {
                "resourceType": "Patient",
                "id": "inner",
                "birthDate": contained_birth,
                "address": [hidden_zip],
            }
        ],
    }
    return [*base, bundle, observation]


def test_second_patient_in_a_bundle_and_a_contained_patient_count_and_are_rewritten(
    tmp_path: Path,
) -> None:
    cohort = [
        _with_hidden_patients(0, "1950", "1950"),
        _with_hidden_patients(1, "1950", "1950"),
        _with_hidden_patients(2, "1950", "1950"),
        _with_hidden_patients(3, "1950", "1990"),  # only its contained Patient differs
    ]
    result = run(tmp_path, cohort, k=3)
    assert result.patients == 3 and result.suppressed == 1
    dataset = read_dataset(tmp_path / "out")
    assert not [o for o in dataset["Observation"] if o["id"] == "c00003"]
    for bundle in dataset["Bundle"]:
        hidden = bundle["entry"][1]["resource"]
        assert hidden["address"][0]["postalCode"] == "972"  # ZIP3 enforced in a Bundle too
    for holder in (o for o in dataset["Observation"] if o.get("contained")):
        inner = holder["contained"][0]
        assert inner["address"][0]["postalCode"] == "972"
        assert inner.get("birthDate") in (None, "1950")
    assert recomputed_k(tmp_path / "out")[0] == result.k >= 3


def test_state_and_country_are_quasi_identifiers(tmp_path: Path) -> None:
    cohort = [patient_resources(n, state=s) for n, s in enumerate(["MA", "OR", "MA", "OR"])]
    cohort += [patient_resources(9, state="MA", country="FR")]
    result = run(tmp_path, cohort, k=5)
    level = result.report["k_anonymity"]["generalization"]
    assert level["state"] == "removed" and level["country"] == "removed"
    for person in read_dataset(tmp_path / "out")["Patient"]:
        assert all("state" not in a and "country" not in a for a in person.get("address", []))
    assert recomputed_k(tmp_path / "out")[0] == result.k == 5


def test_a_related_persons_address_counts_with_the_patient(tmp_path: Path) -> None:
    def related(number: int, zip5: str) -> dict[str, Any]:
        return {
            "resourceType": "RelatedPerson",
            "id": f"r{number:05d}",
            "patient": {"reference": f"Patient/p{number:05d}"},
            "birthDate": "1949",
            "address": [{"postalCode": zip5}],
        }

    cohort = [
        patient_resources(n, extra=[related(n, z)]) for n, z in enumerate(["02139", "97205"] * 2)
    ]
    result = run(tmp_path, cohort, k=4)
    assert result.report["k_anonymity"]["generalization"]["zip3"] == "removed"
    for person in read_dataset(tmp_path / "out")["RelatedPerson"]:
        assert "address" not in person and "birthDate" not in person
    assert recomputed_k(tmp_path / "out")[0] == result.k == 4


def test_when_no_class_reaches_k_nothing_is_written_and_it_says_so(tmp_path: Path) -> None:
    cohort = [patient_resources(n, extra=[age_observation(n, 20 + 30 * n)]) for n in range(3)]
    result = run(tmp_path, cohort, k=2)
    assert result.outcome == "k-not-met" and result.files == () and result.k == 0
    assert result.accepted == 3 and result.suppressed == 3
    assert result.to_json()["out"] is None
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work dir left


def test_output_order_does_not_follow_input_order(tmp_path: Path) -> None:
    root = tmp_path / "shares"
    root.mkdir()
    files = [share_file(root, n, patient_resources(n, observations=4)) for n in range(25)]
    orders = []
    for run_number in range(2):
        out = tmp_path / f"out{run_number}"
        ingest(files, RESEARCH, out, k=1, now=LATER)
        observations = read_dataset(out)["Observation"]
        orders.append([o["id"] for o in observations])
        subjects = [o["subject"]["reference"] for o in observations]
        neighbours = sum(a == b for a, b in pairwise(subjects))
        assert neighbours < 25  # input order would put 75 same-patient pairs side by side
        assert orders[-1] != sorted(orders[-1])
    assert orders[0] != orders[1]  # a fresh secret key each run
