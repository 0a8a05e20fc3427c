"""Interop: links that kill-the-clipboard (an independent SHL library, in Node) creates and
serves over HTTPS are imported by `healthwallet import`.

Needs node and tests/node/node_modules/kill-the-clipboard: skipped locally without them, a
failure when CI=true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import fhir_bundle, require
from link_peers import trusting
from shl_server import certificates

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def require_ktc() -> str:
    """node with kill-the-clipboard installed (skip locally, fail in CI)."""
    node = shutil.which("node")
    require(node is not None and (NODE_DIR / "node_modules" / "kill-the-clipboard").is_dir(),
            "node and tests/node/node_modules/kill-the-clipboard (run npm ci in tests/node)")
    assert node is not None
    return node


@contextmanager
def ktc_links(tmp_path: Path, specs: list[dict[str, Any]]) -> Iterator[tuple[list[str], Path]]:
    """Links kill-the-clipboard made for ``specs``, served until the block ends; and the CA."""
    node = require_ktc()
    ca, cert, key = certificates(tmp_path)
    spec_file = tmp_path / "links.json"
    spec_file.write_text(json.dumps({"links": specs}))
    server = subprocess.Popen(
        [node, str(NODE_DIR / "interop" / "shl-issue.mjs"), str(cert), str(key), str(spec_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=NODE_DIR,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, "the kill-the-clipboard server did not start"
        yield json.loads(line)["links"], ca
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_links_kill_the_clipboard_creates_are_imported(tmp_path: Path) -> None:
    specs = [
        {"label": "From the clinic", "bundle": fhir_bundle("Abara", "Chidi")},
        {"flag": "P", "passcode": "4711", "bundle": fhir_bundle("Brandt", "Ilse")},
        {"flag": "L", "location": True, "expiresIn": 3600, "bundle": fhir_bundle("Cole", "Ana")},
    ]
    passcode = tmp_path / "passcode"
    passcode.write_text("4711\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("0000\n")
    with ktc_links(tmp_path, specs) as (links, ca):
        patient = trusting(tmp_path, "patient", ca)
        plain = patient("import", links[0], "--recipient", "Marisol", "--json")
        assert plain.code == 0, plain.err
        refused = patient("import", links[1], "--recipient", "Marisol", "--passcode-file", wrong)
        assert refused.code == 1 and "2 attempt(s) left" in refused.err
        with_code = patient("import", links[1], "--recipient", "Marisol", "--json",
                            "--passcode-file", passcode)
        assert with_code.code == 0, with_code.err
        located = patient("import", f"https://viewer.example/#{links[2]}",
                          "--recipient", "Marisol", "--json")
        assert located.code == 0, located.err
    records = patient.ok("record", "list", "--json").json()["records"]
    assert [r["label"] for r in records] == ["From the clinic", "SMART Health Link",
                                             "SMART Health Link"]
    assert all(r["type"] == "fhir" for r in records)
    opened = json.loads(patient.ok("record", "show", records[0]["id"]).out)
    assert opened["entry"][0]["resource"]["name"][0]["family"] == "Abara"
