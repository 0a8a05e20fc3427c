"""Ids as people type them: a full id, or a unique prefix, with or without `urn:uuid:`."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import NotFoundError, UsageError

MIN_PREFIX = 4  # hex characters; shorter prefixes match too much to be a safe reference
_URN = "urn:uuid:"
_SHOWN = 5  # candidates named when a prefix is ambiguous
_TYPED_MAX = 128


def _bare(identifier: str) -> str:
    """An id without `urn:uuid:`, in lower case."""
    text = identifier.strip().lower()
    return text[len(_URN) :] if text.startswith(_URN) else text


def resolve_id(typed: str, candidates: Iterable[str], *, kind: str, list_command: str) -> str:
    """The one candidate that `typed` names: the whole id or a unique prefix of its bare form.

    `kind` ("record", "grant") and `list_command` word the errors. Raises UsageError for a
    prefix that is too short or ambiguous (naming the candidates), NotFoundError for no match.
    """
    hint = f"list them with `healthwallet {list_command}`"
    if len(typed) > _TYPED_MAX:
        raise UsageError(f"that {kind} id is too long", hint)
    wanted = _bare(typed)
    pool = list(candidates)
    exact = [c for c in pool if _bare(c) == wanted]
    if exact:
        return exact[0]
    if not wanted or any(ch not in "0123456789abcdef-" for ch in wanted):
        raise NotFoundError(f"no such {kind}", hint)
    if len(wanted.replace("-", "")) < MIN_PREFIX:
        raise UsageError(
            f"a {kind} id prefix needs at least {MIN_PREFIX} characters",
            f"give more of the id; {hint}",
        )
    matches = sorted(c for c in pool if _bare(c).startswith(wanted))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(f"no such {kind}", hint)
    shown = ", ".join(matches[:_SHOWN]) + (" …" if len(matches) > _SHOWN else "")
    raise UsageError(
        f"that {kind} id prefix is ambiguous: {len(matches)} {kind}s match ({shown})",
        "give more characters",
    )
