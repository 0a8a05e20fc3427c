"""Flattened Parquet columns for a FHIR resource: who, quasi-identifiers, code, value, date."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from ..deid._kanon import AGE_BAND_URL
from ..deid._methods import AGE_GROUP_URL

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("resource_type", pa.string()),
        ("patient", pa.string()),
        ("status", pa.string()),
        ("gender", pa.string()),
        ("birth_year", pa.string()),
        ("age_band", pa.string()),
        ("zip3", pa.string()),
        ("state", pa.string()),
        ("country", pa.string()),
        ("code_system", pa.string()),
        ("code", pa.string()),
        ("code_display", pa.string()),
        ("value_number", pa.float64()),
        ("value_unit", pa.string()),
        ("value_code", pa.string()),
        ("value_string", pa.string()),
        ("value_low", pa.float64()),
        ("value_high", pa.float64()),
        ("date", pa.string()),
        ("resource", pa.string()),
    ]
)
"""One schema for every resource type's table (docs/format-share.md, "Parquet")."""

_PATIENT_LINKS = ("subject", "patient", "beneficiary", "individual")
_CODES = (
    "code",
    "vaccineCode",
    "medicationCodeableConcept",
    "type",
    "category",
    "modality",
    "class",
)
_DATES = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "onsetDateTime",
    "onsetPeriod",
    "performedDateTime",
    "performedPeriod",
    "occurrenceDateTime",
    "occurrencePeriod",
    "authoredOn",
    "authored",
    "recordedDate",
    "recorded",
    "issued",
    "started",
    "created",
    "period",
    "billablePeriod",
    "date",
    "dateAsserted",
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _coding(concept: Any) -> tuple[str | None, str | None, str | None]:
    if isinstance(concept, list):
        concept = concept[0] if concept else None
    if not isinstance(concept, dict):
        return None, None, None
    if "code" in concept and "coding" not in concept:  # a Coding itself
        return (
            _text(concept.get("system")),
            _text(concept.get("code")),
            _text(concept.get("display")),
        )
    codings = concept.get("coding")
    first = codings[0] if isinstance(codings, list) and codings else None
    if not isinstance(first, dict):
        return None, None, _text(concept.get("text"))
    display = _text(first.get("display")) or _text(concept.get("text"))
    return _text(first.get("system")), _text(first.get("code")), display


def _date(resource: dict[str, Any]) -> str | None:
    for name in _DATES:
        value = resource.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("start"), str):
            return str(value["start"])
    return None


def _value(resource: dict[str, Any], row: dict[str, Any]) -> None:
    for name, value in resource.items():
        if not name.startswith("value") or name == "value":
            continue
        if isinstance(value, dict) and "value" in value:  # Quantity, Age, Money...
            row["value_number"] = _number(value.get("value"))
            row["value_unit"] = _text(value.get("code")) or _text(value.get("unit"))
        elif isinstance(value, dict) and ("low" in value or "high" in value):
            row["value_low"] = _number((value.get("low") or {}).get("value"))
            row["value_high"] = _number((value.get("high") or {}).get("value"))
            low = value.get("low") or value.get("high") or {}
            row["value_unit"] = _text(low.get("code")) or _text(low.get("unit"))
        elif isinstance(value, dict):
            row["value_code"] = _coding(value)[1]
        elif isinstance(value, bool):
            row["value_string"] = "true" if value else "false"
        elif isinstance(value, int | float):
            row["value_number"] = _number(value)
        elif isinstance(value, str):
            row["value_string"] = value
        return


def _patient_columns(resource: dict[str, Any], row: dict[str, Any]) -> None:
    row["patient"] = f"Patient/{resource['id']}" if isinstance(resource.get("id"), str) else None
    row["gender"] = _text(resource.get("gender"))
    birth = _text(resource.get("birthDate"))
    row["birth_year"] = birth[:4] if birth else None
    masked = resource.get("_birthDate")
    for ext in masked.get("extension") or [] if isinstance(masked, dict) else []:
        if isinstance(ext, dict) and ext.get("url") == AGE_GROUP_URL:
            row["birth_year"] = _text(ext.get("valueString"))
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == AGE_BAND_URL:
            band = ext.get("valueRange") or {}
            low = _number((band.get("low") or {}).get("value"))
            high = _number((band.get("high") or {}).get("value"))
            if low is not None:
                row["age_band"] = f"{low:g}-{high:g}" if high is not None else f"{low:g}+"
    addresses = [a for a in resource.get("address") or [] if isinstance(a, dict)]
    for column, member in (("zip3", "postalCode"), ("state", "state"), ("country", "country")):
        values = sorted({a[member] for a in addresses if isinstance(a.get(member), str)})
        row[column] = ";".join(values) if values else None


def columns(resource: dict[str, Any], canonical: str) -> dict[str, Any]:
    """The resource's row in its type's Parquet table."""
    row: dict[str, Any] = dict.fromkeys(SCHEMA.names)
    kind = str(resource.get("resourceType"))
    row.update(id=_text(resource.get("id")), resource_type=kind, resource=canonical)
    row["status"] = _text(resource.get("status"))
    if kind == "Patient":
        _patient_columns(resource, row)
    else:
        for name in _PATIENT_LINKS:
            link = resource.get(name)
            if isinstance(link, dict) and isinstance(link.get("reference"), str):
                row["patient"] = link["reference"]
                break
    for name in _CODES:
        if name in resource:
            row["code_system"], row["code"], row["code_display"] = _coding(resource[name])
            if row["code"] is not None or row["code_display"] is not None:
                break
    _value(resource, row)
    row["date"] = _date(resource)
    return row
