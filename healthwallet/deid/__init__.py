"""De-identification of FHIR R4 JSON for research sharing.

Rules are data: an ordered list of (path, method) pairs. Methods: keep, redact, dateshift,
generalize, cryptohash, substitute. Anything no rule keeps is removed (default deny). The
built-in `safe-harbor` policy covers the 18 identifiers of 45 CFR 164.514(b)(2).
k-anonymity over many patients is enforced at ingest by `k_anonymize`.
See docs/deidentification.md.
"""

from healthwallet.deid._engine import Change, DeidResult, deidentify, field_path
from healthwallet.deid._fhir import R4_RESOURCE_TYPES, parse_fhir_json
from healthwallet.deid._kanon import DEFAULT_QUASI, KAnonResult, quasi_identifiers
from healthwallet.deid._keys import PseudonymKeys
from healthwallet.deid._kgroup import k_anonymize
from healthwallet.deid._methods import AGE_GROUP_URL, DEID_BASE, pseudonymize, zip3
from healthwallet.deid._policy import (
    BUILTIN_POLICIES,
    POLICY_FORMAT,
    Policy,
    canonical_json,
    load_policy,
    restricted_zip3,
)

__all__ = [
    "AGE_GROUP_URL",
    "BUILTIN_POLICIES",
    "DEFAULT_QUASI",
    "DEID_BASE",
    "POLICY_FORMAT",
    "R4_RESOURCE_TYPES",
    "Change",
    "DeidResult",
    "KAnonResult",
    "Policy",
    "PseudonymKeys",
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
