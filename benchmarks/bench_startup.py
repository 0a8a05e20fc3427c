"""Start-up of full commands against `python -c "import typer"`, measured in the same run.

Cases (target: each at most 1.5x the baseline, medians of interleaved runs):
1. `healthwallet config list` in an empty home;
2. `healthwallet verify GRANT --status-list FILE` of a one-record grant, with no wallet.
For reference, the floor of case 2: `python -c "import typer, asyncio, didkit"` (verify checks
two proofs with didkit, whose calls run on an asyncio loop).
The `--version` fast path is not a case: it never builds the app.

Two layouts are measured, because start-up depends on how the package is installed:
- ``editable``: this interpreter as it is (`pip install -e .` adds a meta-path finder to every
  start, the baseline's too);
- ``regular``: a throw-away venv whose ``.pth`` files put the same site-packages and this
  checkout on ``sys.path`` as plain directories, as a wheel install does (no finder).

Run:  .venv/bin/python benchmarks/bench_startup.py [--repeat 21] [--layout editable|regular|both]
Add ``--importtime`` to print the 25 costliest imports of each command (``python -X importtime``),
and ``--code DIR`` to time another checkout (e.g. ``git archive`` of an older commit) with the
same grant and the same interpreter.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import report

ROOT = Path(__file__).resolve().parent.parent


def make_grant(work: Path) -> tuple[Path, Path]:
    """A one-record grant and the status list file that covers it."""
    from healthwallet.grants import GrantRecord
    from healthwallet.issued import IssuedGrants
    from healthwallet.keys import Identity

    patient = Identity(hashlib.sha256(b"bench-startup-patient").digest())
    doctor = Identity(hashlib.sha256(b"bench-startup-doctor").digest())
    now = datetime.now(UTC).replace(microsecond=0)
    body = b'{"resourceType": "Observation", "status": "final"}'
    salt = os.urandom(32)

    def opener() -> Any:
        import contextlib
        import io

        return contextlib.nullcontext(io.BytesIO(body))

    record = GrantRecord(
        id="r0001",
        media_type="application/fhir+json",
        name="obs.json",
        salt=salt,
        commitment=hashlib.sha256(salt + body).hexdigest(),
        size=len(body),
        open=opener,
    )
    grant = work / "small.hwgrant"
    registry = IssuedGrants(work / "patient", patient, clock=lambda: now)
    with grant.open("wb") as handle:
        registry.issue(
            handle,
            [record],
            doctor.did,
            purpose="benchmark",
            expires=now + timedelta(days=1),
            fmt="ldp",
            spool_dir=work,
        )
    status = next((work / "patient" / "status").glob("*.json"))
    return grant, status


def regular_python(work: Path, code: Path) -> str:
    """A venv that sees the same packages and this checkout as plain sys.path entries."""
    venv = work / "regular-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    Path(purelib, "shared.pth").write_text(f"{code}\n{shared}\n", encoding="utf-8")
    return str(python)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) milliseconds of one run. CPU time is what start-up costs
    the machine; it stays meaningful when other processes share the cores, wall time does not.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=False, capture_output=True, cwd=env["BENCH_CWD"])
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def measure(python: str, cases: dict[str, list[str]], env: dict[str, str], repeat: int) -> Any:
    """Interleaved runs (baseline, case, baseline, case …), so load hits both alike."""
    baseline = [python, "-c", "import typer"]
    figures: dict[str, Any] = {}
    for name, args in cases.items():
        argv = [python, "-m", "healthwallet", *args]
        check = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=env["BENCH_CWD"])
        if check.returncode != 0:
            raise SystemExit(f"{name} failed ({check.returncode}): {check.stderr}")
        ours, base = [], []
        for _ in range(repeat):
            base.append(run_once(baseline, env))
            ours.append(run_once(argv, env))
        figures[name] = {}
        for kind, index in (("wall", 0), ("cpu", 1)):
            mine = statistics.median(run[index] for run in ours)
            theirs = statistics.median(run[index] for run in base)
            figures[name][f"{kind}_ms"] = round(mine, 1)
            figures[name][f"import_typer_{kind}_ms"] = round(theirs, 1)
            figures[name][f"{kind}_ratio"] = round(mine / theirs, 2)
    # What verify cannot do without: checking a proof runs didkit on an asyncio loop.
    floor, base = [], []
    for _ in range(repeat):
        base.append(run_once(baseline, env)[1])
        floor.append(run_once([python, "-c", "import typer, asyncio, didkit"], env)[1])
    figures["floor: import typer, asyncio, didkit"] = {
        "cpu_ms": round(statistics.median(floor), 1),
        "cpu_ratio": round(statistics.median(floor) / statistics.median(base), 2),
    }
    figures["target"] = "ratio <= 1.5"
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    return figures


def importtime(python: str, args: list[str], env: dict[str, str]) -> None:
    err = subprocess.run(
        [python, "-X", "importtime", "-m", "healthwallet", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=env["BENCH_CWD"],
    ).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    sys.stdout.write(f"-- importtime (cumulative us) of {' '.join(args[:2])}\n")
    for cumulative, name in sorted(rows, reverse=True)[:25]:
        sys.stdout.write(f"{cumulative:>9} {name}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--layout", choices=("editable", "regular", "both"), default="both")
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to time")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hw-bench-startup-"))
    try:
        grant, status = make_grant(work)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # each layout says where the code comes from
        # Installed code runs from bytecode (pip compiles on install; typer's is compiled), so
        # the checkout is compiled too, and no run may skip its cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        compileall.compile_dir(str(args.code / "healthwallet"), quiet=1)
        env["HEALTHWALLET_HOME"] = str(work / "empty-home")
        # Not this checkout: `python -m` puts the working directory first on sys.path.
        env["BENCH_CWD"] = str(work)
        cases = {
            "config list": ["config", "list"],
            "verify (no wallet)": ["verify", str(grant), "--status-list", str(status)],
        }
        layouts: dict[str, tuple[str, dict[str, str]]] = {}
        if args.layout in ("editable", "both"):
            code = str(args.code.resolve())
            layouts["editable"] = (sys.executable, {**env, "PYTHONPATH": code})
        if args.layout in ("regular", "both"):
            layouts["regular"] = (regular_python(work, args.code.resolve()), env)
        for layout, (python, layout_env) in layouts.items():
            if args.importtime:
                for case in cases.values():
                    importtime(python, case, layout_env)
            figures = measure(python, cases, layout_env, args.repeat)
            report(f"startup ({layout} install) of {args.code}", figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
