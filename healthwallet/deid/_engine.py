"""The rule engine: one pass over a FHIR JSON tree, default deny.

Semantics (as in Microsoft's FHIR anonymizer, but deny by default): rules are tried in order
and the first rule that matches a node or any of its ancestors decides it. A node that no rule
reaches is removed. `keep` keeps a node but still lets earlier rules act on its descendants;
`redact` removes it unless an earlier keeping rule matches a descendant; the value methods
replace the node as a whole. Nested resources (Bundle entries, contained resources) start
again at their own resource type and are only kept where a rule keeps their slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from healthwallet.deid._conform import Conformer
from healthwallet.deid._fhir import R4_RESOURCE_TYPES, check_resource, is_element_name
from healthwallet.deid._keys import PseudonymKeys
from healthwallet.deid._methods import REMOVE, Context, Masked, make_method
from healthwallet.deid._paths import EXTENSION_NAMES, NO_RULE, Automaton, State
from healthwallet.deid._policy import Policy
from healthwallet.errors import BadInputError, UsageError
from healthwallet.jsonutil import MAX_NESTING, recursion_cap

_KEEP = 0
_REDACT = 1
_VALUE = 2
_DENY = 3


class Change(NamedTuple):
    """One decision of the dry-run report: a FHIR path, what happened there, and which rule.

    `action` is keep, redact, remove (no rule keeps it: default deny), dateshift, generalize,
    cryptohash or substitute. The report never carries values.
    """

    path: str
    action: str
    rule: int | None


_INDEX = re.compile(r"\[\d+\]")
_NESTED = re.compile(r"^.*\.ofType\(([A-Za-z]+)\)")


def field_path(path: str) -> str:
    """A change's path without array indices, rooted at the innermost resource type."""
    return _NESTED.sub(r"\1", _INDEX.sub("", path))


class DeidResult:
    """The de-identified resource and the decisions taken, field by field."""

    __slots__ = ("_changes", "_raw", "resource")

    def __init__(self, resource: dict[str, Any], raw: list[tuple[str, str, int]]) -> None:
        self.resource = resource
        self._raw = raw
        self._changes: list[Change] | None = None

    @property
    def changes(self) -> list[Change]:
        """Every decision, in document order (empty when run with report=False)."""
        if self._changes is None:
            self._changes = [
                Change(path, action, None if rule == NO_RULE else rule)
                for path, action, rule in self._raw
            ]
        return self._changes

    def summary(self) -> list[dict[str, Any]]:
        """The report grouped by field path and action: [{path, action, rule, count}]."""
        counts: dict[tuple[str, str, int | None], int] = {}
        for change in self.changes:
            key = (field_path(change.path), change.action, change.rule)
            counts[key] = counts.get(key, 0) + 1
        return [
            {"path": path, "action": action, "rule": rule, "count": count}
            for (path, action, rule), count in sorted(
                counts.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or -1)
            )
        ]

    def __repr__(self) -> str:
        return f"DeidResult(resource_type={self.resource.get('resourceType')!r})"


class _Engine:
    """A policy compiled for walking: rule kinds, method functions and the path automaton."""

    def __init__(self, policy: Policy) -> None:
        rules = policy.rules
        self.kinds: list[int] = []
        self.methods: list[Callable[[Any, Context], Any] | None] = []
        for rule in rules:
            if rule.method == "keep":
                self.kinds.append(_KEEP)
                self.methods.append(None)
            elif rule.method == "redact":
                self.kinds.append(_REDACT)
                self.methods.append(None)
            else:
                self.kinds.append(_VALUE)
                self.methods.append(make_method(rule.method, rule.params))
        self.actions = [rule.method for rule in rules]
        self.wheres = [rule.where for rule in rules]
        self.automaton = Automaton(
            [rule.path for rule in rules], [rule.method == "redact" for rule in rules]
        )


def _engine(policy: Policy) -> _Engine:
    engine = policy._engine
    if engine is None:
        engine = policy._engine = _Engine(policy)
    return engine  # type: ignore[no-any-return]


_SAFE_NAMES: dict[str, str] = {}


def _safe_name(name: str) -> str:
    # Property names come from the input: only FHIR-shaped ones go into the report.
    safe = _SAFE_NAMES.get(name)
    if safe is None:
        safe = name if is_element_name(name) else "<invalid-element>"
        if len(_SAFE_NAMES) < 65536:
            _SAFE_NAMES[name] = safe
    return safe


class _Walker:
    __slots__ = (
        "actions",
        "automaton",
        "changes",
        "conformer",
        "ctx",
        "kinds",
        "methods",
        "wheres",
    )

    def __init__(self, engine: _Engine, ctx: Context, conformer: Conformer, report: bool) -> None:
        self.conformer = conformer
        self.kinds = engine.kinds
        self.methods = engine.methods
        self.actions = engine.actions
        self.wheres = engine.wheres
        self.automaton = engine.automaton
        self.ctx = ctx
        self.changes: list[tuple[str, str, int]] | None = [] if report else None

    def _effective(self, state: State, value: Any, inherited: int) -> int:
        wheres = self.wheres
        for rule in state.matches:
            if rule >= inherited:
                break
            where = wheres[rule]
            if where is None or where(value):
                return rule
        return inherited

    def resource(self, resource: dict[str, Any], path: str | None) -> Any:
        """De-identify one resource whose type was checked; REMOVE if nothing may leave."""
        resource_type = resource["resourceType"]
        state = self.automaton.root(resource_type)
        eff = self._effective(state, resource, NO_RULE)
        kind = self.kinds[eff] if eff != NO_RULE else _DENY
        changes = self.changes
        if kind == _VALUE:
            return self._node(resource, state, NO_RULE, path)
        if kind == _KEEP:
            if changes is not None and path is not None:
                changes.append((path, "keep", eff))
            limit = state.live_min
        else:
            limit = state.live_keep_min
        if limit >= eff and kind != _KEEP:
            if changes is not None and path is not None:
                changes.append((path, "redact" if kind == _REDACT else "remove", eff))
            return REMOVE
        out: dict[str, Any] = {"resourceType": resource_type}
        if limit >= eff:  # keep, and no earlier rule can reach below: copy
            for name, value in resource.items():
                if name != "resourceType":
                    child_path = None if path is None else f"{path}.{_safe_name(name)}"
                    result = self._copy(value, child_path)
                    if result is not REMOVE:
                        out[name] = result
        else:
            self._members(resource, state, eff, path, out, True)
        if resource_type == "Bundle" and isinstance(out.get("entry"), list):
            # An entry whose resource did not survive says nothing useful: drop it whole.
            entries = [e for e in out["entry"] if isinstance(e, dict) and "resource" in e]
            if entries:
                out["entry"] = entries
            else:
                del out["entry"]
        # Default deny all the way down: only R4 members, valid values, Safe Harbor ages.
        return self.conformer.resource(out, resource)

    def _members(
        self,
        node: dict[str, Any],
        state: State,
        inherited: int,
        path: str | None,
        out: dict[str, Any],
        is_resource: bool = False,
    ) -> None:
        trans = state.trans
        automaton = self.automaton
        node_fn = self._node
        kinds = self.kinds
        changes = self.changes
        for name, value in node.items():
            child = trans.get(name)
            if child is None:
                if is_resource and name == "resourceType":
                    continue
                child = automaton.step(state, name)
            elif is_resource and name == "resourceType":
                continue
            if path is None:
                child_path = None
            else:
                safe = _SAFE_NAMES.get(name) or _safe_name(name)
                child_path = f"{path}.{safe}"
            if type(value) is list:
                items = []
                url_step = child.has_url and name in EXTENSION_NAMES
                plain = not url_step and (not child.matches or child.matches[0] >= inherited)
                for index, item in enumerate(value):
                    if plain and type(item) is not dict and type(item) is not list:
                        # Fast path, as for single primitives below.
                        if inherited != NO_RULE and kinds[inherited] == _KEEP:
                            items.append(item)
                        elif changes is not None and child_path is not None:
                            kind = kinds[inherited] if inherited != NO_RULE else _DENY
                            changes.append(
                                (
                                    f"{child_path}[{index}]",
                                    "redact" if kind == _REDACT else "remove",
                                    inherited,
                                )
                            )
                        continue
                    item_state = child
                    if url_step:
                        url = item.get("url") if type(item) is dict else None
                        url = url if isinstance(url, str) else ""
                        item_state = child.url_trans.get(url) or automaton.step_url(child, url)
                    result = node_fn(
                        item,
                        item_state,
                        inherited,
                        None if child_path is None else f"{child_path}[{index}]",
                    )
                    if result is not REMOVE and type(result) is not Masked:
                        items.append(result)
                if items:
                    out[name] = items
            elif type(value) is not dict and (not child.matches or child.matches[0] >= inherited):
                # Fast path: a primitive no rule matches itself just follows its ancestors.
                if inherited != NO_RULE and kinds[inherited] == _KEEP:
                    out[name] = value
                elif changes is not None and child_path is not None:
                    kind = kinds[inherited] if inherited != NO_RULE else _DENY
                    changes.append(
                        (child_path, "redact" if kind == _REDACT else "remove", inherited)
                    )
            else:
                result = node_fn(value, child, inherited, child_path)
                if result is REMOVE:
                    continue
                if type(result) is Masked:
                    out["_" + name] = result.extension
                else:
                    out[name] = result

    def _node(self, value: Any, state: State, inherited: int, path: str | None) -> Any:
        eff = inherited
        matches = state.matches
        if matches:
            wheres = self.wheres
            for rule in matches:
                if rule >= inherited:
                    break
                where = wheres[rule]
                if where is None or where(value):
                    eff = rule
                    break
        kind = self.kinds[eff] if eff != NO_RULE else _DENY
        changes = self.changes
        if kind == _KEEP:
            if type(value) is dict:
                if "resourceType" in value:
                    return self._nested(value, path)
                if eff != inherited and changes is not None and path is not None:
                    changes.append((path, "keep", eff))
                if state.live_min < eff:
                    out: dict[str, Any] = {}
                    self._members(value, state, eff, path, out)
                    return out if out else REMOVE
                return self._copy(value, path)
            if eff != inherited and changes is not None and path is not None:
                changes.append((path, "keep", eff))
            if type(value) is list:
                return self._copy(value, path)
            return value
        if kind == _VALUE:
            method = self.methods[eff]
            assert method is not None  # kinds and methods are built together
            result = method(value, self.ctx)
            if changes is not None and path is not None:
                changes.append((path, "redact" if result is REMOVE else self.actions[eff], eff))
            return result
        if type(value) is dict and state.live_keep_min < eff and "resourceType" not in value:
            # Removed here, but an earlier rule keeps something below: build only that.
            mark = len(changes) if changes is not None else 0
            out = {}
            self._members(value, state, eff, path, out)
            if out:
                return out
            if changes is not None and path is not None:
                # Nothing below survived: one line for the whole element, not one per leaf.
                del changes[mark:]
                changes.append((path, "redact" if kind == _REDACT else "remove", eff))
            return REMOVE
        if changes is not None and path is not None:
            changes.append((path, "redact" if kind == _REDACT else "remove", eff))
        return REMOVE

    def _nested(self, value: dict[str, Any], path: str | None) -> Any:
        resource_type = value.get("resourceType")
        if not isinstance(resource_type, str) or resource_type not in R4_RESOURCE_TYPES:
            if self.changes is not None and path is not None:
                self.changes.append((path, "remove", NO_RULE))
            return REMOVE
        return self.resource(value, None if path is None else f"{path}.ofType({resource_type})")

    def _copy(self, value: Any, path: str | None) -> Any:
        # A kept subtree no earlier rule reaches into; nested resources still get the policy.
        vtype = type(value)
        if vtype is dict:
            if "resourceType" in value:
                return self._nested(value, path)
            copied = {}
            for name, item in value.items():
                result = self._copy(item, None if path is None else f"{path}.{_safe_name(name)}")
                if result is not REMOVE:
                    copied[name] = result
            return copied
        if vtype is list:
            items = []
            for index, item in enumerate(value):
                result = self._copy(item, None if path is None else f"{path}[{index}]")
                if result is not REMOVE:
                    items.append(result)
            return items
        return value


def deidentify(
    resource: dict[str, Any],
    policy: Policy,
    keys: PseudonymKeys,
    *,
    now: datetime | None = None,
    report: bool = True,
) -> DeidResult:
    """De-identify a FHIR R4 resource or Bundle under `policy` with one patient's study keys."""
    if not isinstance(policy, Policy):
        raise UsageError("policy must be a Policy (see load_policy)")
    if not isinstance(keys, PseudonymKeys):
        raise UsageError("keys must be PseudonymKeys (see PseudonymKeys.derive)")
    # The walk recurses per nesting level: cap the depth here rather than trust the
    # process-wide recursion limit, which other libraries may have raised.
    with recursion_cap(MAX_NESTING):
        try:
            resource_type = check_resource(resource)
            when = now if now is not None else datetime.now(UTC)
            conformer = Conformer(when.year, policy.terminology)
            walker = _Walker(_engine(policy), Context(keys, when.year), conformer, report)
            out = walker.resource(resource, resource_type if report else None)
        except RecursionError as exc:
            raise BadInputError("the resource is nested too deeply") from exc
    if out is REMOVE or not isinstance(out, dict):
        out = {"resourceType": resource_type}
    return DeidResult(out, walker.changes if walker.changes is not None else [])
