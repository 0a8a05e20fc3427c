"""Rule paths: a small FHIRPath-like language, compiled into a lazily built automaton.

Grammar (documented in docs/deidentification.md):

    path     := root ("." step)*
    root     := ResourceType | "Resource" | "DomainResource" | "*"
    step     := name | name "[x]" | "*" | "**" | ext
    ext      := ("extension" | "modifierExtension") "('" url "')"

A `name` matches the JSON property of exactly that name. `name[x]` matches the forms of a
choice element, `name<Type>` (`Observation.value[x]` matches `valueQuantity`, `valueString`...),
but not `name` itself; unlike FHIRPath, a bare stem does not, because stems collide with real
element names (`reference` + `Range` is `referenceRange`). `*` is any one element, `**` any
number of elements (zero or more). Array items are transparent: the path of
`Patient.name[2].given[0]` is `Patient.name.given`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from healthwallet.deid._fhir import CHOICE_TYPE_SUFFIXES, R4_RESOURCE_TYPES
from healthwallet.errors import BadInputError

# Step kinds in a compiled path.
NAME = 0
ANY = 1
DESC = 2
URL = 3
CHOICE = 4

ANY_RESOURCE = ("Resource", "DomainResource", "*")
EXTENSION_NAMES = ("extension", "modifierExtension")

_TOKEN = re.compile(
    r"""
    (?P<ext>(?:extension|modifierExtension)\('(?P<url>[^'\s]+)'\))
    | (?P<desc>\*\*)
    | (?P<any>\*)
    | (?P<name>_?[A-Za-z][A-Za-z0-9]*)(?P<choice>\[x\])?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Path:
    """A parsed rule path: the resource type it applies to (None: any) and its steps."""

    text: str
    resource_type: str | None
    steps: tuple[tuple[int, str], ...]


def parse_path(text: str) -> Path:
    """Parse a rule path, raising BadInputError on bad syntax."""
    if not isinstance(text, str) or not text:
        raise BadInputError("a rule path must be a non-empty string")
    root, dot, _ = text.partition(".")
    if root in ANY_RESOURCE:
        resource_type = None
    elif root in R4_RESOURCE_TYPES:
        resource_type = root
    else:
        raise BadInputError(f"rule path {text!r} must start with a FHIR R4 resource type")
    steps: list[tuple[int, str]] = []
    position = len(root) + 1
    if not dot:
        return Path(text, resource_type, ())
    while True:
        match = _TOKEN.match(text, position)
        if match is None:
            raise BadInputError(f"rule path {text!r}: cannot read step at character {position}")
        if match.group("ext"):
            name = match.group(0).split("(", 1)[0]
            steps.append((NAME, name))
            steps.append((URL, match.group("url")))
        elif match.group("desc"):
            steps.append((DESC, ""))
        elif match.group("any"):
            steps.append((ANY, ""))
        elif match.group("choice"):
            steps.append((CHOICE, match.group("name")))
        else:
            steps.append((NAME, match.group("name")))
        position = match.end()
        if position == len(text):
            break
        if text[position] != ".":
            raise BadInputError(f"rule path {text!r}: expected '.' at character {position}")
        position += 1
        if position == len(text):
            raise BadInputError(f"rule path {text!r} ends with '.'")
    return Path(text, resource_type, tuple(steps))


def choice_matches(stem: str, element: str) -> bool:
    """Whether a JSON property is a choice-type form `stem<Type>` (FHIR R4 §2.1.0.5 [x])."""
    return element.startswith(stem) and element[len(stem) :] in CHOICE_TYPE_SUFFIXES


class State:
    """A node of the lazily built automaton: which rules match here, which may match below."""

    __slots__ = (
        "has_url",
        "live_keep_min",
        "live_min",
        "matches",
        "positions",
        "trans",
        "url_trans",
    )

    def __init__(
        self,
        positions: frozenset[tuple[int, int]],
        matches: tuple[int, ...],
        live_min: int,
        live_keep_min: int,
        has_url: bool,
    ) -> None:
        self.positions = positions
        self.matches = matches
        self.live_min = live_min
        self.live_keep_min = live_keep_min
        self.has_url = has_url
        self.trans: dict[str, State] = {}
        self.url_trans: dict[str, State] = {}


_CACHE_LIMIT = 4096

NO_RULE = 1 << 30
"""Rule index meaning 'no rule': default deny."""


class Automaton:
    """Subset construction over the rule paths, built on demand and cached."""

    def __init__(self, paths: list[Path], removes: list[bool]) -> None:
        self._steps = [path.steps for path in paths]
        self._types = [path.resource_type for path in paths]
        self._removes = removes  # rule index -> the rule only ever removes (redact)
        self._states: dict[frozenset[tuple[int, int]], State] = {}
        self._roots: dict[str, State] = {}

    def _closure(self, positions: set[tuple[int, int]]) -> set[tuple[int, int]]:
        todo = list(positions)
        while todo:
            rule, index = todo.pop()
            steps = self._steps[rule]
            if index < len(steps) and steps[index][0] == DESC:
                nxt = (rule, index + 1)
                if nxt not in positions:
                    positions.add(nxt)
                    todo.append(nxt)
        return positions

    def _state(self, positions: set[tuple[int, int]]) -> State:
        key = frozenset(positions)
        state = self._states.get(key)
        if state is not None:
            return state
        matches: list[int] = []
        live_min = NO_RULE
        live_keep_min = NO_RULE
        has_url = False
        for rule, index in key:
            steps = self._steps[rule]
            if index == len(steps):
                matches.append(rule)
                continue
            live_min = min(live_min, rule)
            if not self._removes[rule]:
                live_keep_min = min(live_keep_min, rule)
            if steps[index][0] == URL:
                has_url = True
        state = State(key, tuple(sorted(matches)), live_min, live_keep_min, has_url)
        self._states[key] = state
        return state

    def root(self, resource_type: str) -> State:
        """The state at the root of a resource of this type."""
        state = self._roots.get(resource_type)
        if state is None:
            positions = {
                (rule, 0)
                for rule, wanted in enumerate(self._types)
                if wanted is None or wanted == resource_type
            }
            state = self._state(self._closure(positions))
            self._roots[resource_type] = state
        return state

    def step(self, state: State, element: str) -> State:
        """The state after descending into the JSON property `element`."""
        nxt: set[tuple[int, int]] = set()
        for rule, index in state.positions:
            steps = self._steps[rule]
            if index == len(steps):
                continue
            kind, arg = steps[index]
            if kind == DESC:
                nxt.add((rule, index))
            elif (
                kind == ANY
                or (kind == NAME and arg == element)
                or (kind == CHOICE and choice_matches(arg, element))
            ):
                nxt.add((rule, index + 1))
            # A URL step only advances on an extension's url (step_url); here it dies.
        result = self._state(self._closure(nxt))
        if len(state.trans) < _CACHE_LIMIT:  # input keys are untrusted: bound the cache
            state.trans[element] = result
        return result

    def step_url(self, state: State, url: str) -> State:
        """The state for one extension item, given its `url`."""
        nxt: set[tuple[int, int]] = set()
        for rule, index in state.positions:
            steps = self._steps[rule]
            if index < len(steps) and steps[index][0] == URL:
                if steps[index][1] == url:
                    nxt.add((rule, index + 1))
            else:
                nxt.add((rule, index))
        result = self._state(self._closure(nxt))
        if len(state.url_trans) < _CACHE_LIMIT:
            state.url_trans[url] = result
        return result
