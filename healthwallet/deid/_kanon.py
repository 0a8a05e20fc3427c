"""k-anonymity over many patients' de-identified records, enforced at ingest.

A patient's quasi-identifiers are *facts* read from everything that narrows them: every
Patient (top level, in a Bundle, ``contained``), a RelatedPerson's address, age observations
and ``onsetAge``/``abatementAge``, and every other kept Patient element. A generalization
ladder (full-domain recoding, the same level for everyone: birth year dropped, wider age
bands, ZIP3, other Patient elements, state, country dropped) rewrites resources with
:func:`generalize_resource`; facts read back from the rewritten resources are what k is
computed on. Grouping runs in DuckDB (:mod:`healthwallet.deid._kgroup`). Sweeney 2002;
Samarati 2001.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from healthwallet.deid._methods import (
    AGE_90_PLUS,
    AGE_GROUP_URL,
    OLDEST_AGE_KEPT,
    UCUM,
    birth_year_masked,
    zip3,
)
from healthwallet.deid._paths import NAME, parse_path
from healthwallet.deid._policy import canonical_json, restricted_zip3
from healthwallet.errors import BadInputError, UsageError

AGE_BAND_URL = "urn:healthwallet:fhir:deid:age-band"
"""Extension on Patient carrying the age band (a Range in years) when the birth year is dropped."""

DEFAULT_QUASI: tuple[str, ...] = (
    "age_band",
    "gender",
    "zip3",
    "birth_year",
    "state",
    "country",
    "age",
)
BUILTIN_QUASI = frozenset(DEFAULT_QUASI)

AGE_CODES = frozenset({"30525-0", "21612-7", "29553-5", "63900-5", "46251-5", "21611-9"})
"""LOINC codes whose value is the patient's age."""
_AGE_ELEMENTS = {"Condition": ("onsetAge", "abatementAge")}
_YEAR_UNITS = {"a", "a_j", "a_g", "ann", "yr", "yrs", "y", "year", "years", "{years}", ""}
_UNIT_YEARS = {"mo": 1 / 12, "wk": 7 / 365.25, "d": 1 / 365.25, "h": 0.0, "min": 0.0}
_PATIENT_FIXED = frozenset({"resourceType", "id", "meta", "contained", "link"})
_PATIENT_HANDLED = frozenset({"gender", "birthDate", "_birthDate", "address", "extension"})


@dataclass(frozen=True)
class Level:
    """One rung of the ladder: what is kept, and how wide age bands are."""

    birth_year: bool
    band: int
    zip_kept: bool
    extras: bool
    state: bool
    country: bool

    def describe(self) -> dict[str, Any]:
        """The level for the report."""
        return {
            "birth_year": "year" if self.birth_year else "removed",
            "age_band_years": self.band,
            "zip3": "kept" if self.zip_kept else "removed",
            "other_patient_elements": "kept" if self.extras else "removed",
            "state": "kept" if self.state else "removed",
            "country": "kept" if self.country else "removed",
        }


LADDER = (
    Level(True, 5, True, True, True, True),
    Level(False, 5, True, True, True, True),
    Level(False, 10, True, True, True, True),
    Level(False, 10, False, True, True, True),
    Level(False, 10, False, False, True, True),
    Level(False, 20, False, False, True, True),
    Level(False, 20, False, False, False, True),
    Level(False, 20, False, False, False, False),
)


class Fact(NamedTuple):
    """One narrowing value: its kind, its text as written, a number to band (or None)."""

    kind: str
    text: str
    num: int | None = None


class KAnonResult(NamedTuple):
    """The patients kept (generalized), the input indices suppressed, k achieved, a report."""

    kept: list[list[dict[str, Any]]]
    suppressed: list[int]
    k_achieved: int
    report: dict[str, Any]


@dataclass(frozen=True)
class Quasi:
    """The checked quasi-identifier selection: built-in names and pinned Patient elements."""

    names: tuple[str, ...]
    pinned: frozenset[str]

    def has(self, name: str) -> bool:
        """True when the built-in quasi-identifier ``name`` is selected (so it is kept)."""
        return name in self.names


def check_quasi(quasi: Sequence[str] | None) -> Quasi:
    """Check a quasi-identifier list (built-in names or plain paths into Patient)."""
    names = list(DEFAULT_QUASI if quasi is None else quasi)
    if not names:
        raise UsageError("k-anonymity needs at least one quasi-identifier")
    if len(set(names)) != len(names):
        raise UsageError("quasi-identifiers must not repeat")
    pinned: set[str] = set()
    for name in names:
        if name in BUILTIN_QUASI:
            continue
        try:
            path = parse_path(name)
        except BadInputError as exc:
            raise UsageError(
                f"unknown quasi-identifier {name!r}",
                hint=f"use {', '.join(DEFAULT_QUASI)} or a Patient path like Patient.maritalStatus",
            ) from exc
        if path.resource_type != "Patient" or not path.steps:
            raise UsageError(f"quasi-identifier {name!r} must be a path into Patient")
        if any(kind != NAME for kind, _ in path.steps):
            raise UsageError(f"quasi-identifier {name!r}: only plain element names are allowed")
        pinned.add(path.steps[0][1])
    return Quasi(tuple(names), frozenset(pinned))


# -- reading facts --------------------------------------------------------------------------------


def _nested(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The resource, its Bundle entries' resources and contained resources, recursively."""
    stack = [resource]
    while stack:
        item = stack.pop()
        yield item
        for inner in item.get("contained") or []:
            if isinstance(inner, dict):
                stack.append(inner)
        if item.get("resourceType") == "Bundle":
            for entry in item.get("entry") or []:
                inner = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(inner, dict):
                    stack.append(inner)


def _has_ext(holder: Any, url: str) -> dict[str, Any] | None:
    if not isinstance(holder, dict):
        return None
    for ext in holder.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext
    return None


def _range_label(value_range: Any) -> str | None:
    if not isinstance(value_range, dict):
        return None
    low = (value_range.get("low") or {}).get("value")
    high = (value_range.get("high") or {}).get("value")
    if isinstance(low, int | float) and high is None:
        return AGE_90_PLUS if low >= 90 else f"{low:g}-"
    if isinstance(high, int | float):
        return f"{low if isinstance(low, int | float) else 0:g}-{high:g}"
    return None


def _birth_fact(patient: dict[str, Any], ref_year: int) -> Fact | None:
    ext = _has_ext(patient.get("_birthDate"), AGE_GROUP_URL)
    if ext is not None and ext.get("valueString") == AGE_90_PLUS:
        return Fact("birth", AGE_90_PLUS)
    birth = patient.get("birthDate")
    if not (isinstance(birth, str) and len(birth) >= 4 and birth[:4].isdigit()):
        return None
    year = int(birth[:4])
    if ref_year - year > OLDEST_AGE_KEPT:
        return Fact("birth", AGE_90_PLUS)
    return Fact("birth", f"{year:04d}", year)


def _address_facts(resource: dict[str, Any], restricted: frozenset[str]) -> Iterator[Fact]:
    for address in resource.get("address") or []:
        if not isinstance(address, dict):
            continue
        code = address.get("postalCode")
        generalized = zip3(code, restricted) if isinstance(code, str) else None
        if generalized is not None:
            yield Fact("zip", generalized)
        for kind in ("state", "country"):
            value = address.get(kind)
            if isinstance(value, str) and value.strip():
                yield Fact(kind, value.strip().upper())


def _years(quantity: Any) -> int | str | None:
    """A Quantity/Age in whole years, a band label for a Range, or None when it is no age."""
    if isinstance(quantity, bool):
        return None
    if isinstance(quantity, int | float):
        return int(quantity) if math.isfinite(quantity) and quantity >= 0 else None
    if not isinstance(quantity, dict):
        return None
    if "low" in quantity or "high" in quantity:
        return _range_label(quantity)
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip().lower()
    factor = 1.0 if unit in _YEAR_UNITS or "year" in unit else _UNIT_YEARS.get(unit)
    return None if factor is None or value < 0 else int(value * factor)


def _is_age_observation(resource: dict[str, Any]) -> bool:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return any(
        isinstance(c, dict) and c.get("code") in AGE_CODES
        for c in (codings if isinstance(codings, list) else [])
    )


def _age_slots(resource: dict[str, Any]) -> list[str]:
    """The elements of ``resource`` that hold the patient's age."""
    kind = resource.get("resourceType")
    if kind == "Observation" and _is_age_observation(resource):
        return [n for n in ("valueQuantity", "valueInteger", "valueDecimal", "valueRange")]
    names = _AGE_ELEMENTS.get(str(kind), ())
    return [n for name in names for n in (name, name.replace("Age", "Range"))]


def _age_fact(value: int | str) -> Fact:
    if isinstance(value, int):
        return (
            Fact("age", AGE_90_PLUS) if value > OLDEST_AGE_KEPT else Fact("age", str(value), value)
        )
    return Fact("age", value)


def resource_facts(
    resource: dict[str, Any], ref_year: int, restricted: frozenset[str]
) -> Iterator[Fact]:
    """Every narrowing fact ``resource`` holds (its Bundle entries and contained ones too)."""
    for item in _nested(resource):
        kind = item.get("resourceType")
        if kind == "Patient":
            yield from _patient_facts(item, ref_year, restricted)
        elif kind == "RelatedPerson":
            yield from _address_facts(item, restricted)
        for slot in _age_slots(item):
            if slot in item:
                value = _years(item[slot])
                if value is not None:
                    yield _age_fact(value)


def _patient_facts(
    patient: dict[str, Any], ref_year: int, restricted: frozenset[str]
) -> Iterator[Fact]:
    gender = patient.get("gender")
    if isinstance(gender, str):
        yield Fact("gender", gender)
    birth = _birth_fact(patient, ref_year)
    if birth is not None:
        yield birth
    band = _has_ext(patient, AGE_BAND_URL)
    if band is not None:
        label = _range_label(band.get("valueRange"))
        if label is not None:
            yield Fact("band", label)
    yield from _address_facts(patient, restricted)
    for name, value in sorted(patient.items()):
        if name in _PATIENT_FIXED or name in _PATIENT_HANDLED:
            continue
        yield Fact(f"p.{name}", canonical_json(value).decode())
    others = [
        ext
        for ext in patient.get("extension") or []
        if not (isinstance(ext, dict) and ext.get("url") == AGE_BAND_URL)
    ]
    if others:
        yield Fact("p.extension", canonical_json(others).decode())


def quasi_identifiers(
    resources: list[dict[str, Any]],
    quasi: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, list[str]]:
    """One patient's quasi-identifier facts as written (what k is computed on): kind -> values."""
    check_quasi(quasi)
    ref_year = (now or datetime.now(UTC)).year
    restricted = frozenset(restricted_zip3())
    found: dict[str, set[str]] = {}
    for resource in resources:
        for fact in resource_facts(resource, ref_year, restricted):
            found.setdefault(fact.kind, set()).add(fact.text)
    return {kind: sorted(values) for kind, values in sorted(found.items())}


# -- writing generalized resources ----------------------------------------------------------------


def age_band(age: int, band: int) -> str:
    """The band label for an age in whole years ("90+" above 89)."""
    if age > OLDEST_AGE_KEPT:
        return AGE_90_PLUS
    age = max(0, age)
    low = age // band * band
    return f"{low}-{min(low + band - 1, OLDEST_AGE_KEPT)}"


def _years_quantity(value: int) -> dict[str, Any]:
    return {"value": value, "unit": "a", "system": UCUM, "code": "a"}


def band_range(label: str) -> dict[str, Any]:
    """A FHIR Range in years for a band label."""
    if label == AGE_90_PLUS:
        return {"low": _years_quantity(90)}
    low, _, high = label.partition("-")
    out: dict[str, Any] = {"low": _years_quantity(int(float(low)))}
    if high:
        out["high"] = _years_quantity(int(float(high)))
    return out


@dataclass(frozen=True)
class Rewrite:
    """How to rewrite resources at one ladder level."""

    quasi: Quasi
    level: Level
    ref_year: int
    restricted: frozenset[str]


def _address(address: Any, how: Rewrite) -> dict[str, Any] | None:
    if not isinstance(address, dict):
        return None
    out: dict[str, Any] = {}
    code = address.get("postalCode")
    if how.quasi.has("zip3") and how.level.zip_kept and isinstance(code, str):
        generalized = zip3(code, how.restricted)
        if generalized is not None:
            out["postalCode"] = generalized
    for kind, kept in (("state", how.level.state), ("country", how.level.country)):
        value = address.get(kind)
        if how.quasi.has(kind) and kept and isinstance(value, str) and value.strip():
            out[kind] = value.strip().upper()
    return out or None


def _addresses(resource: dict[str, Any], how: Rewrite) -> None:
    addresses = [a for a in map(lambda x: _address(x, how), resource.pop("address", []) or []) if a]
    if addresses:
        resource["address"] = addresses


def _rewrite_patient(patient: dict[str, Any], how: Rewrite) -> dict[str, Any]:
    out = {k: v for k, v in patient.items() if k in _PATIENT_FIXED}
    extras_kept = how.level.extras
    for name, value in patient.items():
        if name in _PATIENT_FIXED or name in _PATIENT_HANDLED:
            continue
        if extras_kept or name in how.quasi.pinned:
            out[name] = value
    if how.quasi.has("gender") and isinstance(patient.get("gender"), str):
        out["gender"] = patient["gender"]
    extensions = [
        ext
        for ext in patient.get("extension") or []
        if not (isinstance(ext, dict) and ext.get("url") == AGE_BAND_URL)
    ]
    if not (extras_kept or "extension" in how.quasi.pinned):
        extensions = []
    birth = _birth_fact(patient, how.ref_year)
    year_kept = how.quasi.has("birth_year") and how.level.birth_year
    if birth is not None and year_kept:
        if birth.num is not None:
            out["birthDate"] = birth.text
        else:
            out["_birthDate"] = birth_year_masked().extension
    elif how.quasi.has("age_band"):
        label: str | None = None
        if birth is not None:
            label = (
                age_band(how.ref_year - birth.num, how.level.band)
                if birth.num is not None
                else AGE_90_PLUS
            )
        else:
            old = _has_ext(patient, AGE_BAND_URL)
            label = _range_label(old.get("valueRange")) if old is not None else None
        if label is not None:
            extensions.append({"url": AGE_BAND_URL, "valueRange": band_range(label)})
    if extensions:
        out["extension"] = extensions
    if "address" in patient:
        out["address"] = patient["address"]
        _addresses(out, how)
    return out


def _rewrite_ages(resource: dict[str, Any], how: Rewrite) -> None:
    for slot in _age_slots(resource):
        if slot not in resource:
            continue
        value = _years(resource.pop(slot))
        if value is None or not how.quasi.has("age"):
            continue
        label = age_band(value, how.level.band) if isinstance(value, int) else value
        base = slot[: -len("Quantity")] if slot.endswith("Quantity") else slot
        for suffix in ("Integer", "Decimal", "Range", "Age"):
            base = base[: -len(suffix)] if base.endswith(suffix) else base
        resource[base + "Range"] = band_range(label)


def generalize_resource(resource: dict[str, Any], how: Rewrite) -> dict[str, Any]:
    """``resource`` rewritten at a ladder level: every narrowing field generalized or removed."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        out = _rewrite_patient(resource, how)
    else:
        out = dict(resource)
        if kind == "RelatedPerson":
            out.pop("birthDate", None)
            out.pop("_birthDate", None)
            if "address" in out:
                _addresses(out, how)
        _rewrite_ages(out, how)
    if isinstance(out.get("contained"), list):
        out["contained"] = [
            generalize_resource(c, how) if isinstance(c, dict) else c for c in out["contained"]
        ]
    if kind == "Bundle" and isinstance(out.get("entry"), list):
        entries = []
        for entry in out["entry"]:
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict):
                entry = {**entry, "resource": generalize_resource(inner, how)}
            entries.append(entry)
        out["entry"] = entries
    return out
