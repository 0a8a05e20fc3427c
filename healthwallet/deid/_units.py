"""Units and ages: which Quantity units may leave (UCUM codes, known displays) and their years."""

from __future__ import annotations

import re
from functools import lru_cache

UCUM = "http://unitsofmeasure.org"

# UCUM atoms seen in clinical data (https://ucum.org/ucum, tables 1-7). Metric atoms take the
# prefixes below; the others do not. A unit is kept only if it parses from these, so a
# free-text `unit` ("mg/dL (pt Jane Doe)") never leaves.
_METRIC_ATOMS = frozenset(
    "g m l L s mol eq U IU Cel K Pa bar J W V A Ohm S Hz N cal kat Gy Sv Bq Ci R rad "
    "osm t Np B ar sr lm lx T Wb C F H".split()
)
_PLAIN_ATOMS = frozenset(
    [
        "min",
        "h",
        "d",
        "wk",
        "mo",
        "a",
        "a_j",
        "a_g",
        "mo_j",
        "mo_g",
        "%",
        "[ppm]",
        "[ppb]",
        "[in_i]",
        "[ft_i]",
        "[lb_av]",
        "[oz_av]",
        "[degF]",
        "mm[Hg]",
        "cm[H2O]",
        "[iU]",
        "[IU]",
        "[pH]",
        "[drp]",
        "[tsp_us]",
        "[tbs_us]",
        "[foz_us]",
        "[pt_us]",
        "[qt_us]",
        "[gal_us]",
        "[mi_i]",
        "[yd_i]",
        "[sft_i]",
        "[cup_us]",
        "[arb'U]",
        "[CFU]",
        "[HPF]",
        "[LPF]",
        "[mi_us]",
        "'",
        "''",
        "deg",
        "10*",
        "10^",
        "[pi]",
        "[hnsf'U]",
        "[USP'U]",
        "[beth'U]",
        "[APL'U]",
        "[GPL'U]",
        "[MPL'U]",
        "[bdsk'U]",
        "[ka'U]",
        "[knk'U]",
        "[mclg'U]",
        "[tb'U]",
        "[todd'U]",
        "[dye'U]",
        "[smgy'U]",
        "[AU]",
        "[BAU]",
        "[FFU]",
        "[PFU]",
        "[Lf]",
        "[D'ag'U]",
        "[tbs_m]",
        "[tsp_m]",
        "[cup_m]",
        "[foz_m]",
        "[S]",
        "[HP]",
        "[Ch]",
        "[mesh_i]",
        "[h]",
        "[e]",
        "[MET]",
    ]
)
_PREFIXES = (
    "da", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d", "c", "m", "u", "n", "p", "f", "a",
)  # fmt: skip
# Annotations are free text in curly braces: only these well-known ones are accepted.
_ANNOTATIONS = frozenset(
    """
    {beats} {breaths} {cells} {copies} {count} {score} {ratio} {titer} {index} {RBC} {WBC}
    {tablet} {tablets} {capsule} {capsules} {puff} {puffs} {drop} {drops} {spray} {sprays}
    {dose} {doses} {patch} {application} {unit} {units} {packyears} {pack-years} {pack_years}
    {cigarettes} {drinks} {steps} {Ehrlich'U} {INR} {1.73_m2} {times} {events} {episodes}
    {visits} {meals} {servings} {hours} {days} {weeks} {months} {years} {age}
    """.split()
)
_TERM = re.compile(r"(\[[^\[\]]+\]|[A-Za-z%'_\[\]]+(?:\[[A-Za-z0-9_]+\])?)(-?\d+)?\Z")
_NUMBER_TERM = re.compile(r"(?:10[*^][+-]?\d{1,2}|\d{1,6})\Z")

# Common display spellings of units (lower case): kept as display text because they name a
# unit and nothing else.
_DISPLAYS = frozenset(
    """
    mg g kg mcg ug ml l dl mmol/l mg/dl g/dl mg/l ng/ml pg/ml u/l iu/l meq/l mmhg cm mm m
    in inch inches lb lbs pound pounds oz kg/m2 kg/m^2 % percent bpm /min beats/min
    breaths/min degf degc °f °c celsius fahrenheit tablet tablets tab tabs capsule capsules cap
    caps puff puffs drop drops patch unit units iu ml/min ml/h mg/kg mg/h mcg/h mg/day
    day days d week weeks wk month months mo year years yr yrs a hour hours h hr hrs minute
    minutes min second seconds s sec score ratio fl fL k/ul 10*3/ul 10*6/ul
    """.split()
)

# Lengths in years of time units, keyed by their normalized spelling (lower case, no dots,
# spaces, braces or underscores): UCUM codes, ANN, and the ways people write ages.
_YEARS: dict[str, tuple[float, str]] = {
    **dict.fromkeys(
        (
            "a aj ag ann y yr yrs year years yearold yearsold yo yold yearsofage yearofage "
            "yearsage age ageyears yeara"
        ).split(),
        (1.0, "a"),
    ),
    **dict.fromkeys(
        "mo moj mog mos month months monthsold monthold mth mths".split(), (1 / 12, "mo")
    ),
    **dict.fromkeys("wk wks w week weeks weeksold weekold".split(), (7 / 365.25, "wk")),
    **dict.fromkeys("d day days dys daysold dayold".split(), (1 / 365.25, "d")),
    **dict.fromkeys("h hr hrs hour hours".split(), (1 / 8766, "h")),
    **dict.fromkeys("min mins minute minutes".split(), (1 / 525960, "min")),
}
_NORMALIZE = re.compile(r"[\s._{}()\[\]]+")


def time_unit(unit: str) -> tuple[float, str] | None:
    """(years in one `unit`, its UCUM code) for any spelling of a time unit, else None."""
    return _YEARS.get(_NORMALIZE.sub("", unit.lower()))


def _atom_ok(atom: str) -> bool:
    if atom in _PLAIN_ATOMS or atom in _METRIC_ATOMS:
        return True
    for prefix in _PREFIXES:
        if atom.startswith(prefix) and atom[len(prefix) :] in _METRIC_ATOMS:
            return True
    return False


def _term_ok(term: str) -> bool:
    # A term: an optional leading number, an atom with an exponent, or an annotation.
    if not term:
        return False
    brace = term.find("{")
    if brace >= 0:
        if not term.endswith("}") or term[brace:] not in _ANNOTATIONS:
            return False
        term = term[:brace]
        if not term:
            return True
    if _NUMBER_TERM.match(term):
        return True
    match = _TERM.match(term)
    return match is not None and _atom_ok(match[1])


@lru_cache(maxsize=4096)
def is_ucum(code: str) -> bool:
    """Whether `code` parses as a UCUM unit built from well-known atoms and annotations."""
    if not code or len(code) > 40 or any(ch.isspace() for ch in code):
        return False
    text = code[1:] if code.startswith("/") else code
    return all(_term_ok(term) for term in re.split(r"[./](?![^{]*\})", text))


@lru_cache(maxsize=4096)
def unit_allowed(unit: str) -> bool:
    """Whether a Quantity `unit` may leave: a UCUM code or a known display of a unit."""
    return len(unit) <= 40 and (is_ucum(unit) or unit.strip().lower() in _DISPLAYS)
