"""Policies: ordered (path, method) rules as JSON data, with a stable digest."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path as FilePath
from typing import Any

from healthwallet import jsonutil
from healthwallet.deid._paths import Path, parse_path
from healthwallet.errors import BadInputError, NotFoundError

POLICY_FORMAT = "healthwallet-deid-policy/1"
METHODS = ("keep", "redact", "dateshift", "generalize", "cryptohash", "substitute")
BUILTIN_POLICIES = {"safe-harbor": "safe-harbor.json", "dateshift": "safe-harbor.json"}
"""Built-in policies and their data files; `dateshift` is derived from safe-harbor (below)."""

_COMMON_KEYS = frozenset({"path", "method", "where", "comment"})
_METHOD_KEYS = {
    "keep": frozenset(),
    "redact": frozenset(),
    "dateshift": frozenset(),
    "cryptohash": frozenset(),
    "substitute": frozenset({"value"}),
    "generalize": frozenset({"to", "restricted", "map", "otherwise"}),
}
_TOP_KEYS = frozenset({"format", "name", "description", "sets", "rules"})


def _data_text(name: str) -> str:
    return resources.files("healthwallet.deid").joinpath("data").joinpath(name).read_text("utf-8")


@cache
def restricted_zip3() -> tuple[str, ...]:
    """The 3-digit ZIP prefixes that must become 000 (package data, one per line, # comments)."""
    prefixes = []
    for line in _data_text("restricted_zip3.txt").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            prefixes.append(text)
    return tuple(sorted(set(prefixes)))


def canonical_json(document: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8 (RFC 8785 for our value types)."""
    try:
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BadInputError("the policy is not plain JSON data") from exc


Predicate = Callable[[Any], bool]


def _prefix_test(allowed: list[str]) -> Callable[[str], bool]:
    """A test for a string: one of `allowed`, where a value ending in `*` is a prefix."""
    exact = frozenset(a for a in allowed if not a.endswith("*"))
    prefixes = tuple(a[:-1] for a in allowed if a.endswith("*"))
    return lambda value: value in exact or bool(prefixes and value.startswith(prefixes))


def _compile_where(where: Any, index: int, sets: Mapping[str, list[str]]) -> Predicate:
    if not isinstance(where, dict) or not where:
        raise BadInputError(f"policy rule {index}: 'where' must be an object of field: [values]")
    tests: list[tuple[str, Callable[[str], bool]]] = []
    for key, allowed in where.items():
        if isinstance(allowed, str) and allowed.startswith("$"):
            if allowed[1:] not in sets:
                raise BadInputError(f"policy rule {index}: no set named {allowed[1:]!r}")
            allowed = sets[allowed[1:]]
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise BadInputError(
                f"policy rule {index}: 'where.{key}' must be a list of strings or a $set name"
            )
        tests.append((key, _prefix_test(allowed)))

    def predicate(node: Any) -> bool:
        for key, test in tests:
            # "." tests a primitive node itself (a canonical URL, a code).
            if key == ".":
                found = node
            elif isinstance(node, dict):
                found = node.get(key)
            else:
                return False
            if not isinstance(found, str) or not test(found):
                return False
        return True

    return predicate


@dataclass(frozen=True)
class Rule:
    """One normalized rule: where it applies, what it does, and its parameters."""

    index: int
    path: Path
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    where: Predicate | None = None


def _normalize_rule(
    raw: Any, index: int, sets: Mapping[str, list[str]]
) -> tuple[dict[str, Any], Rule]:
    if not isinstance(raw, dict):
        raise BadInputError(f"policy rule {index} is not a JSON object")
    method = raw.get("method")
    if method not in METHODS:
        raise BadInputError(f"policy rule {index}: method must be one of {', '.join(METHODS)}")
    unknown = set(raw) - _COMMON_KEYS - _METHOD_KEYS[method]
    if unknown:
        raise BadInputError(f"policy rule {index}: unknown keys {sorted(unknown)}")
    path = parse_path(raw.get("path"))  # type: ignore[arg-type]
    if "comment" in raw and not isinstance(raw["comment"], str):
        raise BadInputError(f"policy rule {index}: 'comment' must be a string")
    doc = dict(raw)
    params: dict[str, Any] = {}
    if method == "substitute":
        if "value" not in raw:
            raise BadInputError(f"policy rule {index}: substitute needs a 'value'")
        canonical_json(raw["value"])
        params["value"] = raw["value"]
    elif method == "generalize":
        from healthwallet.deid._methods import GENERALIZE_MODES

        mode = raw.get("to")
        if mode not in GENERALIZE_MODES:
            raise BadInputError(
                f"policy rule {index}: generalize 'to' must be one of {', '.join(GENERALIZE_MODES)}"
            )
        params["to"] = mode
        allowed = {"zip3": {"restricted"}, "address": {"restricted"}, "map": {"map", "otherwise"}}
        allowed_here = allowed.get(mode, set())
        extra = {"restricted", "map", "otherwise"} & set(raw) - allowed_here
        if extra:
            raise BadInputError(f"policy rule {index}: {sorted(extra)} do not apply to {mode}")
        if mode in ("zip3", "address"):
            restricted = raw.get("restricted", list(restricted_zip3()))
            if not isinstance(restricted, list) or not all(
                isinstance(p, str) and len(p) == 3 and p.isdigit() for p in restricted
            ):
                raise BadInputError(f"policy rule {index}: 'restricted' must list 3-digit strings")
            # Inlined, so the policy digest covers the list actually applied.
            doc["restricted"] = params["restricted"] = sorted(set(restricted))
        elif mode == "map":
            mapping = raw.get("map")
            if not isinstance(mapping, dict):
                raise BadInputError(f"policy rule {index}: 'map' must be an object")
            canonical_json(mapping)
            otherwise = raw.get("otherwise", "redact")
            if otherwise not in ("redact", "keep"):
                raise BadInputError(f"policy rule {index}: 'otherwise' must be redact or keep")
            params["map"] = mapping
            doc["otherwise"] = params["otherwise"] = otherwise
    where = _compile_where(raw["where"], index, sets) if "where" in raw else None
    return doc, Rule(index=index, path=path, method=method, params=params, where=where)


class Policy:
    """A de-identification policy: ordered rules; anything no rule keeps is removed."""

    def __init__(self, document: Any) -> None:
        if isinstance(document, list):
            document = {"rules": document}
        if not isinstance(document, dict):
            raise BadInputError("a policy is a JSON object with 'rules' (or a list of rules)")
        unknown = set(document) - _TOP_KEYS
        if unknown:
            raise BadInputError(f"policy: unknown keys {sorted(unknown)}")
        fmt = document.get("format", POLICY_FORMAT)
        if fmt != POLICY_FORMAT:
            raise BadInputError(f"policy format must be {POLICY_FORMAT!r}")
        raw_rules = document.get("rules")
        if not isinstance(raw_rules, list):
            raise BadInputError("policy: 'rules' must be a list")
        for key in ("name", "description"):
            if key in document and not isinstance(document[key], str):
                raise BadInputError(f"policy: '{key}' must be a string")
        sets = document.get("sets", {})
        if not isinstance(sets, dict) or not all(
            isinstance(values, list) and all(isinstance(v, str) for v in values)
            for values in sets.values()
        ):
            raise BadInputError("policy: 'sets' must map names to lists of strings")
        normalized: dict[str, Any] = {
            key: document[key] for key in ("name", "description", "sets") if key in document
        }
        normalized["format"] = POLICY_FORMAT
        rules: list[Rule] = []
        docs: list[dict[str, Any]] = []
        for index, raw in enumerate(raw_rules):
            doc, rule = _normalize_rule(raw, index, sets)
            docs.append(doc)
            rules.append(rule)
        normalized["rules"] = docs
        self._canonical = canonical_json(normalized)
        self._name = normalized.get("name")
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.digest = "sha256:" + hashlib.sha256(self._canonical).hexdigest()
        self.terminology = _prefix_test(sets["terminologies"]) if "terminologies" in sets else None
        """Whether a code system is one of the policy's `terminologies` (None: no such set)."""
        self._engine: Any = None

    @property
    def name(self) -> str:
        """The policy's name, or 'custom' when the document has none."""
        return self._name if isinstance(self._name, str) else "custom"

    @property
    def document(self) -> dict[str, Any]:
        """A fresh copy of the normalized policy document (the one the digest names)."""
        parsed: dict[str, Any] = json.loads(self._canonical)
        return parsed

    def canonical_bytes(self) -> bytes:
        """The canonical JSON the digest is computed over."""
        return self._canonical

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, rules={len(self.rules)}, digest={self.digest!r})"


def load_policy(name_or_path: str | os.PathLike[str]) -> Policy:
    """Load a built-in policy by name (`safe-harbor`) or a policy JSON file by path."""
    key = os.fspath(name_or_path)
    if key in BUILTIN_POLICIES:
        return _builtin(key)
    path = FilePath(key)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(
            "no built-in policy or policy file by that name",
            hint=f"built-in policies: {', '.join(BUILTIN_POLICIES)}; or pass a JSON file",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError("the policy file cannot be read as UTF-8 text") from exc
    # A JsonInputError (exit 2) names the policy file and the line, or why it is refused.
    document = jsonutil.loads(text, what="the policy file")
    from healthwallet.deid import _msconfig  # Microsoft anonymizer configurations

    if _msconfig.is_ms_config(document):
        return Policy(_msconfig.policy_document(document, _builtin("safe-harbor").document))
    return Policy(document)


DATESHIFT_DESCRIPTION = (
    "NOT Safe Harbor: the safe-harbor rules, except that clinical dates are shifted by the "
    "patient's per-study offset (1 to 50 days, the same for all of a patient's dates in one "
    "study, keyed like the pseudonyms) instead of cut to the year, so intervals between a "
    "patient's events are kept. Birth dates are still cut to the year (90+ withheld); dates "
    "more than 89 years back are removed. Use it only where the data agreement allows dates "
    "(a limited data set, or expert determination)."
)


def _dateshift(document: dict[str, Any]) -> dict[str, Any]:
    # Every `generalize to year` of the safe-harbor policy becomes `dateshift`.
    rules = []
    for rule in document["rules"]:
        if rule.get("method") == "generalize" and rule.get("to") == "year":
            rule = {key: value for key, value in rule.items() if key != "to"}
            rule["method"] = "dateshift"
            rule["comment"] = "shifted by the patient's per-study offset (not Safe Harbor)"
        rules.append(rule)
    return {**document, "name": "dateshift", "description": DATESHIFT_DESCRIPTION, "rules": rules}


@cache
def _builtin(name: str) -> Policy:
    document = json.loads(_data_text(BUILTIN_POLICIES[name]))
    return Policy(_dateshift(document) if name == "dateshift" else document)
