"""Every resource healthwallet writes into a share is valid FHIR R4 (official JSON schema)."""

from __future__ import annotations

import json
import random

import pytest
from fhir_schema import schema_errors
from synth import fixed_now, make_population
from synth_clinical import make_record

from healthwallet import shares
from healthwallet.deid import PseudonymKeys, deidentify, load_policy


def records() -> list[tuple[str, bytes]]:
    rng = random.Random(404)
    bundles = [make_record(rng, index) for index in range(3)]
    bundles += [person.bundle for person in make_population(405, 3)]
    return [(f"{index:016x}", json.dumps(b).encode()) for index, b in enumerate(bundles)]


@pytest.mark.parametrize("policy_name", ["safe-harbor", "dateshift"])
def test_every_written_resource_is_valid_fhir_r4(policy_name: str) -> None:
    keys = PseudonymKeys.derive(b"fhir-valid-secret-0123456789abcdef", "study-V")
    dataset = shares.prepare_dataset(records(), load_policy(policy_name), keys, now=fixed_now())
    assert len(dataset.resources) > 100
    problems = [e for resource in dataset.resources for e in schema_errors(resource)]
    assert problems == []


def test_the_validator_is_independent_and_catches_invalid_output() -> None:
    # The schema is not the model the engine uses at run time: it rejects what R4 rejects.
    bad = {"resourceType": "Observation", "status": "done", "code": {"coding": [{"x": 1}]}}
    assert len(schema_errors(bad)) >= 2
    good = deidentify(bad, load_policy("safe-harbor"), PseudonymKeys.derive(b"k" * 32, "s"))
    assert schema_errors(good.resource) == []
