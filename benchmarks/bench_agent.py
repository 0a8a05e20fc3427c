"""Ten commands in a row on a file-keystore wallet, with and without the unlock agent (issue 11).

Run: .venv/bin/python benchmarks/bench_agent.py [--runs N]

Real Argon2id cost (the test-only KDF is off here). Without the agent, each command derives
the keystore key from HEALTHWALLET_PASSPHRASE; with it, `healthwallet unlock` derives it once
and the ten commands run with no passphrase at all. Both sequences are timed as whole
processes, in the same run; the figures are medians of --runs. Goal: with the agent, the ten
commands (and the unlock itself added) take well under the time they take without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import report

ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = "bench agent passphrase"


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHWALLET_")}
    env.pop("PYTEST_CURRENT_TEST", None)
    (base / "run").mkdir(mode=0o700)
    env.update(
        {
            "HEALTHWALLET_HOME": str(base / "wallet"),
            "XDG_RUNTIME_DIR": str(base / "run"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
    )
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "healthwallet", *args],
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )


def _commands(record_id: str, out: Path) -> list[list[str]]:
    return [
        ["record", "list"],
        ["record", "list", "--json"],
        ["record", "show", record_id, "--summary"],
        ["record", "show", record_id, "--out", str(out)],
        ["record", "tag", record_id, "bench"],
        ["record", "untag", record_id, "bench"],
        ["doctor"],
        ["grants"],
        ["log"],
        ["grants", "--json"],
    ]


def _ten(env: dict[str, str], commands: list[list[str]]) -> float:
    start = time.perf_counter()
    for args in commands:
        _cli(env, *args)
    return time.perf_counter() - start


def main() -> None:
    """Time both sequences and print one JSON object."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-bench-") as tmp:
        base = Path(tmp)
        env = _env(base)
        with_passphrase = dict(env, HEALTHWALLET_PASSPHRASE=PASSPHRASE)
        _cli(with_passphrase, "--allow-weak-passphrase", "init", "--keystore", "file")
        record = base / "obs.json"
        record.write_text(
            json.dumps(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "Hemoglobin"},
                    "valueQuantity": {"value": 13.2, "unit": "g/dL"},
                }
            )
        )
        added = _cli(with_passphrase, "record", "add", str(record), "--json").stdout
        record_id = json.loads(added)["records"][0]["id"]
        commands = _commands(record_id, base / "out.json")
        without, unlocks, with_agent = [], [], []
        try:
            for _ in range(args.runs):
                without.append(_ten(with_passphrase, commands))
                (base / "out.json").unlink()
                start = time.perf_counter()
                _cli(with_passphrase, "unlock", "--for", "10m")
                unlocks.append(time.perf_counter() - start)
                with_agent.append(_ten(env, commands))  # no passphrase anywhere
                (base / "out.json").unlink()
                _cli(env, "lock")
        finally:
            subprocess.run(
                [sys.executable, "-m", "healthwallet", "lock"], env=env, capture_output=True
            )
    no_agent = statistics.median(without)
    agent = statistics.median(with_agent)
    unlock = statistics.median(unlocks)
    report(
        "agent",
        {
            "runs": args.runs,
            "commands": [" ".join(c) for c in commands],
            "ten_commands_without_agent_s": round(no_agent, 3),
            "ten_commands_with_agent_s": round(agent, 3),
            "unlock_once_s": round(unlock, 3),
            "speedup_ten_commands": round(no_agent / agent, 2),
            "speedup_including_unlock": round(no_agent / (agent + unlock), 2),
        },
    )


if __name__ == "__main__":
    main()
