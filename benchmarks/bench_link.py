"""Benchmark: time from `healthwallet link create` to a QR code, for 100 records, through the CLI.

The relay is `healthwallet relay serve` on 127.0.0.1 over TLS (a test CA, SQLite, no rate limit),
so the figure covers unlocking, reading and packing the records, encrypting the files, the
signed upload over TLS and writing the QR code (SVG and PNG). Baselines measured in the same
run on the same wallet: `record list --json` (unlock and read the index) and `grant` of the
same 100 records to a did:key (the other way to share them).

Run:  .venv/bin/python benchmarks/bench_link.py [--records 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "links"), str(HERE)]

from _util import median_of_commands, report  # noqa: E402
from shl_server import relay_serve  # noqa: E402

from healthwallet.keys import Identity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHWALLET_")}
        env.update(HOME=str(root), PYTHONPATH=str(HERE.parent))
        with relay_serve(root, env, "--rate", "0") as served:
            base = served.base
            env.update(HEALTHWALLET_HOME=str(root / "wallet"), HEALTHWALLET_PASSPHRASE="bench pass",
                       HEALTHWALLET_TEST_INSECURE_KDF="1", SSL_CERT_FILE=str(served.ca))
            hw = [sys.executable, "-m", "healthwallet"]
            subprocess.run([*hw, "init", "--keystore", "file"], check=True, env=env,
                           capture_output=True)
            subprocess.run([*hw, "config", "set", "allow-local-urls", "true"], check=True,
                           env=env, capture_output=True)
            inputs = root / "inputs"
            inputs.mkdir()
            for n in range(args.records):
                (inputs / f"obs-{n}.json").write_text(json.dumps({
                    "resourceType": "Observation", "status": "final", "id": f"o{n}",
                    "code": {"text": f"measurement {n}"},
                    "valueQuantity": {"value": n, "unit": "mg/dL"}}))
            subprocess.run([*hw, "record", "add", *sorted(inputs.iterdir()), "--tag", "bench"],
                           check=True, env=env, capture_output=True)
            create = [*hw, "link", "create", "--tag", "bench", "--relay", base, "--json"]
            svg = median_of_commands([*create, "--qr", str(root / "link.svg")], args.repeat, env)
            png = median_of_commands([*create, "--qr", str(root / "link.png")], args.repeat, env)
            listing = median_of_commands([*hw, "record", "list", "--json"], args.repeat, env)
            doctor = Identity(os.urandom(32)).did
            grant = median_of_commands([*hw, "grant", doctor, "--tag", "bench", "--expires", "7d",
                                        "--out", str(root / "bench.hwgrant")], args.repeat, env)
    report("link create to QR code", {
        "records": args.records,
        "link_create_qr_svg_s": round(svg, 3),
        "link_create_qr_png_s": round(png, 3),
        "record_list_s": round(listing, 3),
        "grant_s": round(grant, 3),
        "ratio_link_svg_to_grant": round(svg / grant, 2),
        "ratio_link_svg_to_record_list": round(svg / listing, 2),
    })


if __name__ == "__main__":
    main()
