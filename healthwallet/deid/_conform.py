"""The last pass over de-identified output: only FHIR R4 members, and ages Safe Harbor allows.

The policy decides which elements leave; a kept element can still hold members no rule looked
at. This pass walks the output with the FHIR R4 element model (built from the official JSON
schema by scripts/gen_fhir_model.py) and keeps, inside every element, only the members R4
defines for its type, holding values of the right primitive type (codes of required bindings
included). Codings lose `version` and codes that are not code-shaped; Quantities keep a unit
only when it is a UCUM code or a known display, and a system only when it is UCUM or a policy
terminology. Ages over 89, in any unit spelling, any age-typed element, any value under an
age code or an age question, become 90 or older; an age that with the resource's dates shows
a person now over 89 is removed. Required elements emptied by the policy are marked with the
data-absent-reason extension, so the output stays valid FHIR R4.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from healthwallet.deid._methods import DATA_ABSENT_REASON_URL, OLDEST_AGE_KEPT, REMOVE
from healthwallet.deid._units import UCUM, is_ucum, time_unit, unit_allowed

Member = tuple[str, bool, frozenset[str] | None, "re.Pattern[str] | None"]
Plan = tuple[int, str, bool, frozenset[str] | None, "re.Pattern[str] | None"]

QUANTITY_TYPES = frozenset({"Quantity", "Age", "Duration", "Count", "Distance"})
# Range members whose FHIR definition is an age range (onset[x], FamilyMemberHistory.age[x]...).
AGE_RANGE_MEMBERS = frozenset(
    {"ageRange", "onsetRange", "abatementRange", "deceasedRange", "performedRange", "age"}
)
# Codes whose value is a person's age (LOINC and SNOMED CT).
AGE_CODES = {
    "http://loinc.org": frozenset(
        {"30525-0", "21612-7", "29553-5", "21611-9", "63900-5", "46251-5", "35659-2", "8339-4"}
    ),
    "http://snomed.info/sct": frozenset({"397659008", "424144002", "445518008", "423493009"}),
}
AGE_CODE_SYSTEMS_OID = {
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "https://loinc.org": "http://loinc.org",
}
# A QuestionnaireResponse item asks for an age when its linkId names one as a word: age,
# patient-age, ageYears, patientAge, AGE_AT_VISIT (not page, stage, dosage, agent).
_AGE_LINK = re.compile(
    r"(?:^|[^A-Za-z])[Aa]ge(?:[^a-z]|$)|Age(?:[^a-z]|$)|(?:^|[^A-Za-z])AGE(?:[^A-Z]|$)"
)

# Code shapes: a code is one token; some terminologies have a known form.
_CODE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-/+*%^\[\]{}=']{0,63}\Z")
_SYSTEM_CODE = {
    "http://loinc.org": re.compile(r"(?:L[APGL])?\d{1,8}-\d\Z"),
    "http://snomed.info/sct": re.compile(r"\d{6,18}\Z"),
    "http://www.nlm.nih.gov/research/umls/rxnorm": re.compile(r"\d{1,9}\Z"),
    "http://hl7.org/fhir/sid/cvx": re.compile(r"\d{1,3}\Z"),
    "http://hl7.org/fhir/sid/icd-10-cm": re.compile(r"[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?\Z"),
    "http://hl7.org/fhir/sid/icd-10": re.compile(r"[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?\Z"),
    "http://hl7.org/fhir/sid/ndc": re.compile(r"[0-9]{4,5}-?[0-9]{3,4}(?:-?[0-9]{1,2})?\Z"),
    "http://www.ama-assn.org/go/cpt": re.compile(r"\d{4}[0-9A-Z]\Z"),
}
_MAX_INT = 2**31 - 1
_BASE64 = re.compile(r"(\s*[0-9a-zA-Z+/=]{4}\s*)+\Z")  # the schema's inline pattern
_DATE_KINDS = frozenset({"date", "dateTime", "instant"})
_INTEGER_KINDS = frozenset({"integer", "positiveInt", "unsignedInt"})


def age_90() -> dict[str, Any]:
    """A fresh `>= 90 years` Age/Quantity."""
    return {"value": 90, "comparator": ">=", "unit": "a", "system": UCUM, "code": "a"}


def _absent() -> dict[str, Any]:
    return {"extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "masked"}]}


# How the walk treats a member, decided once per (type, member) from the model.
_STRING, _CODE, _DATE, _OTHER, _COMPLEX, _RESOURCE = range(6)
_STRING_KINDS_SKIPPED = frozenset({"decimal", "boolean", "xhtml"})


class _Model:
    def __init__(self, document: dict[str, Any]) -> None:
        # String kinds and their patterns; xhtml (narrative) never leaves, and number and
        # boolean kinds are checked by JSON type, not by pattern.
        self.patterns: dict[str, re.Pattern[str]] = {
            name: re.compile(pattern)
            for name, (_kind, pattern) in document["primitives"].items()
            if pattern and name not in _INTEGER_KINDS and name not in _STRING_KINDS_SKIPPED
        }
        self.patterns.setdefault("base64Binary", _BASE64)
        self.types: dict[str, dict[str, Member]] = {}
        # type -> member -> (how, kind, is_list, codes, pattern)
        self.plans: dict[str, dict[str, Plan]] = {}
        for name, members in document["types"].items():
            self.types[name] = {}
            self.plans[name] = {}
            for member, spec in members.items():
                kind, is_list = spec[0], bool(spec[1])
                codes = frozenset(spec[2]) if spec[2] is not None else None
                self.types[name][member] = (kind, is_list, codes, None)
                self.plans[name][member] = (
                    self._how(kind, codes, document["types"]),
                    kind,
                    is_list,
                    codes,
                    self.patterns.get(kind),
                )
        self.required: dict[str, tuple[str, ...]] = {
            name: tuple(members) for name, members in document["required"].items()
        }

    @staticmethod
    def _how(kind: str, codes: frozenset[str] | None, types: dict[str, Any]) -> int:
        if kind == "ResourceList":
            return _RESOURCE
        if kind in types:
            return _COMPLEX
        if codes is not None or kind in _INTEGER_KINDS or kind in _STRING_KINDS_SKIPPED:
            return _OTHER
        if kind == "code":
            return _CODE
        if kind in _DATE_KINDS:
            return _DATE
        return _STRING


@cache
def model() -> _Model:
    """The FHIR R4 element model shipped with the package (loaded once)."""
    data = resources.files("healthwallet.deid").joinpath("data", "fhir-r4-model.json.gz")
    return _Model(json.loads(gzip.decompress(data.read_bytes())))


def _is_age_code(concept: Any) -> bool:
    if not isinstance(concept, dict):
        return False
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return False
    for coding in codings:
        if isinstance(coding, dict):
            system = coding.get("system")
            system = AGE_CODE_SYSTEMS_OID.get(system, system) if isinstance(system, str) else ""
            if coding.get("code") in AGE_CODES.get(system, ()):
                return True
    return False


def is_age_question(link_id: Any) -> bool:
    """Whether a QuestionnaireResponse item's linkId names an age question."""
    if not isinstance(link_id, str):
        return False
    return _AGE_LINK.search(link_id) is not None


def _below(source: list[Any], name: str) -> list[Any]:
    # The input nodes under member `name` of the input nodes `source` (lists flattened).
    found: list[Any] = []
    for node in source:
        if isinstance(node, dict):
            child = node.get(name)
            if isinstance(child, list):
                found.extend(child)
            elif child is not None:
                found.append(child)
    return found


class _Frame:
    """One resource: the ages kept in it and the earliest year among its dates."""

    __slots__ = ("ages", "first_year")

    def __init__(self) -> None:
        self.ages: list[tuple[dict[str, Any], str, float]] = []
        self.first_year: int | None = None


class Conformer:
    """Walks de-identified output with the FHIR R4 model (see the module docstring)."""

    def __init__(self, now_year: int, terminology: Callable[[str], bool] | None) -> None:
        self.model = model()
        self.types = self.model.types
        self.plans = self.model.plans
        self.required = self.model.required
        self.patterns = self.model.patterns
        self.now_year = now_year
        self._root: Any = None
        self._path: list[str] = []
        self.terminology = terminology

    def resource(self, resource: dict[str, Any], source: dict[str, Any]) -> Any:
        """The conforming copy of one de-identified resource; `source` is its input.

        Resources nested in it (contained, Bundle entries) were conformed on their own and
        are taken as they are. A required element is marked absent only when the input had it.
        """
        resource_type = resource["resourceType"]
        frame = _Frame()
        self._root, self._path = source, []
        out = self._complex(resource, resource_type, frame, False)
        if out is REMOVE:
            out = {}
        self._computed_ages(frame)
        result = {"resourceType": resource_type}
        result.update((key, value) for key, value in out.items() if key != "resourceType")
        return result

    # -- the walk -------------------------------------------------------------------------------

    def _complex(self, node: Any, type_name: str, frame: _Frame, age: bool) -> Any:
        if type(node) is not dict:
            return REMOVE
        if type_name in QUANTITY_TYPES:
            return self._quantity(node, age or type_name == "Age", frame)
        if type_name == "Range" and age:
            return self._age_range(node, frame)
        plans = self.plans.get(type_name)
        if plans is None:
            return REMOVE
        if type_name in ("Observation", "Observation_Component"):
            age = _is_age_code(node.get("code"))
        item_age = type_name == "QuestionnaireResponse_Item" and is_age_question(node.get("linkId"))
        path = self._path
        out: dict[str, Any] = {}
        for name, value in node.items():
            plan = plans.get(name)
            if plan is None:
                continue  # not an R4 member of this type: fhir_comments, unknown keys
            how, kind, is_list, codes, pattern = plan
            if how < _OTHER and not is_list:
                # The common case, inline: one string of a string kind.
                if type(value) is not str or pattern is None or pattern.match(value) is None:
                    continue
                if how == _CODE:
                    if _CODE_TOKEN.match(value) is None:
                        continue  # a free string in a coded field
                elif how == _DATE:
                    year = int(value[:4])
                    if frame.first_year is None or year < frame.first_year:
                        frame.first_year = year
                out[name] = value
                continue
            if how < _COMPLEX:
                if age and name in ("valueInteger", "valueDecimal"):
                    self._age_number(value, name, out, frame)
                elif is_list:
                    if type(value) is list:
                        items = [
                            r
                            for r in (self._primitive(v, kind, codes, frame) for v in value)
                            if r is not REMOVE
                        ]
                        if items:
                            out[name] = items
                else:
                    result = self._primitive(value, kind, codes, frame)
                    if result is not REMOVE:
                        out[name] = result
                continue
            if how == _RESOURCE:
                # Already de-identified and conformed by its own walk.
                if is_list and type(value) is list:
                    found = [v for v in value if type(v) is dict and "resourceType" in v]
                    if found:
                        out[name] = found
                elif not is_list and type(value) is dict and "resourceType" in value:
                    out[name] = value
                continue
            if item_age:
                member_age = name == "answer"
            elif kind == "Range":
                member_age = name in AGE_RANGE_MEMBERS or (age and name.startswith("value"))
            else:
                member_age = age and name.startswith("value")
            path.append(name)
            if is_list:
                if type(value) is list:
                    items = []
                    for item in value:
                        result = self._complex(item, kind, frame, member_age)
                        if result is not REMOVE:
                            items.append(result)
                    if items:
                        out[name] = items
            else:
                result = self._complex(value, kind, frame, member_age)
                if result is not REMOVE:
                    if (kind == "Age" or (kind in QUANTITY_TYPES and member_age)) and not (
                        result.get("comparator") == ">=" and result.get("value") == 90
                    ):
                        self._record(frame, out, name, result)
                    out[name] = result
            path.pop()
        if type_name == "Coding":
            return self._coding(out)
        if out and type_name in self.required:
            self._fill_required(out, type_name, self._source())
        return out if out else REMOVE

    def _source(self) -> list[Any]:
        # The input nodes at the current path (lists flattened): only needed, and only
        # computed, when a required element is missing.
        nodes: list[Any] = [self._root]
        for name in self._path:
            nodes = _below(nodes, name)
        return nodes

    def _primitive(self, value: Any, kind: str, codes: frozenset[str] | None, frame: _Frame) -> Any:
        if type(value) is str:
            if codes is not None:
                return value if value in codes else REMOVE
            pattern = self.patterns.get(kind)
            if pattern is None or pattern.match(value) is None:
                return REMOVE  # not a string kind (a number as text), or not of its form
            if kind == "code":
                return value if _CODE_TOKEN.match(value) else REMOVE  # a free string in a code
            if kind in _DATE_KINDS:
                year = int(value[:4])
                if frame.first_year is None or year < frame.first_year:
                    frame.first_year = year
            return value
        if kind == "boolean":
            return value if type(value) is bool else REMOVE
        if type(value) is int:
            if kind == "decimal":
                return value
            if kind not in _INTEGER_KINDS or abs(value) > _MAX_INT:
                return REMOVE
            if (kind == "positiveInt" and value < 1) or (kind == "unsignedInt" and value < 0):
                return REMOVE
            return value
        if kind == "decimal" and type(value) is float and math.isfinite(value):
            return value
        return REMOVE

    # -- typed elements ---------------------------------------------------------------------------

    def _coding(self, out: dict[str, Any]) -> Any:
        out.pop("version", None)
        out.pop("_version", None)
        system = out.get("system")
        code = out.get("code")
        if not isinstance(code, str):
            return REMOVE
        if isinstance(system, str):
            if self.terminology is not None and not self.terminology(system):
                return REMOVE
            shape = _SYSTEM_CODE.get(system)
            if shape is not None and shape.match(code) is None:
                return REMOVE
        return out

    def _years(self, node: dict[str, Any], age: bool) -> tuple[float, str] | None:
        unit = node.get("code") if node.get("system") == UCUM else None
        if not isinstance(unit, str):
            unit = node.get("unit")
        if isinstance(unit, str) and unit.strip():
            return time_unit(unit)
        return (1.0, "a") if age else None  # an age with no unit is read as years

    def _quantity(self, node: dict[str, Any], age: bool, frame: _Frame) -> Any:
        value = node.get("value")
        if type(value) is bool or not isinstance(value, int | float):
            return REMOVE
        if type(value) is float and not math.isfinite(value):
            return REMOVE
        time = self._years(node, age)
        if time is not None and value * time[0] > OLDEST_AGE_KEPT:
            return age_90()
        out: dict[str, Any] = {"value": value}
        comparator = node.get("comparator")
        if comparator in ("<", "<=", ">=", ">"):
            out["comparator"] = comparator
        unit = node.get("unit")
        if isinstance(unit, str) and unit_allowed(unit):
            out["unit"] = unit
        system, code = node.get("system"), node.get("code")
        if isinstance(system, str) and isinstance(code, str):
            if system == UCUM and is_ucum(code):
                out["system"], out["code"] = system, code
            elif (
                system != UCUM
                and self.terminology is not None
                and self.terminology(system)
                and _CODE_TOKEN.match(code)
            ):
                out["system"], out["code"] = system, code
        if time is not None and "unit" not in out and "code" not in out:
            # A time unit spelled freely ("years old", "yo"): written as its UCUM code.
            out["unit"], out["system"], out["code"] = time[1], UCUM, time[1]
        return out

    def _age_range(self, node: dict[str, Any], frame: _Frame) -> Any:
        out: dict[str, Any] = {}
        for key in ("low", "high"):
            part = node.get(key)
            if isinstance(part, dict):
                result = self._quantity(part, True, frame)
                if result is REMOVE:
                    continue
                if result.get("comparator") == ">=":
                    # 90 or more: a Range bound has no comparator, and any high bound says less.
                    return {"low": {k: v for k, v in result.items() if k != "comparator"}}
                out[key] = result
        for key, result in list(out.items()):
            self._record(frame, out, key, result)
        return out or REMOVE

    def _age_number(self, value: Any, name: str, out: dict[str, Any], frame: _Frame) -> None:
        # valueInteger / valueDecimal under an age code or an age question: years.
        if type(value) is bool or not isinstance(value, int | float):
            return
        if type(value) is float and not math.isfinite(value):
            return
        if value > OLDEST_AGE_KEPT:
            out["valueQuantity"] = age_90()
            return
        out[name] = value
        frame.ages.append((out, name, float(value)))

    def _record(self, frame: _Frame, holder: dict[str, Any], key: str, quantity: Any) -> None:
        if not isinstance(quantity, dict):
            return
        value = quantity.get("value")
        time = self._years(quantity, True)
        if isinstance(value, int | float) and time is not None:
            frame.ages.append((holder, key, value * time[0]))

    def _computed_ages(self, frame: _Frame) -> None:
        # An age at an event plus the years since its earliest kept date: the age today.
        if frame.first_year is None:
            return
        elapsed = max(0, self.now_year - frame.first_year)
        for holder, key, years in frame.ages:
            if years + elapsed > OLDEST_AGE_KEPT:
                holder.pop(key, None)

    def _fill_required(
        self, out: dict[str, Any], type_name: str, source: list[Any] | None, depth: int = 0
    ) -> None:
        # A required element the policy removed is marked absent (data-absent-reason = masked).
        # `source`: the input nodes here; None inside a placeholder (fill everything required).
        members = self.model.types.get(type_name, {})
        for name in self.model.required.get(type_name, ()):
            if name in out or depth > 3:
                continue
            if source is not None and not any(
                isinstance(node, dict) and name in node for node in source
            ):
                continue  # the input lacked it too: not ours to invent
            kind, is_list, _codes, _pattern = members[name]
            if kind not in self.model.types or kind == "ResourceList":
                continue
            placeholder = _absent()
            self._fill_required(placeholder, kind, None, depth + 1)
            out[name] = [placeholder] if is_list else placeholder
