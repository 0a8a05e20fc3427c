"""The value methods: dateshift, generalize, cryptohash, substitute.

Each method builds a fresh value from the parts it understands and never copies anything
else across, so a method applied to a complex element cannot leak an unvetted sub-element
(an extension, an element id, a display string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from healthwallet.deid._fhir import R4_RESOURCE_TYPES
from healthwallet.deid._geo import generalize_address
from healthwallet.deid._keys import PseudonymKeys
from healthwallet.deid._units import UCUM as UCUM  # re-exported: _kanon uses it
from healthwallet.deid._units import time_unit


class _Remove:
    __slots__ = ()

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()
"""Returned by a method when the value must leave the output."""


class Masked:
    """A primitive replaced by its FHIR primitive extension (`_birthDate`), with no value."""

    __slots__ = ("extension",)

    def __init__(self, extension: dict[str, Any]) -> None:
        self.extension = extension


DATA_ABSENT_REASON_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
AGE_GROUP_URL = "urn:healthwallet:fhir:deid:age-group"
"""Extension on `_birthDate` saying the birth date was withheld because the age is 90 or more."""
AGE_90_PLUS = "90+"
DEID_BASE = "https://deidentified.invalid/fhir/"
"""Base of absolute references after cryptohash (RFC 6761 reserves .invalid)."""

# 45 CFR 164.514(b)(2)(i)(C): ages over 89, and dates indicating them, are grouped as 90+.
OLDEST_AGE_KEPT = 89

Method = Callable[[Any, "Context"], Any]


class Context:
    """What the methods need for one deidentify call: keys, the current year, a hash cache."""

    __slots__ = ("_cache", "_hmac", "now_year", "shift_days")

    def __init__(self, keys: PseudonymKeys, now_year: int) -> None:
        self._hmac = keys.hmac
        self._cache: dict[str, bytes] = {}
        self.shift_days = keys.date_shift_days
        self.now_year = now_year

    def digest(self, text: str) -> bytes:
        """HMAC-SHA256 of `text` under the patient's study key."""
        cached = self._cache.get(text)
        if cached is None:
            cached = self._hmac(text.encode("utf-8"))
            self._cache[text] = cached
        return cached

    def pseudonym(self, text: str) -> str:
        """A 64-hex pseudonym (a valid FHIR id) for `text`."""
        return self.digest(text).hex()


# --- cryptohash -------------------------------------------------------------------------------

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")


def pseudonymize(value: str, ctx: Context) -> str:
    """Replace an id, a reference or any other string by its keyed pseudonym.

    References keep their shape so they still resolve inside the output: `Type/id` and
    `#id` hash the id the same way `Resource.id` does; `urn:uuid:` stays a UUID.
    """
    if value.startswith("#"):
        return "#" + ctx.pseudonym(value[1:]) if len(value) > 1 else value
    if value.startswith("urn:uuid:"):
        raw = _uuid8(ctx.digest(value[9:].lower())).hex()
        return f"urn:uuid:{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    if value.startswith("urn:oid:"):
        digest = ctx.digest(value[8:])
        return "urn:oid:2.25." + str(int.from_bytes(_uuid8(digest), "big"))
    reference = value.split("/_history/", 1)[0]
    parts = reference.rsplit("/", 2)
    if len(parts) >= 2 and parts[-2] in R4_RESOURCE_TYPES and _ID.match(parts[-1]):
        local = parts[-2] + "/" + ctx.pseudonym(parts[-1])
        if len(parts) == 2:
            return local
        if parts[0].startswith(("https://", "http://")):
            # The server base names the institution: a URL, so it goes (164.514(b)(2)(i)(N)).
            return DEID_BASE + local
    return ctx.pseudonym(value)


def _uuid8(digest: bytes) -> bytes:
    # RFC 9562 §5.8: a custom (version 8) UUID from the first 16 bytes of the HMAC.
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


def _cryptohash(value: Any, ctx: Context) -> Any:
    if isinstance(value, str):
        return pseudonymize(value, ctx)
    return REMOVE


# --- dates ------------------------------------------------------------------------------------

# FHIR R4 date / dateTime / instant, https://hl7.org/fhir/R4/datatypes.html#dateTime
_FULL_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"((?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?)?)\Z"
)
_ANY_DATE = re.compile(
    r"(\d{4})(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
    r"(?:Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)


def _shift(value: Any, ctx: Context) -> Any:
    if isinstance(value, str):
        match = _FULL_DATE.match(value)
        if match is None:
            # A partial date (year, year-month) cannot be shifted without showing the real one.
            return REMOVE
        if ctx.now_year - int(match[1]) > OLDEST_AGE_KEPT:
            # Shifted, it would still say the person is over 89: 164.514(b)(2)(i)(C).
            return REMOVE
        try:
            day = date(int(match[1]), int(match[2]), int(match[3]))
            shifted = day + timedelta(days=ctx.shift_days)
        except (ValueError, OverflowError):
            return REMOVE
        return shifted.isoformat() + match[4]
    return _per_period(value, ctx, _shift)


def _per_period(value: Any, ctx: Context, method: Method) -> Any:
    # A Period: transform start and end, drop everything else.
    if not isinstance(value, dict):
        return REMOVE
    out: dict[str, Any] = {}
    for key in ("start", "end"):
        if key in value:
            result = method(value[key], ctx)
            if result is not REMOVE:
                out[key] = result
    return out or REMOVE


def _date_year(value: str) -> int | None:
    match = _ANY_DATE.match(value)
    return int(match[1]) if match else None


def _to_year(value: Any, ctx: Context) -> Any:
    if isinstance(value, str):
        year = _date_year(value)
        if year is None:
            return REMOVE
        if ctx.now_year - year > OLDEST_AGE_KEPT:
            # A year this far back says the person is over 89: 164.514(b)(2)(i)(C).
            return REMOVE
        return f"{year:04d}"
    return _per_period(value, ctx, _to_year)


def birth_year_masked() -> Masked:
    """The `_birthDate` that stands for a birth date withheld because the age is 90+."""
    return Masked(
        {
            "extension": [
                {"url": DATA_ABSENT_REASON_URL, "valueCode": "masked"},
                {"url": AGE_GROUP_URL, "valueString": AGE_90_PLUS},
            ]
        }
    )


def _to_birth_year(value: Any, ctx: Context) -> Any:
    if not isinstance(value, str):
        return REMOVE
    year = _date_year(value)
    if year is None:
        return REMOVE
    if ctx.now_year - year > OLDEST_AGE_KEPT:
        return birth_year_masked()
    return f"{year:04d}"


# --- ages and quantities ----------------------------------------------------------------------

_QUANTITY_FIELDS = ("value", "comparator", "unit", "system", "code")
_NUMBER = (int, float)
_SCALAR = (str, int, float)


def _age(value: Any, ctx: Context) -> Any:
    if not isinstance(value, dict):
        return REMOVE
    if "low" in value or "high" in value:  # a Range of ages
        out: dict[str, Any] = {}
        for key in ("low", "high"):
            if key in value:
                result = _age(value[key], ctx)
                if result is not REMOVE:
                    out[key] = result
        return out or REMOVE
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, _NUMBER):
        return REMOVE
    unit = value.get("code") if value.get("system") == UCUM else None
    if not isinstance(unit, str):
        unit = value.get("unit")
    time = time_unit(unit) if isinstance(unit, str) else None
    if time is not None and number * time[0] > OLDEST_AGE_KEPT:
        return {"value": 90, "comparator": ">=", "unit": "a", "system": UCUM, "code": "a"}
    return {
        key: value[key] for key in _QUANTITY_FIELDS if isinstance(value.get(key), str | int | float)
    }


# --- geography ----------------------------------------------------------------------------------

_ZIP = re.compile(r"(\d{3})\d{2}(?:-?\d{4})?\Z")
_ZIP3 = re.compile(r"\d{3}\Z")


def zip3(value: str, restricted: frozenset[str]) -> str | None:
    """The 3-digit ZIP allowed by 164.514(b)(2)(i)(B), or None if `value` is not a US ZIP."""
    text = value.strip()
    match = _ZIP.match(text) or _ZIP3.match(text)
    if match is None:
        return None
    prefix = text[:3]
    return "000" if prefix in restricted else prefix


def _make_zip3(restricted: frozenset[str]) -> Method:
    def method(value: Any, ctx: Context) -> Any:
        if not isinstance(value, str):
            return REMOVE
        result = zip3(value, restricted)
        return REMOVE if result is None else result

    return method


def _make_map(mapping: Mapping[str, Any], otherwise: str) -> Method:
    def method(value: Any, ctx: Context) -> Any:
        if isinstance(value, str) and value in mapping:
            return mapping[value]
        return value if otherwise == "keep" and not isinstance(value, dict | list) else REMOVE

    return method


def _make_substitute(replacement: Any) -> Method:
    frozen = json.dumps(replacement)

    def method(value: Any, ctx: Context) -> Any:
        return json.loads(frozen)  # a fresh copy each time, so outputs never share state

    return method


def _make_address(restricted: frozenset[str]) -> Method:
    def method(value: Any, ctx: Context) -> Any:
        result = generalize_address(value, restricted)
        return REMOVE if result is None else result

    return method


GENERALIZE_MODES = ("year", "birth-year", "age", "zip3", "address", "map")


def make_method(method: str, params: Mapping[str, Any]) -> Method:
    """Build the function for a value method from a normalized rule's parameters."""
    if method == "cryptohash":
        return _cryptohash
    if method == "dateshift":
        return _shift
    if method == "substitute":
        return _make_substitute(params["value"])
    if method == "generalize":
        mode = params["to"]
        if mode == "year":
            return _to_year
        if mode == "birth-year":
            return _to_birth_year
        if mode == "age":
            return _age
        if mode == "zip3":
            return _make_zip3(frozenset(params["restricted"]))
        if mode == "address":
            return _make_address(frozenset(params["restricted"]))
        if mode == "map":
            return _make_map(dict(params["map"]), params["otherwise"])
    raise ValueError(f"not a value method: {method}")
