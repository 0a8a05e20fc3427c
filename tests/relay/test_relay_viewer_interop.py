"""The relay answers an independently written SHL client: kill-the-clipboard's SHLViewer, run
in Node against the relay over TLS (a test CA, trusted through NODE_EXTRA_CA_CERTS).

The files are real JWEs (dir, A256GCM) under a key only the link carries.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, require, require_tool
from relay_fixtures import KEY, Relay, jwe_file, running_relay

from healthwallet import keys
from healthwallet.relay import protocol
from healthwallet.relay.sqlite_store import SqliteStore

ALICE = keys.Identity(b"\x01" * 32)
SCRIPT = ROOT / "tests" / "node" / "interop" / "relay-viewer.mjs"
pytestmark = pytest.mark.integration

BUNDLE = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p"}}]}).encode()


@pytest.fixture
def relay(tmp_path: Path) -> Any:
    require((ROOT / "tests" / "node" / "node_modules" / "kill-the-clipboard").exists(),
            "tests/node/node_modules (npm ci in tests/node)")
    store = SqliteStore(tmp_path / "relay.db")
    with running_relay(store, tmp_path, limits={"requests_per_second": 1000,
                                                "burst": 1000}) as served:
        yield served
    store.close()


def shlink(link: dict[str, Any]) -> str:
    payload = {"url": link["url"], "key": keys.b64url(KEY), "flag": link["flag"], "v": 1}
    if link["exp"] is not None:
        payload["exp"] = link["exp"]
    return "shlink:/" + keys.b64url(json.dumps(payload).encode())


def view(relay: Relay, link: dict[str, Any], *args: str) -> dict[str, Any]:
    node = require_tool("node")
    done = subprocess.run(
        [node, str(SCRIPT), shlink(link), "Dr. Viewer", *args], capture_output=True,
        timeout=60, env={"NODE_EXTRA_CA_CERTS": str(relay.ca_file), "PATH": "/usr/bin:/bin"},
        cwd=ROOT / "tests" / "node",
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_viewer_reads_embedded_and_location_files_behind_a_passcode(relay: Relay) -> None:
    link = relay.create(ALICE, flag="P", passcode="7391", files=[jwe_file(BUNDLE)])
    assert view(relay, link, "7391")["resources"] == ["Bundle"]
    assert view(relay, link, "7391", "0")["resources"] == ["Bundle"]  # through a location
    wrong = view(relay, link, "0000")
    assert (wrong["ok"], wrong["error"]) == (False, "SHLInvalidPasscodeError")


def test_viewer_reads_a_u_link_and_a_long_term_link_after_update(relay: Relay) -> None:
    direct = relay.create(ALICE, flag="U", files=[jwe_file(BUNDLE)])
    assert view(relay, direct)["resources"] == ["Bundle"]
    long_term = relay.create(ALICE, flag="L", files=[jwe_file(BUNDLE)])
    assert view(relay, long_term)["status"] == "can-change"
    new = json.dumps({"resourceType": "Patient", "id": "q"}).encode()
    path = f"{protocol.API_LINKS}/{long_term['id']}"
    assert relay.signed(ALICE, "PUT", path, {"files": [jwe_file(new)]}).status_code == 200
    assert view(relay, long_term)["resources"] == ["Patient"]


def test_viewer_sees_revoked_links_as_not_found(relay: Relay) -> None:
    link = relay.create(ALICE, files=[jwe_file(BUNDLE)])
    relay.signed(ALICE, "DELETE", f"{protocol.API_LINKS}/{link['id']}")
    gone = view(relay, link)
    assert (gone["ok"], gone["error"]) == (False, "SHLManifestNotFoundError")
