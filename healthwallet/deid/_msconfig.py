"""Microsoft FHIR anonymizer configurations (``fhirPathRules``) as healthwallet policies.

A configuration of Microsoft's FHIR Tools for Anonymization (``fhirPathRules`` of ``path`` and
``method``, plus ``parameters``) is translated rule by rule into healthwallet rules, placed in
front of the built-in ``safe-harbor`` rules: what the configuration names is decided by it
(first rule wins, as in Microsoft's engine), and what it does not name falls to safe-harbor,
which is default-deny, never to "keep". FHIRPath member paths are resolved against the FHIR R4
model that ships with ``fhirpathpy`` (choice elements such as ``Condition.onset``, and
``onset as Age``). Anything healthwallet cannot do exactly is refused, naming the rule.
See docs/deidentification.md, "Microsoft anonymizer configurations".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from healthwallet.deid._fhir import R4_RESOURCE_TYPES
from healthwallet.errors import BadInputError

POLICY_NAME = "ms-anonymizer-config"
_DESCRIPTION = (
    "A Microsoft FHIR anonymizer configuration, translated rule by rule, in front of the "
    "safe-harbor rules (what it does not name is decided by safe-harbor, default deny)."
)
# Microsoft method name (lower case) -> healthwallet method, or why it is refused.
_METHODS = {
    "redact": "redact",
    "keep": "keep",
    "dateshift": "dateshift",
    "cryptohash": "cryptohash",
    "substitute": "substitute",
}
_REFUSED_METHODS = {
    "encrypt": "encrypt is not supported: whoever holds the key could restore the values",
    "perturb": "perturb is not supported: healthwallet adds no noise to values",
    "generalize": (
        "generalize is not supported: its FHIRPath 'cases' are not healthwallet's generalize "
        "modes (the safe-harbor rules generalize ages, dates and ZIP codes already)"
    ),
}
_RULE_KEYS = {
    "substitute": {"replaceWith"},
    "perturb": {"span", "rangeType", "roundTo"},
    "generalize": {"cases", "otherValues"},
}
_TOP_KEYS = {"fhirVersion", "processingErrors", "fhirPathRules", "parameters"}
_KEY_PARAMETERS = ("dateShiftKey", "cryptoHashKey", "encryptKey")
_FLAG_PARAMETERS = (
    "enablePartialAgesForRedact",
    "enablePartialDatesForRedact",
    "enablePartialZipCodesForRedact",
)
_PARAMETERS = {
    *_KEY_PARAMETERS,
    *_FLAG_PARAMETERS,
    "dateShiftScope",
    "restrictedZipCodeTabulationAreas",
}
_NAME = r"[A-Za-z][A-Za-z0-9]*"
# Root(.member)*, optionally "as Type": the FHIRPath subset a healthwallet path can express.
_MEMBER_PATH = re.compile(
    rf"(?P<root>{_NAME})(?P<members>(?:\.{_NAME})*)(?: as (?P<as>{_NAME}))?\Z"
)
_ANY_ROOTS = ("Resource", "DomainResource")


@dataclass(frozen=True)
class Refusal:
    """A rule (or parameter) healthwallet cannot apply, and why."""

    index: int | None
    path: str
    reason: str

    def message(self) -> str:
        """The refusal as one line for an error."""
        where = f"rule {self.index} ({self.path})" if self.index is not None else self.path
        return f"Microsoft anonymizer {where}: {self.reason}"


def is_ms_config(document: Any) -> bool:
    """True when a policy document is a Microsoft anonymizer configuration."""
    return isinstance(document, dict) and "fhirPathRules" in document


def _shown(text: Any) -> str:
    """A value from the file, safe to show on a terminal: printable ASCII, at most 80 chars."""
    value = text if isinstance(text, str) else repr(text)
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in value)
    return cleaned if len(cleaned) <= 80 else cleaned[:77] + "..."


def _model() -> Mapping[str, Any]:
    from fhirpathpy.models import models

    model: Mapping[str, Any] = models["r4"]
    return model


def _translate_path(path: str, model: Mapping[str, Any]) -> str:
    """The healthwallet path for a FHIRPath member path; ValueError(reason) when there is none."""
    import fhirpathpy

    try:
        fhirpathpy.compile(path, dict(model))
    except Exception:
        raise ValueError("not a FHIRPath expression") from None
    match = _MEMBER_PATH.match(path)
    if match is None:
        feature = "nodesByType()" if "nodesByType" in path else "functions, filters or operators"
        raise ValueError(
            f"{feature}: only member paths (Type.element.element, optionally 'as Type') can be "
            "expressed as healthwallet paths"
        )
    root, as_type = match.group("root"), match.group("as")
    members = [m for m in match.group("members").split(".") if m]
    if root not in R4_RESOURCE_TYPES and root not in _ANY_ROOTS:
        raise ValueError(f"{root} is not a FHIR R4 resource type")
    choices: Mapping[str, list[str]] = model["choiceTypePaths"]
    steps: list[str] = []
    for number, member in enumerate(members):
        element = ".".join([root, *members[: number + 1]])
        types = choices.get(element) if root not in _ANY_ROOTS else None
        last = number == len(members) - 1
        if types is None:
            steps.append(member)
        elif not last:
            raise ValueError(f"{element} is a choice element; name one type with 'as Type' last")
        elif as_type is None:
            steps.append(member + "[x]")
        else:
            wanted = as_type[0].upper() + as_type[1:]
            if wanted not in types:
                raise ValueError(f"{element} cannot be of type {as_type}")
            steps.append(member + wanted)
            as_type = None
    if as_type is not None:
        raise ValueError("'as Type' applies only to a choice element (e.g. Condition.onset)")
    return ".".join([root, *steps])


def _translate_rule(raw: Any, index: int, model: Mapping[str, Any]) -> dict[str, Any]:
    """One healthwallet rule for a Microsoft rule; ValueError(reason) when it is refused."""
    if not isinstance(raw, dict):
        raise ValueError("a rule is an object with 'path' and 'method'")
    method = raw.get("method")
    if not isinstance(method, str):
        raise ValueError("'method' is missing")
    name = method.lower()
    if name in _REFUSED_METHODS:
        raise ValueError(_REFUSED_METHODS[name])
    if name not in _METHODS:
        raise ValueError(f"unknown method {_shown(method)}")
    unknown = set(raw) - {"path", "method"} - _RULE_KEYS.get(name, set())
    if unknown:
        raise ValueError(f"unknown members {sorted(_shown(k) for k in unknown)}")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError("'path' is missing")
    rule: dict[str, Any] = {
        "path": _translate_path(path, model),
        "method": _METHODS[name],
        "comment": f"Microsoft anonymizer rule {index}",
    }
    if name == "substitute":
        if "replaceWith" not in raw:
            raise ValueError("substitute needs 'replaceWith'")
        rule["value"] = raw["replaceWith"]
    return rule


def _check_parameters(document: Mapping[str, Any]) -> list[Refusal]:
    refusals: list[Refusal] = []
    for key in sorted(set(document) - _TOP_KEYS):
        refusals.append(Refusal(None, f"member {_shown(key)}", "not part of the configuration"))
    if document.get("fhirVersion", "R4") not in ("R4", ""):
        refusals.append(Refusal(None, "fhirVersion", "healthwallet de-identifies FHIR R4 only"))
    if document.get("processingErrors", "raise") not in ("raise", "keep", "skip"):
        refusals.append(Refusal(None, "processingErrors", "must be raise, keep or skip"))
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        return [*refusals, Refusal(None, "parameters", "must be an object")]
    for key in sorted(set(parameters) - _PARAMETERS):
        refusals.append(Refusal(None, f"parameter {_shown(key)}", "not supported"))
    for key in _KEY_PARAMETERS:
        if parameters.get(key) not in (None, ""):
            refusals.append(
                Refusal(
                    None,
                    f"parameter {key}",
                    "a key shared by every patient would link them across studies; leave it "
                    "empty (healthwallet derives a key per patient and study)",
                )
            )
    for key in _FLAG_PARAMETERS:
        if not isinstance(parameters.get(key, False), bool):
            refusals.append(Refusal(None, f"parameter {key}", "must be true or false"))
    if parameters.get("dateShiftScope", "resource") not in ("resource", "file", "folder"):
        refusals.append(Refusal(None, "parameter dateShiftScope", "must be resource/file/folder"))
    zips = parameters.get("restrictedZipCodeTabulationAreas", [])
    if not isinstance(zips, list) or not all(
        isinstance(z, str) and len(z) == 3 and z.isdigit() for z in zips
    ):
        refusals.append(
            Refusal(None, "parameter restrictedZipCodeTabulationAreas", "must list 3-digit ZIPs")
        )
    return refusals


def translate(document: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Refusal]]:
    """The healthwallet rules for a configuration, and every rule or parameter refused."""
    refusals = _check_parameters(document)
    raw_rules = document.get("fhirPathRules")
    if not isinstance(raw_rules, list):
        return [], [*refusals, Refusal(None, "fhirPathRules", "must be a list of rules")]
    model = _model()
    rules: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_rules):
        path = _shown(raw.get("path")) if isinstance(raw, dict) else "?"
        try:
            rules.append(_translate_rule(raw, index, model))
        except ValueError as exc:
            refusals.append(Refusal(index, path, str(exc)))
    return rules, refusals


def policy_document(document: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The healthwallet policy document for a configuration, in front of ``base`` (safe-harbor).

    BadInputError naming the first refused rule (and how many more there are)."""
    rules, refusals = translate(document)
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        raise BadInputError(
            refusals[0].message() + more,
            "healthwallet applies redact, keep, dateShift, cryptoHash and substitute on member "
            "paths; remove or rewrite the rules it names (docs/deidentification.md)",
        )
    return {
        **{key: value for key, value in base.items() if key not in ("name", "description")},
        "name": POLICY_NAME,
        "description": _DESCRIPTION,
        "rules": [*rules, *base["rules"]],
    }
