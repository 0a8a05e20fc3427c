"""k-anonymity over many patients' de-identified records, enforced at ingest.

Each patient's quasi-identifiers are read from their Patient resource. Patients are grouped
into equivalence classes (equal quasi-identifiers); a class smaller than k is suppressed.
Before suppressing, a generalization ladder is tried (full-domain recoding, the same level
for everyone): birth year dropped, wider age bands, ZIP3 dropped. The lowest level that
keeps suppression within `max_suppression` wins (Sweeney 2002; Samarati 2001).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from healthwallet.deid._paths import NAME, Path, parse_path
from healthwallet.deid._policy import restricted_zip3
from healthwallet.errors import BadInputError, UsageError

AGE_BAND_URL = "urn:healthwallet:fhir:deid:age-band"
"""Extension on Patient carrying the age band (a Range in years) when the birth year is dropped."""

DEFAULT_QUASI: tuple[str, ...] = ("age_band", "gender", "zip3", "birth_year")
BUILTIN_QUASI = frozenset(DEFAULT_QUASI)
UNKNOWN = "*"

_YEAR = re.compile(r"(\d{4})")


@dataclass(frozen=True)
class _Level:
    birth_year: bool
    band: int
    zip_kept: bool

    def describe(self) -> dict[str, Any]:
        return {
            "birth_year": "year" if self.birth_year else "removed",
            "age_band_years": self.band,
            "zip3": "kept" if self.zip_kept else "removed",
        }


LADDER = (
    _Level(birth_year=True, band=5, zip_kept=True),
    _Level(birth_year=False, band=5, zip_kept=True),
    _Level(birth_year=False, band=10, zip_kept=True),
    _Level(birth_year=False, band=10, zip_kept=False),
    _Level(birth_year=False, band=20, zip_kept=False),
)


class KAnonResult(NamedTuple):
    """The patients kept (generalized), the input indices suppressed, k achieved, a report."""

    kept: list[list[dict[str, Any]]]
    suppressed: list[int]
    k_achieved: int
    report: dict[str, Any]


@dataclass(frozen=True)
class _Profile:
    gender: str
    birth_year: int | str  # a year, "90+" or "*"
    zips: tuple[str, ...]
    custom: tuple[Any, ...]
    band: str | None = None  # from an age-band extension left by an earlier k_anonymize


def _patient_resources(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for resource in resources:
        if resource.get("resourceType") == "Patient":
            found.append(resource)
        elif resource.get("resourceType") == "Bundle":
            for entry in resource.get("entry") or []:
                inner = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(inner, dict) and inner.get("resourceType") == "Patient":
                    found.append(inner)
    return found


def _is_90_plus(patient: dict[str, Any]) -> bool:
    marker = patient.get("_birthDate")
    if not isinstance(marker, dict):
        return False
    for ext in marker.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == AGE_GROUP_URL:
            return ext.get("valueString") == AGE_90_PLUS
    return False


def _birth_year(patient: dict[str, Any], ref_year: int) -> int | str:
    if _is_90_plus(patient):
        return AGE_90_PLUS
    birth = patient.get("birthDate")
    match = _YEAR.match(birth) if isinstance(birth, str) else None
    if match is None:
        return UNKNOWN
    year = int(match[1])
    return AGE_90_PLUS if ref_year - year > OLDEST_AGE_KEPT else year


def _band_label(patient: dict[str, Any]) -> str | None:
    for ext in patient.get("extension") or []:
        if not (isinstance(ext, dict) and ext.get("url") == AGE_BAND_URL):
            continue
        value_range = ext.get("valueRange")
        if not isinstance(value_range, dict):
            return None
        low = (value_range.get("low") or {}).get("value")
        high = (value_range.get("high") or {}).get("value")
        if isinstance(low, int) and high is None:
            return AGE_90_PLUS if low >= 90 else None
        if isinstance(low, int) and isinstance(high, int):
            return f"{low}-{high}"
    return None


def _zips(patient: dict[str, Any], restricted: frozenset[str]) -> tuple[str, ...]:
    found = set()
    for address in patient.get("address") or []:
        code = address.get("postalCode") if isinstance(address, dict) else None
        if isinstance(code, str):
            found.add(zip3(code, restricted) or UNKNOWN)
    return tuple(sorted(found)) or (UNKNOWN,)


def _custom_value(patient: dict[str, Any], path: Path) -> Any:
    nodes: list[Any] = [patient]
    for _, name in path.steps:
        nxt: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and name in node:
                value = node[name]
                nxt.extend(value if isinstance(value, list) else [value])
        nodes = nxt
    values = sorted({str(v) for v in nodes if isinstance(v, str | int | float | bool)})
    return tuple(values) if values else UNKNOWN


def _profile(
    resources: list[dict[str, Any]],
    ref_year: int,
    restricted: frozenset[str],
    custom: list[Path],
) -> _Profile:
    patients = _patient_resources(resources)
    if not patients:
        return _Profile(UNKNOWN, UNKNOWN, (UNKNOWN,), tuple(UNKNOWN for _ in custom))
    patient = patients[0]
    gender = patient.get("gender")
    return _Profile(
        gender=gender if isinstance(gender, str) else UNKNOWN,
        birth_year=_birth_year(patient, ref_year),
        zips=_zips(patient, restricted),
        custom=tuple(_custom_value(patient, path) for path in custom),
        band=_band_label(patient),
    )


def _age_band(birth_year: int | str, ref_year: int, band: int) -> str:
    if not isinstance(birth_year, int):
        return birth_year  # "90+" or "*"
    age = max(0, ref_year - birth_year)
    if age > OLDEST_AGE_KEPT:
        return AGE_90_PLUS
    low = age // band * band
    return f"{low}-{min(low + band - 1, OLDEST_AGE_KEPT)}"


def _key(profile: _Profile, quasi: Sequence[str], level: _Level, ref_year: int) -> tuple[Any, ...]:
    key: list[Any] = []
    custom = iter(profile.custom)
    for name in quasi:
        if name == "gender":
            key.append(profile.gender)
        elif name == "birth_year":
            key.append(profile.birth_year if level.birth_year else UNKNOWN)
        elif name == "age_band":
            if profile.birth_year == UNKNOWN and profile.band is not None:
                key.append(profile.band)
            else:
                key.append(_age_band(profile.birth_year, ref_year, level.band))
        elif name == "zip3":
            key.append(profile.zips if level.zip_kept else UNKNOWN)
        else:
            key.append(next(custom))
    return tuple(key)


def _classes(keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[int]]:
    classes: dict[tuple[Any, ...], list[int]] = {}
    for index, key in enumerate(keys):
        classes.setdefault(key, []).append(index)
    return classes


def _band_extension(label: str) -> dict[str, Any]:
    def years(value: int) -> dict[str, Any]:
        return {"value": value, "unit": "a", "system": UCUM, "code": "a"}

    if label == AGE_90_PLUS:
        value_range: dict[str, Any] = {"low": years(90)}
    else:
        low, high = (int(part) for part in label.split("-"))
        value_range = {"low": years(low), "high": years(high)}
    return {"url": AGE_BAND_URL, "valueRange": value_range}


def _generalize_patient(
    patient: dict[str, Any],
    profile: _Profile,
    quasi: Sequence[str],
    level: _Level,
    ref_year: int,
    restricted: frozenset[str],
) -> dict[str, Any]:
    out = dict(patient)
    year_in_key = "birth_year" in quasi and level.birth_year
    if "birth_year" in quasi or "age_band" in quasi:
        out.pop("birthDate", None)
        out.pop("_birthDate", None)
        if year_in_key and isinstance(profile.birth_year, int):
            out["birthDate"] = f"{profile.birth_year:04d}"
        elif profile.birth_year == AGE_90_PLUS and year_in_key:
            out["_birthDate"] = birth_year_masked().extension
        if "age_band" in quasi and not year_in_key and profile.birth_year != UNKNOWN:
            label = _age_band(profile.birth_year, ref_year, level.band)
            others = [
                ext
                for ext in out.get("extension") or []
                if not (isinstance(ext, dict) and ext.get("url") == AGE_BAND_URL)
            ]
            out["extension"] = [*others, _band_extension(label)]
    if "zip3" in quasi and isinstance(out.get("address"), list):
        addresses = []
        for address in out["address"]:
            if not isinstance(address, dict):
                continue
            address = dict(address)
            code = address.pop("postalCode", None)
            if level.zip_kept and isinstance(code, str):
                generalized = zip3(code, restricted)
                address["postalCode"] = generalized if generalized is not None else UNKNOWN
            if address:
                addresses.append(address)
        if addresses:
            out["address"] = addresses
        else:
            out.pop("address")
    return out


def _rewrite(
    resources: list[dict[str, Any]],
    profile: _Profile,
    quasi: Sequence[str],
    level: _Level,
    ref_year: int,
    restricted: frozenset[str],
) -> list[dict[str, Any]]:
    def fix(resource: dict[str, Any]) -> dict[str, Any]:
        return _generalize_patient(resource, profile, quasi, level, ref_year, restricted)

    out = []
    for resource in resources:
        if resource.get("resourceType") == "Patient":
            out.append(fix(resource))
        elif resource.get("resourceType") == "Bundle" and isinstance(resource.get("entry"), list):
            bundle = dict(resource)
            entries = []
            for entry in resource["entry"]:
                inner = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(inner, dict) and inner.get("resourceType") == "Patient":
                    entry = {**entry, "resource": fix(inner)}
                entries.append(entry)
            bundle["entry"] = entries
            out.append(bundle)
        else:
            out.append(resource)
    return out


def _check_quasi(quasi: Sequence[str] | None) -> tuple[list[str], list[Path]]:
    names = list(DEFAULT_QUASI if quasi is None else quasi)
    if not names:
        raise UsageError("k-anonymity needs at least one quasi-identifier")
    if len(set(names)) != len(names):
        raise UsageError("quasi-identifiers must not repeat")
    custom: list[Path] = []
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
        if any(kind != NAME for kind, _ in path.steps):  # plain names only: read directly
            raise UsageError(f"quasi-identifier {name!r}: only plain element names are allowed")
        custom.append(path)
    return names, custom


def quasi_identifiers(
    resources: list[dict[str, Any]],
    quasi: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One patient's quasi-identifier values as k_anonymize reads them (no generalization)."""
    names, custom = _check_quasi(quasi)
    ref_year = (now or datetime.now(UTC)).year
    profile = _profile(resources, ref_year, frozenset(restricted_zip3()), custom)
    key = _key(profile, names, LADDER[0], ref_year)
    return dict(zip(names, key, strict=True))


def k_anonymize(
    patients: list[list[dict[str, Any]]],
    quasi: Sequence[str] | None = None,
    k: int = 5,
    *,
    now: datetime | None = None,
    generalize: bool = True,
    max_suppression: float = 0.05,
) -> KAnonResult:
    """Keep only patients whose quasi-identifiers are shared by at least k patients."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError("k must be a positive integer")
    if not 0 <= max_suppression <= 1:
        raise UsageError("max_suppression must be between 0 and 1")
    if not isinstance(patients, list) or not all(
        isinstance(records, list) and all(isinstance(r, dict) for r in records)
        for records in patients
    ):
        raise BadInputError("k_anonymize takes a list of patients, each a list of FHIR resources")
    names, custom = _check_quasi(quasi)
    ref_year = (now or datetime.now(UTC)).year
    restricted = frozenset(restricted_zip3())
    profiles = [_profile(records, ref_year, restricted, custom) for records in patients]
    total = len(patients)
    ladder = LADDER if generalize else LADDER[:1]

    tried = []
    chosen: tuple[int, dict[tuple[Any, ...], list[int]], int] | None = None
    best: tuple[int, dict[tuple[Any, ...], list[int]], int] | None = None
    for number, level in enumerate(ladder):
        classes = _classes([_key(p, names, level, ref_year) for p in profiles])
        small = sum(len(members) for members in classes.values() if len(members) < k)
        tried.append({"level": number, **level.describe(), "suppressed": small})
        if best is None or small < best[2]:
            best = (number, classes, small)
        if small <= max_suppression * total:
            chosen = (number, classes, small)
            break
    assert best is not None  # the ladder is never empty
    number, classes, _ = chosen if chosen is not None else best
    level = ladder[number]

    suppressed: list[int] = []
    small_classes = 0
    kept_sizes: list[int] = []
    for members in classes.values():
        if len(members) < k:
            suppressed.extend(members)
            small_classes += 1
        else:
            kept_sizes.append(len(members))
    suppressed.sort()
    dropped = set(suppressed)
    kept = [
        _rewrite(patients[i], profiles[i], names, level, ref_year, restricted)
        for i in range(total)
        if i not in dropped
    ]
    k_achieved = min(kept_sizes) if kept_sizes else 0
    report: dict[str, Any] = {
        "k": k,
        "k_achieved": k_achieved,
        "quasi_identifiers": names,
        "patients": total,
        "kept": len(kept),
        "suppressed": len(suppressed),
        "equivalence_classes": len(kept_sizes),
        "generalization": {"level": number, **level.describe()},
        "levels_tried": tried,
        "suppression_reasons": (
            [
                {
                    "reason": f"equivalence class smaller than k={k}",
                    "classes": small_classes,
                    "patients": len(suppressed),
                }
            ]
            if suppressed
            else []
        ),
        "max_suppression": max_suppression,
        "within_max_suppression": chosen is not None,
    }
    return KAnonResult(kept, suppressed, k_achieved, report)
