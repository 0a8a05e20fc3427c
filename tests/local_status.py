"""The local status list a test grant or share names, as the path a user would type.

A credential's own `file://` status list is never read (healthwallet/statuslist.py): a local
list comes only from a path given on the command line. Tests that issue without a `status-url`
pass that path explicitly, as a verifier handed the published list would.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conftest import Cli, Result

from healthwallet import grants, shares


def status_path(data: bytes) -> str | None:
    """The local path of the status list a grant or share file names (None if it names none)."""
    reader: Any = shares.read_share_header if data.startswith(shares.MAGIC) else (
        grants.read_grant_header
    )
    try:
        credential = reader(io.BytesIO(data)).credential
        if isinstance(credential, str):  # a VC-JWT: the credential is the payload's `vc`
            payload = credential.split(".")[1]
            credential = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            credential = credential["vc"]
        url = credential["credentialStatus"]["statusListCredential"]
    except Exception:  # a damaged file: let the code under test say what is wrong
        return None
    if not isinstance(url, str) or not url.startswith("file:"):
        return None
    return urllib.request.url2pathname(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def local_lists(files: Iterable[Path]) -> list[str]:
    """The existing local status lists the given grant or share files name, once each."""
    found: dict[str, None] = {}
    for file in files:
        path = None
        if file.is_file():
            path = status_path(file.read_bytes())  # test files: a few MiB at most
        if path is not None and Path(path).is_file():
            found[path] = None
    return list(found)


class TypesStatusList(Cli):
    """A wallet user who passes the local status lists that the grants or shares name with
    `--status-list` (when those files exist), as a doctor or research group does with the
    copy a patient sends: to `verify`, `open` and `research ingest`."""

    def __call__(self, *args: str | Path, **kwargs: Any) -> Result:
        """Run the command, with `--status-list PATH` for each local list its inputs name."""
        words = [str(a) for a in args]
        given = {b for a, b in itertools.pairwise(words) if a == "--status-list"}
        if words[:1] in (["verify"], ["open"]) and not given:
            inputs = words[1:2]
        elif words[:2] == ["research", "ingest"]:
            inputs = words[2:]
        else:
            inputs = []
        for listed in local_lists(Path(w) for w in inputs if not w.startswith("-")):
            if listed not in given:
                args = (*args, "--status-list", listed)
        return super().__call__(*args, **kwargs)


def typing_status_lists(cli: Cli) -> TypesStatusList:
    """``cli`` as a TypesStatusList (same home and environment)."""
    return TypesStatusList(cli.home, cli.env)
