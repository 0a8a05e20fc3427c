"""Policies as data: loading, validation, the stable digest, the built-in safe-harbor."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import healthwallet.deid as deid
from healthwallet.deid import Policy, canonical_json, load_policy, restricted_zip3
from healthwallet.errors import BadInputError, NotFoundError

ROOT = Path(__file__).resolve().parents[2]
HHS_2000_RESTRICTED = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821",
    "823", "830", "831", "878", "879", "884", "890", "893",
]  # fmt: skip


def test_public_api_is_pinned() -> None:
    assert sorted(deid.__all__) == sorted(
        [
            "AGE_GROUP_URL",
            "BUILTIN_POLICIES",
            "DEFAULT_QUASI",
            "DEID_BASE",
            "POLICY_FORMAT",
            "Change",
            "DeidResult",
            "KAnonResult",
            "Policy",
            "PseudonymKeys",
            "R4_RESOURCE_TYPES",
            "canonical_json",
            "deidentify",
            "field_path",
            "k_anonymize",
            "load_policy",
            "parse_fhir_json",
            "pseudonymize",
            "quasi_identifiers",
            "restricted_zip3",
            "zip3",
        ]
    )


def test_builtin_safe_harbor_has_a_stable_digest() -> None:
    policy = load_policy("safe-harbor")
    assert policy.name == "safe-harbor"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", policy.digest)
    assert policy.digest == "sha256:" + hashlib.sha256(policy.canonical_bytes()).hexdigest()
    assert Policy(policy.document).digest == policy.digest  # normalizing is idempotent
    assert policy.canonical_bytes() == canonical_json(policy.document)


def test_document_is_a_copy() -> None:
    policy = load_policy("safe-harbor")
    policy.document["rules"].clear()
    assert policy.document["rules"]


def test_digest_ignores_layout_and_key_order_but_not_content(tmp_path: Path) -> None:
    rules = [
        {"path": "Patient.gender", "method": "keep"},
        {"path": "Patient.address.postalCode", "method": "generalize", "to": "zip3"},
    ]
    compact = tmp_path / "a.json"
    compact.write_text(json.dumps({"name": "mine", "rules": rules}))
    pretty = tmp_path / "b.json"
    reordered = [dict(reversed(list(rule.items()))) for rule in rules]
    pretty.write_text(json.dumps({"rules": reordered, "name": "mine"}, indent=4))
    first, second = load_policy(compact), load_policy(str(pretty))
    assert first.digest == second.digest
    changed = Policy(
        {"name": "mine", "rules": [*rules, {"path": "Patient.id", "method": "redact"}]}
    )
    assert changed.digest != first.digest
    # The restricted ZIP list is inlined, so the digest names the list actually applied.
    narrower = Policy({"name": "mine", "rules": [rules[0], {**rules[1], "restricted": ["036"]}]})
    assert narrower.digest != first.digest
    zip_rule = first.document["rules"][1]
    assert zip_rule["restricted"] == list(restricted_zip3())


@settings(max_examples=40, deadline=None)
@given(st.permutations(["format", "name", "description", "rules"]))
def test_digest_does_not_depend_on_top_level_order(order: list[str]) -> None:
    values = {
        "format": "healthwallet-deid-policy/1",
        "name": "x",
        "description": "d",
        "rules": [{"path": "Patient.gender", "method": "keep"}],
    }
    assert Policy({key: values[key] for key in order}).digest == Policy(values).digest


def test_a_bare_list_of_rules_is_a_policy() -> None:
    policy = Policy([{"path": "Patient.gender", "method": "keep"}])
    assert policy.name == "custom"
    assert policy.document["rules"] == [{"path": "Patient.gender", "method": "keep"}]


def test_restricted_zip3_list_covers_the_hhs_list() -> None:
    prefixes = restricted_zip3()
    assert set(HHS_2000_RESTRICTED) <= set(prefixes)
    assert all(len(p) == 3 and p.isdigit() for p in prefixes)
    rule = next(r for r in load_policy("safe-harbor").document["rules"] if r.get("to") == "address")
    assert rule["restricted"] == list(prefixes)


def test_missing_policy_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_policy(tmp_path / "nope.json")
    with pytest.raises(NotFoundError):
        load_policy("safe-harbour")


@pytest.mark.parametrize(
    "document",
    [
        {"rules": [{"path": "Patient.name", "method": "shred"}]},
        {"rules": [{"path": "Patient..name", "method": "redact"}]},
        {"rules": [{"path": "Pateint.name", "method": "redact"}]},
        {"rules": [{"path": "Patient.name.", "method": "redact"}]},
        {"rules": [{"path": "", "method": "redact"}]},
        {"rules": [{"path": "Patient.name", "method": "redact", "value": 1}]},
        {"rules": [{"path": "Patient.name", "method": "substitute"}]},
        {"rules": [{"path": "Patient.name", "method": "generalize"}]},
        {"rules": [{"path": "Patient.name", "method": "generalize", "to": "decade"}]},
        {"rules": [{"path": "Patient.x", "method": "generalize", "to": "year", "map": {}}]},
        {
            "rules": [
                {"path": "Patient.x", "method": "generalize", "to": "zip3", "restricted": ["1"]}
            ]
        },
        {"rules": [{"path": "Patient.x", "method": "generalize", "to": "map"}]},
        {
            "rules": [
                {
                    "path": "Patient.x",
                    "method": "generalize",
                    "to": "map",
                    "map": {},
                    "otherwise": "maybe",
                }
            ]
        },
        {"rules": [{"path": "Patient.x", "method": "keep", "where": {"system": "$nope"}}]},
        {"rules": [{"path": "Patient.x", "method": "keep", "where": {"system": "http://x"}}]},
        {"rules": [{"path": "Patient.x", "method": "keep", "comment": 3}]},
        {"rules": ["Patient.x"]},
        {"rules": "Patient.x"},
        {"rules": [], "extra": 1},
        {"rules": [], "format": "other/2"},
        {"rules": [], "sets": {"a": "b"}},
        {"rules": [], "name": 5},
        "just a string",
    ],
)
def test_bad_policies_are_refused(document: object) -> None:
    with pytest.raises(BadInputError):
        Policy(document)


def test_bad_policy_files_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"rules": [')
    with pytest.raises(BadInputError):
        load_policy(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BadInputError):
        load_policy(binary)


def _letters(text: str) -> set[str]:
    found: set[str] = set()
    for group in re.findall(r"\(([A-R](?:[-, ]+[A-R])*)\)", text):
        for part in group.split(","):
            part = part.strip()
            if "-" in part:
                start, end = part.split("-")
                found.update(chr(c) for c in range(ord(start), ord(end) + 1))
            else:
                found.add(part)
    return found


def test_safe_harbor_rules_cover_all_18_identifier_kinds() -> None:
    # Each rule's comment names the 164.514(b)(2)(i) items (A)..(R) it handles.
    comments = " ".join(r.get("comment", "") for r in load_policy("safe-harbor").document["rules"])
    assert _letters(comments) == {chr(c) for c in range(ord("A"), ord("R") + 1)}


def test_documentation_lists_every_safe_harbor_rule() -> None:
    doc = (ROOT / "docs" / "deidentification.md").read_text()
    missing = [
        rule["path"]
        for rule in load_policy("safe-harbor").document["rules"]
        if f"`{rule['path']}`" not in doc
    ]
    assert missing == []
