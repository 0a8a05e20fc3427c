"""What a FHIR record is (types, clinical date, title) and a readable line for each resource."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_TITLE_MAX = 80
# Where each resource type keeps its clinical date, most specific first (FHIR R4 element names).
_DATE_MEMBERS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "occurrenceDateTime",
    "occurrencePeriod",
    "performedDateTime",
    "performedPeriod",
    "onsetDateTime",
    "onsetPeriod",
    "recordedDate",
    "authoredOn",
    "issued",
    "started",
    "created",
    "date",
    "period",
    "birthDate",
    "dateAsserted",
    "whenHandedOver",
    "billablePeriod",
)


@dataclass(frozen=True)
class Synopsis:
    """What a FHIR record holds: resource counts, its clinical date(s) and a title."""

    resource_counts: dict[str, int] = field(default_factory=dict)
    clinical_date: str = ""  # "2026-03-01", or "2019-05-02 – 2026-03-01" for a Bundle
    title: str = ""  # the code's text or display of a single resource

    def to_json(self) -> dict[str, Any]:
        """The members stored with a record (sealed, like all its metadata)."""
        return {
            "resource_counts": self.resource_counts,
            "clinical_date": self.clinical_date,
            "title": self.title,
        }


def _text(value: object) -> str:
    """A one-line, bounded rendering of a string found in a record."""
    if not isinstance(value, str):
        return ""
    line = " ".join(value.split())
    return line if len(line) <= _TITLE_MAX else line[: _TITLE_MAX - 1] + "…"


def _concept(value: object) -> str:
    """The text of a CodeableConcept or Coding: its text, else the first display, else a code."""
    if not isinstance(value, Mapping):
        return ""
    if _text(value.get("text")):
        return _text(value.get("text"))
    codings = value.get("coding")
    codings = codings if isinstance(codings, list) else [value]
    for coding in codings:
        if isinstance(coding, Mapping) and _text(coding.get("display")):
            return _text(coding.get("display"))
    for coding in codings:
        if isinstance(coding, Mapping) and _text(coding.get("code")):
            return _text(coding.get("code"))
    return ""


def _date(resource: Mapping[str, Any]) -> str:
    """The resource's clinical date, as its first ten characters (YYYY-MM-DD or shorter)."""
    for member in _DATE_MEMBERS:
        value = resource.get(member)
        if isinstance(value, Mapping):
            value = value.get("start") or value.get("end")
        if isinstance(value, str) and value[:4].isdigit():
            return value[:10]
    return ""


def _title(resource: Mapping[str, Any]) -> str:
    for member in ("code", "medicationCodeableConcept", "vaccineCode", "type", "category"):
        value = resource.get(member)
        if isinstance(value, list):
            value = value[0] if value else None
        title = _concept(value)
        if title:
            return title
    return _text(resource.get("description")) or _text(resource.get("title"))


def _resources(resource: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The resources a record holds: a Bundle's entries, or the resource itself."""
    if resource.get("resourceType") == "Bundle":
        entries = resource.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            inner = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(inner, Mapping) and isinstance(inner.get("resourceType"), str):
                yield inner
    else:
        yield resource


def synopsis(resource: Mapping[str, Any]) -> Synopsis:
    """Counts, clinical date (or date range) and title of a FHIR resource or Bundle."""
    tally = Tally()
    for inner in _resources(resource):
        tally.add(inner)
    return tally.synopsis()


class Tally:
    """A synopsis built one resource at a time (NDJSON files, the pieces of a split)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._first = self._last = ""
        self._clinical = 0
        self._title = ""

    def add(self, resource: Mapping[str, Any]) -> None:
        """Count one resource, its date and (for the first clinical one) its title."""
        kind = str(resource["resourceType"])
        self.counts[kind] += 1
        if kind == "Patient":
            return
        self._clinical += 1
        if self._clinical == 1:
            self._title = _title(resource)
        found = _date(resource)
        if found:
            self._first = min(self._first, found) if self._first else found
            self._last = max(self._last, found)

    def synopsis(self) -> Synopsis:
        """What the resources added so far hold."""
        clinical = self._first if self._first == self._last else f"{self._first} – {self._last}"
        return Synopsis(dict(self.counts), clinical, self._title if self._clinical == 1 else "")


def _quantity(value: object) -> str:
    if not isinstance(value, Mapping) or not isinstance(value.get("value"), int | float):
        return ""
    unit = _text(value.get("unit")) or _text(value.get("code"))
    return f"{value['value']:g} {unit}".strip()


def _value(resource: Mapping[str, Any]) -> str:
    quantity = _quantity(resource.get("valueQuantity"))
    if quantity:
        return quantity
    for member in ("valueCodeableConcept", "valueCoding"):
        if _concept(resource.get(member)):
            return _concept(resource.get(member))
    for member in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        value = resource.get(member)
        if isinstance(value, str | int | float | bool) and not isinstance(value, bool):
            return _text(str(value))
        if isinstance(value, bool):
            return "yes" if value else "no"
    parts = resource.get("component")
    components = [
        f"{_concept(c.get('code'))} {_quantity(c.get('valueQuantity'))}".strip()
        for c in (parts if isinstance(parts, list) else [])
        if isinstance(c, Mapping)
    ]
    return ", ".join(c for c in components if c)


def line(resource: Mapping[str, Any]) -> str:
    """One readable line: "Hemoglobin 13.2 g/dL, 2026-03-01, final"."""
    kind = str(resource.get("resourceType", "?"))
    if kind == "Patient":
        parts = [_text(resource.get("gender")), _date(resource)]
        return "Patient " + ", ".join(p for p in parts if p)
    head = " ".join(p for p in (_title(resource) or kind, _value(resource)) if p)
    status = resource.get("clinicalStatus") or resource.get("status")
    status_text = _concept(status) if isinstance(status, Mapping) else _text(status)
    return ", ".join(p for p in (head, _date(resource), status_text) if p)


def describe(resource: Mapping[str, Any]) -> list[str]:
    """Readable lines for a record: one for a resource; for a Bundle, grouped by type."""
    inner = list(_resources(resource))
    if resource.get("resourceType") != "Bundle":
        return [line(resource)]
    groups: dict[str, list[str]] = {}
    for item in inner:
        groups.setdefault(str(item["resourceType"]), []).append(line(item))
    lines = [f"Bundle ({resource.get('type', 'collection')}), {len(inner)} resources"]
    for kind in sorted(groups):
        lines.append(f"{kind} ({len(groups[kind])})")
        lines.extend(f"  {text}" for text in groups[kind])
    return lines
