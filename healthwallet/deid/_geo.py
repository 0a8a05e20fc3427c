"""Geography under Safe Harbor: an Address cut to state, country and ZIP3, for US ZIPs only."""

from __future__ import annotations

import re
from typing import Any

# USPS codes of the states, DC and the territories, and their names (lower case).
US_STATES: dict[str, str] = {
    "AL": "alabama", "AK": "alaska", "AZ": "arizona", "AR": "arkansas", "CA": "california",
    "CO": "colorado", "CT": "connecticut", "DE": "delaware", "DC": "district of columbia",
    "FL": "florida", "GA": "georgia", "HI": "hawaii", "ID": "idaho", "IL": "illinois",
    "IN": "indiana", "IA": "iowa", "KS": "kansas", "KY": "kentucky", "LA": "louisiana",
    "ME": "maine", "MD": "maryland", "MA": "massachusetts", "MI": "michigan",
    "MN": "minnesota", "MS": "mississippi", "MO": "missouri", "MT": "montana",
    "NE": "nebraska", "NV": "nevada", "NH": "new hampshire", "NJ": "new jersey",
    "NM": "new mexico", "NY": "new york", "NC": "north carolina", "ND": "north dakota",
    "OH": "ohio", "OK": "oklahoma", "OR": "oregon", "PA": "pennsylvania",
    "RI": "rhode island", "SC": "south carolina", "SD": "south dakota", "TN": "tennessee",
    "TX": "texas", "UT": "utah", "VT": "vermont", "VA": "virginia", "WA": "washington",
    "WV": "west virginia", "WI": "wisconsin", "WY": "wyoming", "PR": "puerto rico",
    "GU": "guam", "VI": "virgin islands", "AS": "american samoa",
    "MP": "northern mariana islands", "AA": "armed forces americas",
    "AE": "armed forces europe", "AP": "armed forces pacific",
}  # fmt: skip
_STATE_NAMES = frozenset(US_STATES.values())
_US_COUNTRY = frozenset(
    {"us", "usa", "u.s.", "u.s.a.", "united states", "united states of america", "840"}
)
# A country is kept when it is an ISO 3166 alpha-2 or alpha-3 code (or a US spelling above).
_COUNTRY_CODE = re.compile(r"[A-Z]{2,3}\Z")
_ZIP = re.compile(r"(\d{3})\d{2}(?:-?\d{4})?\Z")


def us_state(value: Any) -> str | None:
    """The value itself when it is a US state code or name, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.upper() in US_STATES or text.lower() in _STATE_NAMES:
        return value
    return None


def _is_us(country: Any) -> bool:
    return isinstance(country, str) and country.strip().lower() in _US_COUNTRY


def _country(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if _is_us(value) or _COUNTRY_CODE.match(value):
        return value
    return None


def generalize_address(value: Any, restricted: frozenset[str]) -> dict[str, Any] | None:
    """A fresh Address with only what 164.514(b)(2)(i)(B) allows, or None when nothing is left.

    `state` is kept only when it is a US state (a ZIP or a town hidden in it goes); `country`
    only as a code; `postalCode` becomes ZIP3 (000 when restricted) only for a US address
    (a US country, or no country and a US state): other countries' postal codes are removed.
    """
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    country = value.get("country")
    state = us_state(value.get("state"))
    if state is not None and (country is None or _is_us(country)):
        out["state"] = state
    kept_country = _country(country)
    if kept_country is not None:
        out["country"] = kept_country
    us = _is_us(country) or (country is None and state is not None)
    postal = value.get("postalCode")
    if us and isinstance(postal, str):
        match = _ZIP.match(postal.strip())
        if match is not None:
            out["postalCode"] = "000" if match[1] in restricted else match[1]
    return out if ("state" in out or "country" in out or "postalCode" in out) else None
