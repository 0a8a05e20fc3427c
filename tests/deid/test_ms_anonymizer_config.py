"""Microsoft FHIR anonymizer configurations as `share --policy` files: the published sample,
refusals by rule, and a configuration of supported methods end to end through `share`
(FHIRPath evaluated independently with fhirpathpy to check what left the wallet)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from conftest import new_wallet, serving
from fhirpathpy.models import models
from synth import make_patient

from healthwallet import shares
from healthwallet.deid import load_policy
from healthwallet.deid._msconfig import translate
from healthwallet.errors import BadInputError
from healthwallet.httpfetch import Fetcher
from healthwallet.unlock import open_wallet

SAMPLE = Path(__file__).parent / "ms-anonymizer" / "configuration-sample.json"
R4 = models["r4"]


def write(tmp_path: Path, document: Any, name: str = "ms.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_published_sample_is_refused_naming_each_rule_healthwallet_cannot_apply(
    tmp_path: Path,
) -> None:
    sample = json.loads(SAMPLE.read_text("utf-8"))
    with pytest.raises(BadInputError) as refused:
        load_policy(SAMPLE)
    assert refused.value.message.startswith(
        "Microsoft anonymizer rule 0 (nodesByType('Extension')): nodesByType()"
    )
    assert "(and 25 more)" in refused.value.message and "redact, keep" in refused.value.hint

    _, refusals = translate(sample)
    rules = sample["fhirPathRules"]
    by_type = {i for i, r in enumerate(rules) if r["path"].startswith("nodesByType(")}
    perturb = {i for i, r in enumerate(rules) if r["method"] == "perturb"}
    assert {r.index for r in refusals} == by_type | perturb and len(perturb) == 1
    for refusal in refusals:
        assert refusal.path == rules[refusal.index]["path"]
        expected = "perturb is not supported" if refusal.index in perturb else "nodesByType()"
        assert refusal.reason.startswith(expected)

    # Without the refused rules, everything else of the sample translates, in its order.
    sample["fhirPathRules"] = [r for i, r in enumerate(rules) if i not in by_type | perturb]
    policy = load_policy(write(tmp_path, sample))
    assert policy.name == "ms-anonymizer-config"
    paths = [rule.path.text for rule in policy.rules]
    assert paths[:3] == ["Organization.identifier", "Organization.telecom", "Organization.address"]
    assert "Condition.onset[x]" in paths and "Observation.value[x]" in paths
    base = [rule.path.text for rule in load_policy("safe-harbor").rules]
    assert paths[-len(base) :] == base  # safe-harbor decides what the configuration leaves
    assert len(paths) == len(sample["fhirPathRules"]) + len(base)


@pytest.mark.parametrize(
    ("rule", "parameters", "reason"),
    [
        ({"path": "Patient.name", "method": "encrypt"}, {}, "rule 0 (Patient.name): encrypt"),
        (
            {"path": "Observation.value as Quantity", "method": "perturb", "span": 1},
            {},
            "rule 0 (Observation.value as Quantity): perturb",
        ),
        (
            {"path": "Patient.birthDate", "method": "generalize", "cases": {}},
            {},
            "rule 0 (Patient.birthDate): generalize",
        ),
        ({"path": "Patient.name", "method": "scramble"}, {}, "unknown method scramble"),
        (
            {"path": "Patient.name.where(use='official')", "method": "keep"},
            {},
            "functions, filters or operators",
        ),
        ({"path": "Condition.onset as Quantity", "method": "keep"}, {}, "cannot be of type"),
        ({"path": "Patient.gender as Age", "method": "keep"}, {}, "'as Type' applies only"),
        ({"path": "Patient.name", "method": "substitute"}, {}, "needs 'replaceWith'"),
        ({"path": "Spaceship.name", "method": "redact"}, {}, "not a FHIR R4 resource type"),
        (
            {"path": "Patient.id", "method": "cryptoHash"},
            {"cryptoHashKey": "shared-secret"},
            "parameter cryptoHashKey: a key shared by every patient",
        ),
        ({"path": "Patient.id", "method": "keep"}, {"dateShiftKey": "k"}, "dateShiftKey"),
        ({"path": "Patient.id", "method": "keep"}, {"noiseLevel": 3}, "parameter noiseLevel"),
    ],
)
def test_unsupported_rules_and_parameters_are_refused_by_name(
    tmp_path: Path, rule: dict[str, Any], parameters: dict[str, Any], reason: str
) -> None:
    config = {"fhirVersion": "R4", "fhirPathRules": [rule], "parameters": parameters}
    with pytest.raises(BadInputError, match=re.escape(reason)):
        load_policy(write(tmp_path, config))


def test_other_fhir_versions_are_refused(tmp_path: Path) -> None:
    config = {"fhirVersion": "Stu3", "fhirPathRules": [{"path": "Patient.id", "method": "keep"}]}
    with pytest.raises(BadInputError, match="fhirVersion: healthwallet de-identifies FHIR R4"):
        load_policy(write(tmp_path, config))


SUPPORTED = {
    "fhirVersion": "R4",
    "processingErrors": "raise",
    "fhirPathRules": [
        {"path": "Observation.value", "method": "redact"},
        {"path": "Observation.status", "method": "substitute", "replaceWith": "amended"},
        {"path": "Condition.onset as DateTime", "method": "dateShift"},
        {"path": "Immunization.lotNumber", "method": "keep"},
        {"path": "Resource.id", "method": "cryptoHash"},
    ],
    "parameters": {
        "dateShiftKey": "",
        "dateShiftScope": "resource",
        "cryptoHashKey": "",
        "encryptKey": "",
        "enablePartialDatesForRedact": True,
        "restrictedZipCodeTabulationAreas": ["036", "059"],
    },
}


def select(resources: list[dict[str, Any]], path: str) -> list[Any]:
    """What a FHIRPath expression selects in each resource (fhirpathpy, the R4 model)."""
    found: list[Any] = []
    for resource in resources:
        found += fhirpathpy.evaluate(resource, path, model=R4)
    return found


def test_configuration_of_supported_methods_works_end_to_end_through_share(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, SUPPORTED)
    person = make_patient(random.Random(11))
    source = [entry["resource"] for entry in person.bundle["entry"]]
    (tmp_path / "record.json").write_text(json.dumps(person.bundle))
    www = tmp_path / "www"
    www.mkdir()
    patient, research = new_wallet(tmp_path, "patient"), new_wallet(tmp_path, "research")
    research_did = research.ok("id").out.strip()
    patient.ok("record", "add", tmp_path / "record.json")
    with serving(www) as base:
        patient.ok("config", "set", "status-url", base + "/status/")
        args = ["share", research_did, "--study", "S1", "--type", "fhir", "--policy", config]
        dry = patient.ok(*args, "--dry-run", "--json").json()
        actions = {(c["path"], c["action"]) for c in dry["changes"]}
        assert ("Observation.valueQuantity", "redact") in actions
        assert ("Condition.onsetDateTime", "dateshift") in actions
        assert ("Immunization.lotNumber", "keep") in actions
        out = tmp_path / "s.hwshare"
        summary = patient.ok(*args, "--out", out, "--json").json()
        assert summary["policy"] == "ms-anonymizer-config"
        patient.ok("status", "publish", "--out", www / "status")
        identity = open_wallet(research.home, lambda new: "research passphrase").identity
        with out.open("rb") as handle:
            # the patient's list is on 127.0.0.1: allowed here as `allow-local-urls` would
            lists = shares.StatusLists(transport=Fetcher(allow_local=True))
            shared = shares.open_share(handle, identity, status=lists).resources
    assert shared

    # Checked against the same FHIRPath evaluated on the input and on what left the wallet.
    assert select(source, "Observation.value") and select(shared, "Observation.value") == []
    assert set(select(shared, "Observation.status")) == {"amended"}
    lots = select(source, "Immunization.lotNumber")
    assert lots and select(shared, "Immunization.lotNumber") == lots
    before = select(source, "Condition.onset as DateTime")
    after = select(shared, "Condition.onset as DateTime")
    assert len(after) == len(before) and set(after).isdisjoint(before)
    assert set(select(shared, "Resource.id")).isdisjoint(select(source, "Resource.id"))
    # What the configuration does not name falls to safe-harbor (default deny), not to "keep".
    assert select(shared, "Patient.name") == [] and select(shared, "Patient.telecom") == []
    text = json.dumps(shared)
    assert [s for s in person.secrets if s in text and s not in lots] == []


def test_refused_configuration_writes_nothing(tmp_path: Path) -> None:
    patient = new_wallet(tmp_path, "patient")
    research_did = new_wallet(tmp_path, "research").ok("id").out.strip()
    out = tmp_path / "s.hwshare"
    result = patient(
        "share", research_did, "--study", "S1", "--type", "fhir", "--policy", SAMPLE, "--out", out
    )
    assert result.code == 2, result
    assert result.err.startswith(
        "error: Microsoft anonymizer rule 0 (nodesByType('Extension')): nodesByType()"
    )
    assert "\nhint: healthwallet applies redact, keep" in result.err and not out.exists()
