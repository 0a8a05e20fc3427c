"""A guard that the test suite reads nothing beside the repository checkout.

A user's fresh clone has no sibling folders (the project once read did:key vectors from
`../shared`), so any test that opens or lists a path in the repository's parent folder, outside
the repository itself, is recorded here and fails the run (see conftest.pytest_sessionfinish).
Temporary folders are exempt: pytest's tmp_path may live beside the checkout.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_PARENT = str(ROOT.parent)
_ROOT_PREFIX = str(ROOT) + os.sep
_TMP_PREFIX = os.path.realpath(tempfile.gettempdir()) + os.sep
_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})

outside_reads: list[str] = []


# When the checkout itself sits in the temporary folder (a CI clone in /tmp), its siblings
# include every test's temporary directory: those are told apart by the names Python and
# pytest give them.
_TMP_IS_PARENT = os.path.realpath(_PARENT) + os.sep == _TMP_PREFIX
_TEMP_NAMES = ("pytest-of-", "tmp", "hw-", "pymp-", ".")


def leaves_repository(path: str) -> bool:
    """Whether `path` names a sibling of the checkout (in its parent folder, outside it)."""
    if ROOT.parent == Path(ROOT.anchor):
        return False  # a checkout at the filesystem root has no siblings to guard
    full = os.path.abspath(path)
    if not full.startswith(_PARENT + os.sep):
        return False
    if full.startswith(_ROOT_PREFIX) or full == str(ROOT):
        return False
    if _TMP_IS_PARENT:
        first = full[len(_PARENT) + 1 :].split(os.sep, 1)[0]
        return not first.startswith(_TEMP_NAMES)
    return not os.path.realpath(full).startswith(_TMP_PREFIX)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if isinstance(path, str) and leaves_repository(path):
        outside_reads.append(f"{event} {path}")


def install() -> None:
    """Start recording reads outside the repository (audit hooks stay for the process)."""
    sys.addaudithook(_audit)
