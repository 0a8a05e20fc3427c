"""Rule engine semantics on small hand-written policies and resources."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthwallet.deid import (
    DEID_BASE,
    R4_RESOURCE_TYPES,
    Policy,
    PseudonymKeys,
    deidentify,
    parse_fhir_json,
    pseudonymize,
    zip3,
)
from healthwallet.deid._methods import Context
from healthwallet.deid._units import UCUM
from healthwallet.errors import BadInputError, UsageError

NOW = datetime(2025, 6, 1)
KEYS = PseudonymKeys.derive(b"unit-test-secret-0123456789abcdef", "study-1")


def run(rules: list[dict[str, Any]], resource: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return deidentify(resource, Policy({"rules": rules}), KEYS, now=NOW, **kwargs).resource


def h(text: str) -> str:
    return hmac.new(KEYS.hash_key, text.encode(), hashlib.sha256).hexdigest()


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "gender": "female",
    "birthDate": "1980-02-03",
    "name": [{"family": "Doe", "given": ["Jane"]}],
    "address": [{"city": "Springfield", "state": "MA", "postalCode": "02139"}],
    "extension": [
        {"url": "http://example.org/known", "valueCode": "a"},
        {"url": "http://example.org/unknown", "valueString": "secret"},
    ],
}


def test_default_deny_removes_everything_no_rule_keeps() -> None:
    assert run([], PATIENT) == {"resourceType": "Patient"}
    assert run([{"path": "Patient.gender", "method": "keep"}], PATIENT) == {
        "resourceType": "Patient",
        "gender": "female",
    }


def test_first_matching_rule_on_node_or_ancestor_wins() -> None:
    rules = [
        {"path": "Patient.address.city", "method": "redact"},
        {"path": "Patient.address", "method": "keep"},
        {"path": "Patient.address.state", "method": "redact"},  # later: loses to the keep
    ]
    assert run(rules, PATIENT)["address"] == [{"state": "MA", "postalCode": "02139"}]


def test_redact_still_lets_an_earlier_keep_reach_a_descendant() -> None:
    rules = [
        {"path": "Patient.address.state", "method": "keep"},
        {"path": "Patient.address", "method": "redact"},
    ]
    assert run(rules, PATIENT)["address"] == [{"state": "MA"}]


def test_extension_url_selector_keeps_only_known_extensions() -> None:
    rules = [{"path": "Patient.extension('http://example.org/known')", "method": "keep"}]
    assert run(rules, PATIENT)["extension"] == [
        {"url": "http://example.org/known", "valueCode": "a"}
    ]
    # Keeping a sub-element of a selected extension works too.
    rules = [{"path": "Patient.extension('http://example.org/known').url", "method": "keep"}]
    assert run(rules, PATIENT)["extension"] == [{"url": "http://example.org/known"}]


def test_choice_elements_match_their_x_form_only() -> None:
    obs = {
        "resourceType": "Observation",
        "valueQuantity": {"value": 1},
        "valueString": "x",
        "referenceRange": [{"text": "r"}],
    }
    assert run([{"path": "Observation.value[x]", "method": "keep"}], obs) == {
        "resourceType": "Observation",
        "valueQuantity": {"value": 1},
        "valueString": "x",
    }
    # A bare stem is an exact name: `reference` must not catch `referenceRange`.
    assert run([{"path": "Observation.value", "method": "keep"}], obs) == {
        "resourceType": "Observation"
    }
    assert run([{"path": "Resource.**.reference", "method": "keep"}], obs) == {
        "resourceType": "Observation"
    }
    assert run([{"path": "Observation.reference[x]", "method": "keep"}], obs) == {
        "resourceType": "Observation",
        "referenceRange": [{"text": "r"}],
    }  # the [x] form is a type-suffix test, as documented
    only_q = run([{"path": "Observation.valueQuantity", "method": "keep"}], obs)
    assert only_q == {"resourceType": "Observation", "valueQuantity": {"value": 1}}


def test_wildcards() -> None:
    resource = {
        "resourceType": "Patient",
        "name": [{"family": "F", "given": ["G"]}],
        "contact": [{"name": {"family": "C", "given": ["H"]}}],
    }
    out = run([{"path": "Patient.*.family", "method": "keep"}], resource)
    assert out == {"resourceType": "Patient", "name": [{"family": "F"}]}
    assert run([{"path": "Patient.**.family", "method": "keep"}], resource) == {
        "resourceType": "Patient",
        "name": [{"family": "F"}],
        "contact": [{"name": {"family": "C"}}],
    }
    assert run([{"path": "Resource.**", "method": "keep"}], resource) == resource


def test_where_filters_codings_by_system() -> None:
    obs = {
        "resourceType": "Observation",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "1-8"},
                {"system": "https://hospital.example/local", "code": "ACCOUNT-77"},
                {"system": "http://terminology.hl7.org/CodeSystem/x", "code": "y"},
            ]
        },
    }
    policy = {
        "sets": {"terms": ["http://loinc.org", "http://terminology.hl7.org/CodeSystem/*"]},
        "rules": [
            {"path": "Observation.code.coding", "method": "keep", "where": {"system": "$terms"}}
        ],
    }
    out = deidentify(obs, Policy(policy), KEYS, now=NOW).resource
    assert [c["code"] for c in out["code"]["coding"]] == ["1-8", "y"]


def test_nested_resources_follow_their_own_rules_only_where_their_slot_is_kept() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:6f4b5d8e-1f2a-4b3c-9d8e-7f6a5b4c3d2e", "resource": PATIENT},
            {"resource": {"resourceType": "Device", "serialNumber": "SN1"}},
        ],
    }
    rules = [
        {"path": "Bundle.entry.resource", "method": "keep"},
        {"path": "Patient.gender", "method": "keep"},
        {"path": "Device", "method": "redact"},
    ]
    out = run(rules, bundle)
    assert out == {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Patient", "gender": "female"}}],
    }
    # Without the slot rule, nested resources never leave, whatever their own rules say.
    assert run(rules[1:], bundle) == {"resourceType": "Bundle"}
    # A rule on the parent does not reach into a nested resource: here nothing of the
    # entries may leave, so the entries (fullUrl included) go.
    wide = run([{"path": "Bundle.**", "method": "keep"}], bundle)
    assert wide == {"resourceType": "Bundle", "type": "collection"}
    wide = run([{"path": "Bundle.**", "method": "keep"}, rules[1]], bundle)
    assert wide["entry"] == [
        {
            "fullUrl": "urn:uuid:6f4b5d8e-1f2a-4b3c-9d8e-7f6a5b4c3d2e",
            "resource": {"resourceType": "Patient", "gender": "female"},
        }
    ]


def test_cryptohash_keeps_references_resolvable() -> None:
    ctx = Context(KEYS, 2025)
    assert pseudonymize("p1", ctx) == h("p1")
    assert pseudonymize("Patient/p1", ctx) == "Patient/" + h("p1")
    assert pseudonymize("Patient/p1/_history/3", ctx) == "Patient/" + h("p1")
    assert pseudonymize("https://ehr.example/fhir/Patient/p1", ctx) == (
        DEID_BASE + "Patient/" + h("p1")
    )
    assert pseudonymize("#c1", ctx) == "#" + h("c1")
    urn = pseudonymize("urn:uuid:6F4B5D8E-1F2A-4B3C-9D8E-7F6A5B4C3D2E", ctx)
    assert urn == pseudonymize("urn:uuid:6f4b5d8e-1f2a-4b3c-9d8e-7f6a5b4c3d2e", ctx)
    assert urn.startswith("urn:uuid:") and urn[9 + 14] == "8"  # a version-8 UUID
    # Conditional references and plain values (they may hold identifiers) are hashed whole.
    assert pseudonymize("Patient?identifier=123-45-6789", ctx) == h(
        "Patient?identifier=123-45-6789"
    )
    assert pseudonymize("http://example.org/x", ctx) == h("http://example.org/x")


def test_dateshift_moves_every_date_by_the_same_days_and_keeps_intervals() -> None:
    enc = {
        "resourceType": "Encounter",
        "period": {"start": "2024-02-28T10:00:00+01:00", "end": "2024-03-02"},
        "partial": "2024-03",
    }
    rules = [
        {"path": "Encounter.period", "method": "dateshift"},
        {"path": "Encounter.partial", "method": "dateshift"},
    ]
    out = run(rules, enc)
    shift = timedelta(days=KEYS.date_shift_days)
    assert out["period"]["start"] == (date(2024, 2, 28) + shift).isoformat() + "T10:00:00+01:00"
    assert out["period"]["end"] == (date(2024, 3, 2) + shift).isoformat()
    assert "partial" not in out  # a partial date cannot be shifted without showing it
    assert 1 <= abs(KEYS.date_shift_days) <= 50
    other = PseudonymKeys.derive(b"unit-test-secret-0123456789abcdef", "study-2")
    assert other.date_shift_days != KEYS.date_shift_days or other.hash_key != KEYS.hash_key


def test_generalize_modes() -> None:
    patient = {
        "resourceType": "Patient",
        "birthDate": "1931-05-05",
        "address": [
            {"postalCode": "03601-1234"},
            {"postalCode": "10001"},
            {"postalCode": "SW1A 1AA"},
        ],
        "communication": [{"language": {"coding": [{"code": "en-GB"}, {"code": "xx"}]}}],
    }
    rules = [
        {"path": "Patient.birthDate", "method": "generalize", "to": "birth-year"},
        {"path": "Patient.address.postalCode", "method": "generalize", "to": "zip3"},
        {
            "path": "Patient.communication.language.coding.code",
            "method": "generalize",
            "to": "map",
            "map": {"en-GB": "en"},
            "otherwise": "keep",
        },
    ]
    out = run(rules, patient)
    assert "birthDate" not in out and out["_birthDate"]["extension"][1]["valueString"] == "90+"
    assert out["address"] == [{"postalCode": "000"}, {"postalCode": "100"}]  # SW1A: not a ZIP
    assert out["communication"][0]["language"]["coding"] == [{"code": "en"}, {"code": "xx"}]

    condition = {
        "resourceType": "Condition",
        "recordedDate": "2019-07-04",
        "onsetDateTime": "1930-01-01",
        "abatementAge": {"value": 1200, "unit": "mo", "system": UCUM, "code": "mo"},
    }
    rules = [
        {"path": "Condition.recordedDate", "method": "generalize", "to": "year"},
        {"path": "Condition.onsetDateTime", "method": "generalize", "to": "year"},
        {"path": "Condition.abatementAge", "method": "generalize", "to": "age"},
    ]
    out = run(rules, condition)
    assert out["recordedDate"] == "2019"
    assert "onsetDateTime" not in out  # a year 95 years back says the person is over 89
    assert out["abatementAge"]["value"] == 90 and out["abatementAge"]["comparator"] == ">="

    observation = {
        "resourceType": "Observation",
        "valueQuantity": {
            "value": 42,
            "unit": "a",
            "extension": [{"url": "u", "valueString": "s"}],
        },
    }
    rules = [{"path": "Observation.valueQuantity", "method": "generalize", "to": "age"}]
    out = run(rules, observation)
    assert out["valueQuantity"] == {"value": 42, "unit": "a"}  # nothing but the Quantity fields


def test_substitute_and_keep_copies_are_independent_of_the_input() -> None:
    rules = [
        {"path": "Patient.gender", "method": "substitute", "value": "unknown"},
        {"path": "Patient.name", "method": "substitute", "value": {"text": "anonymous"}},
        {"path": "Patient.address", "method": "keep"},
    ]
    source = json.loads(json.dumps(PATIENT))
    out = run(rules, source)
    assert out["gender"] == "unknown"
    assert out["name"] == [{"text": "anonymous"}]
    out["address"][0]["city"] = "changed"
    out["name"][0]["text"] = "changed"
    assert source == PATIENT
    assert run(rules, source)["name"] == [{"text": "anonymous"}]


def test_value_methods_never_copy_sub_elements() -> None:
    period = {"start": "2020-01-01", "end": "2020-02-01", "id": "x", "extension": [{"url": "u"}]}
    out = run(
        [{"path": "Encounter.period", "method": "generalize", "to": "year"}],
        {"resourceType": "Encounter", "period": period},
    )
    assert out["period"] == {"start": "2020", "end": "2020"}
    hashed = run([{"path": "Patient.name", "method": "cryptohash"}], PATIENT)
    assert "name" not in hashed  # cryptohash of an object is not defined: removed


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "Patient",
        {"resourceType": "NotAResource"},
        {"resourceType": 7},
        {"id": "x"},
        {"resourceType": "Bundle", "entry": [{"resource": {"id": "no type"}}]},
        {"resourceType": "Bundle", "entry": "nope"},
        {"resourceType": "Patient", "contained": [{"family": "Doe"}]},
    ],
)
def test_non_fhir_input_is_refused(bad: Any) -> None:
    with pytest.raises(BadInputError) as caught:
        deidentify(bad, Policy([]), KEYS, now=NOW)
    assert "Doe" not in str(caught.value) and "NotAResource" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [b"", b"not json", b"\xff\xfe", "[1, 2]", '{"resourceType": "Nope"}', "[" * 100_000],
)
def test_parse_fhir_json_refuses_non_fhir(text: bytes | str) -> None:
    with pytest.raises(BadInputError):
        parse_fhir_json(text)


def test_parse_fhir_json_accepts_resources() -> None:
    assert parse_fhir_json(json.dumps(PATIENT).encode()) == PATIENT
    assert len(R4_RESOURCE_TYPES) == 146 and "Patient" in R4_RESOURCE_TYPES


def test_deeply_nested_input_is_bad_input_not_a_crash() -> None:
    node: dict[str, Any] = {}
    deep = node
    for _ in range(5000):
        deep["a"] = {}
        deep = deep["a"]
    with pytest.raises(BadInputError):
        deidentify(
            {"resourceType": "Basic", "x": node},
            Policy([{"path": "Basic", "method": "keep"}]),
            KEYS,
        )


def test_wrong_argument_types_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        deidentify(PATIENT, {"rules": []}, KEYS)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        deidentify(PATIENT, Policy([]), b"key")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        PseudonymKeys.derive(b"short", "study")
    with pytest.raises(UsageError):
        PseudonymKeys.derive(b"x" * 32, " ")


def test_report_lists_paths_and_actions_never_values() -> None:
    resource = dict(PATIENT)
    resource["John Smith 123-45-6789"] = "leak"
    result = deidentify(
        resource, Policy([{"path": "Patient.gender", "method": "keep"}]), KEYS, now=NOW
    )
    text = json.dumps(result.changes) + json.dumps(result.summary())
    for value in ("Doe", "Jane", "Springfield", "02139", "1980", "secret", "123-45-6789", "leak"):
        assert value not in text
    paths = {change.path: change.action for change in result.changes}
    assert paths["Patient.gender"] == "keep"
    assert paths["Patient.name[0]"] == "remove"
    assert paths["Patient.<invalid-element>"] == "remove"
    assert deidentify(resource, Policy([]), KEYS, now=NOW, report=False).changes == []


def test_keys_are_deterministic_and_hide_the_secret() -> None:
    again = PseudonymKeys.derive(b"unit-test-secret-0123456789abcdef", "study-1")
    assert again == KEYS
    assert "hash_key" not in repr(KEYS) and KEYS.hash_key.hex() not in repr(KEYS)
    assert KEYS.hmac(b"abc") == hmac.new(KEYS.hash_key, b"abc", hashlib.sha256).digest()


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_pseudonyms_are_stable_within_and_distinct_across_studies(value: str) -> None:
    other = PseudonymKeys.derive(b"unit-test-secret-0123456789abcdef", "study-2")
    first = pseudonymize(value, Context(KEYS, 2025))
    assert first == pseudonymize(value, Context(KEYS, 2025))
    assert first != pseudonymize(value, Context(other, 2025)) or value in ("#",)


@settings(max_examples=60, deadline=None)
@given(
    st.dates(min_value=date(1937, 3, 1), max_value=date(2099, 10, 1)),
    st.dates(min_value=date(1937, 3, 1), max_value=date(2099, 10, 1)),
)
def test_dateshift_preserves_intervals(first: date, second: date) -> None:
    rules = [
        {"path": "Patient.birthDate", "method": "dateshift"},
        {"path": "Patient.deceasedDateTime", "method": "dateshift"},
    ]
    patient = {
        "resourceType": "Patient",
        "birthDate": first.isoformat(),
        "deceasedDateTime": second.isoformat(),
    }
    out = run(rules, patient)
    shifted = date.fromisoformat(out["birthDate"]), date.fromisoformat(out["deceasedDateTime"])
    assert shifted[1] - shifted[0] == second - first
    assert shifted[0] - first == timedelta(days=KEYS.date_shift_days)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"\A[0-9]{5}(-[0-9]{4})?\Z"))
def test_zip3_is_three_digits_or_000(code: str) -> None:
    restricted = frozenset({"036", "059", "102"})
    result = zip3(code, restricted)
    assert result is not None and len(result) == 3 and result.isdigit()
    assert result == ("000" if code[:3] in restricted else code[:3])
    assert zip3(result, restricted) == result  # idempotent


JSON_LEAF = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none())
JSON_TREE = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), JSON_TREE, max_size=6))
def test_default_deny_property_only_kept_elements_survive(extra: dict[str, Any]) -> None:
    resource = {
        "resourceType": "Patient",
        **{k: v for k, v in extra.items() if k != "resourceType"},
    }
    out = run([{"path": "Patient.gender", "method": "keep"}], resource)
    expected = {"resourceType": "Patient"}
    if "gender" in resource and resource["gender"] not in ({}, []):
        expected["gender"] = resource["gender"]
    assert out == expected
