"""Benchmark: what resolving a did:web recipient adds to `healthwallet grant`.

The same one-record grant, issued by the CLI to the doctor's did:key and to the doctor's
did:web (its DID document served over HTTPS by a server on 127.0.0.1, with a test CA trusted
through SSL_CERT_FILE). The baseline is the did:key grant in the same run.

Target: a did:web grant takes at most 1.5x the did:key grant on a local server (the fetch is
one HTTPS round trip; it must not dominate a grant).

Run:  .venv/bin/python benchmarks/bench_didweb.py [--repeat 9]
Prints JSON.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cli"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import median_of_commands, report  # noqa: E402
from test_didweb_cli import serve_https  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        root = tmp / "www"
        (root / "dr").mkdir(parents=True)
        server, ca_file = serve_https(root, tmp)

        def env(who: str) -> dict[str, str]:
            return dict(
                os.environ,
                HEALTHWALLET_HOME=str(tmp / who),
                HEALTHWALLET_PASSPHRASE="benchmark passphrase",
                HEALTHWALLET_TEST_INSECURE_KDF="1",
                PYTEST_CURRENT_TEST="benchmark",
                SSL_CERT_FILE=str(ca_file),
            )

        def cli(who: str, *argv: str) -> str:
            command = [sys.executable, "-m", "healthwallet", *argv]
            done = subprocess.run(command, env=env(who), capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            return done.stdout

        for who in ("patient", "doctor"):
            cli(who, "init", "--keystore", "file")
        record = tmp / "labs.json"
        record.write_text('{"resourceType": "Observation", "status": "final"}')
        cli("patient", "record", "add", str(record))
        cli("patient", "config", "set", "allow-local-urls", "true")  # the server is on loopback
        did_web = f"did:web:localhost%3A{server.server_address[1]}:dr"
        cli("doctor", "config", "set", "did-web", did_web)
        (root / "dr" / "did.json").write_text(cli("doctor", "id", "--did-document"))
        did_key = cli("doctor", "id").strip()

        def grant_seconds(did: str) -> float:
            argv = [sys.executable, "-m", "healthwallet", "grant", did, "--type", "fhir"]
            argv += ["--expires", "1d", "--out", str(tmp / "g.hwgrant")]
            return median_of_commands(argv, args.repeat, env("patient"))

        key_s, web_s = grant_seconds(did_key), grant_seconds(did_web)
        server.shutdown()
    report(
        "didweb",
        {
            "grant_did_key_s": round(key_s, 3),
            "grant_did_web_s": round(web_s, 3),
            "ratio": round(web_s / key_s, 2),
            "target": "<= 1.5",
        },
    )


if __name__ == "__main__":
    main()
