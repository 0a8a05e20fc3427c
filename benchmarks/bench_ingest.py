"""Benchmark: `research ingest` at scale, through the CLI (time per share, peak RSS of the CLI).

1. Many patients: 100, 1,000 and 10,000 patients' shares (one share each, ~15 resources,
   de-identified with the safe-harbor policy, consent signed, own status list), ingested with
   `healthwallet research ingest --k 5`. Reports wall time per share and the CLI's peak RSS
   at each size, and the growth from each size to the next (ratios: 1.0 = linear time, flat
   memory).
2. Large shares: one share of ~32 MiB and one of ~256 MiB (the format's largest dataset) of
   small Observations (~0.5 KiB each), ingested alone. Reports the CLI's peak RSS, against a
   baseline measured in the same run: the CLI ingesting one ordinary share.

Shares are built in-process with the project's own functions (prepare_dataset, IssuedGrants,
issue_share), in parallel (--jobs), and cached under --cache (reused while the research
wallet there is the same). The research wallet is a file keystore created with the test KDF
cost (HEALTHWALLET_TEST_INSECURE_KDF with PYTEST_CURRENT_TEST set), so Argon2id's 256 MiB does
not hide ingest's own memory in the peak RSS figure.

Measured 2026-12-04 on the 2-core dev machine (shared with other jobs), CLI baseline (one
share: start-up, unlock, ingest) 1.4 s and 149 MiB:

  patients   ms/share   peak RSS   growth from previous size (10x patients)
  100        35.2       174 MiB
  1,000      33.4       198 MiB    time/share 0.95x, peak RSS 1.14x
  10,000     28.2       247 MiB    time/share 0.85x, peak RSS 1.24x (DuckDB filling its 64 MiB cap)
  32 MiB share (60,597 resources)   19 s, peak 214 MiB (65 MiB over baseline; was ~600 MiB)
  256 MiB share (484,825 resources) 98 s, peak 236 MiB (87 MiB over baseline)

Most of the time per share is verifying the consent and its status list (didkit).

Run:  .venv/bin/python benchmarks/bench_ingest.py [--sizes 100,1000,10000] [--big 32,256]
                                                  [--jobs 2] [--cache /tmp/hw-bench-ingest]
Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "deid"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import report  # noqa: E402

from healthwallet import shares  # noqa: E402
from healthwallet.deid import load_policy  # noqa: E402
from healthwallet.issued import IssuedGrants  # noqa: E402
from healthwallet.keys import Identity  # noqa: E402

STUDY = "bench-ingest"
ISSUED = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) - timedelta(hours=1)
EXPIRES = ISSUED + timedelta(days=365)
PASSPHRASE = "bench ingest passphrase"


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHWALLET_")}
    env.update(
        {
            "HEALTHWALLET_HOME": str(cache / "research-wallet"),
            "HEALTHWALLET_PASSPHRASE": PASSPHRASE,
            "HEALTHWALLET_TEST_INSECURE_KDF": "1",
            "PYTEST_CURRENT_TEST": "bench_ingest",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _cli(cache: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "healthwallet", *args], env=_env(cache), capture_output=True
    )


def research_did(cache: Path) -> str:
    """The research wallet's DID (created on first use)."""
    if not (cache / "research-wallet").exists():
        created = _cli(cache, "init", "--keystore", "file")
        if created.returncode:
            raise SystemExit(created.stderr.decode())
    return _cli(cache, "id").stdout.decode().strip()


def _issue(path: Path, home: Path, patient: Identity, recipient: str, data: Any) -> None:
    registry = IssuedGrants(home, patient)
    slot = registry.reserve(recipient, EXPIRES)
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as out:
        shares.issue_share(
            out,
            patient,
            recipient,
            data,
            study=STUDY,
            purpose="bench",
            policy=load_policy("safe-harbor"),
            expires=EXPIRES,
            credential_status=slot.entry,
            now=ISSUED,
            share_id=slot.grant_id,
        )
    registry.confirm_consent(slot, STUDY)
    tmp.rename(path)


def _make_patients(task: tuple[str, str, list[int]]) -> int:
    """Worker: build the share files of the given patient numbers (skips those cached)."""
    from synth import make_patient

    cache, recipient, numbers = Path(task[0]), task[1], task[2]
    policy = load_policy("safe-harbor")
    for number in numbers:
        path = cache / "shares" / f"p{number:05d}.hwshare"
        if path.exists():
            continue
        rng = random.Random(number)
        person = make_patient(
            rng,
            gender=rng.choice(["female", "male"]),
            age=rng.choice([30, 50, 70]),
            zip5=rng.choice(["02139", "97205"]),
            old_address=False,
        )
        patient = Identity(hashlib.sha256(f"bench-ingest-patient-{number}".encode()).digest())
        dataset = shares.prepare_dataset(
            [("0" * 16, json.dumps(person.bundle).encode())],
            policy,
            shares.pseudonym_keys(patient, STUDY),
            now=ISSUED,
        )
        _issue(path, cache / "homes" / f"p{number:05d}", patient, recipient, dataset)
    return len(numbers)


class _RawDataset(shares.Dataset):
    """A dataset given as NDJSON bytes (so a 256 MiB one is not held as dicts)."""

    def __init__(self, ndjson: bytes, categories: list[str], count: int) -> None:
        super().__init__([{"resourceType": c} for c in categories])
        self._ndjson, self._categories, self._count = ndjson, categories, count

    @property
    def categories(self) -> list[str]:
        return self._categories

    def ndjson(self) -> bytes:
        return self._ndjson


def big_share(cache: Path, recipient: str, mib: int) -> Path:
    """A share of about ``mib`` MiB of ~0.5 KiB Observations (cached)."""
    path = cache / f"big-{mib}.hwshare"
    if path.exists():
        return path
    limit = min(mib * 2**20, shares.MAX_DATASET_BYTES) - 4096
    patient = {"resourceType": "Patient", "id": "big", "gender": "female", "birthDate": "1970"}
    lines = [json.dumps(patient, separators=(",", ":")).encode()]
    size, number = len(lines[0]) + 1, 0
    while True:
        obs = {
            "resourceType": "Observation",
            "id": f"o{number:08d}",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7",
                                 "display": "Glucose [Mass/volume] in Serum or Plasma"}]},
            "subject": {"reference": "Patient/big"},
            "effectiveDateTime": f"{2000 + number % 25}",
            "valueQuantity": {"value": 70 + number % 90, "unit": "mg/dL",
                              "system": "http://unitsofmeasure.org", "code": "mg/dL"},
            "referenceRange": [{"low": {"value": 70, "unit": "mg/dL"},
                                "high": {"value": 99, "unit": "mg/dL"}}],
        }
        line = json.dumps(obs, separators=(",", ":")).encode()
        if size + len(line) + 1 > limit:
            break
        lines.append(line)
        size += len(line) + 1
        number += 1
    data = _RawDataset(b"\n".join(lines) + b"\n", ["Observation", "Patient"], len(lines))
    del lines
    identity = Identity(hashlib.sha256(f"bench-big-{mib}".encode()).digest())
    _issue(path, cache / "homes" / f"big-{mib}", identity, recipient, data)
    return path


def measure(cache: Path, files: list[Path], k: int) -> dict[str, Any]:
    """Wall time and peak RSS of one `research ingest` CLI run over ``files``."""
    out = Path(tempfile.mkdtemp(prefix="bench-ingest-out-")) / "dataset"
    wrapper = (
        "import resource, subprocess, sys, time;"
        "t = time.perf_counter();"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE);"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
        " p.returncode);"
        "sys.stdout.write(p.stdout.decode())"
    )
    argv = [sys.executable, "-m", "healthwallet", "research", "ingest", *map(str, files),
            "--k", str(k), "--out", str(out), "--json"]
    done = subprocess.run([sys.executable, "-c", wrapper, *argv], env=_env(cache),
                          capture_output=True, check=True)
    first, _, rest = done.stdout.decode().partition("\n")
    seconds, rss_kib, code = first.split()
    result = json.loads(rest) if rest.strip() else {}
    shutil.rmtree(out.parent, ignore_errors=True)
    sys.stderr.write(f"{len(files)} file(s): {first}\n")  # progress, in case a later run fails
    sys.stderr.flush()
    if int(code) not in (0, 1) or result.get("accepted") != len(files):
        raise SystemExit(f"ingest failed ({code}): {rest[:500]} {done.stderr[-2000:]!r}")
    return {
        "seconds": float(seconds),
        "peak_rss_mib": round(int(rss_kib) / 1024, 1),
        "resources": result.get("resources"),
        "outcome": result.get("outcome"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--big", default="32,256")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hw-bench-ingest"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bigs = [int(s) for s in args.big.split(",") if s]
    cache: Path = args.cache
    (cache / "shares").mkdir(parents=True, exist_ok=True)
    recipient = research_did(cache)

    start = time.perf_counter()
    most = max(sizes, default=1)
    numbers = list(range(most))
    chunks = [numbers[i :: args.jobs * 8] for i in range(args.jobs * 8)]
    with ProcessPoolExecutor(args.jobs) as pool:
        list(pool.map(_make_patients, [(str(cache), recipient, c) for c in chunks]))
    generate_s = time.perf_counter() - start
    files = [cache / "shares" / f"p{n:05d}.hwshare" for n in numbers]

    baseline = measure(cache, files[:1], k=1)
    figures: dict[str, Any] = {
        "generate_shares_s": round(generate_s, 1),
        "baseline_one_share": baseline,
        "patients": {},
    }
    previous: tuple[int, dict[str, Any]] | None = None
    for size in sizes:
        run = measure(cache, files[:size], k=5)
        run["ms_per_share"] = round(run["seconds"] / size * 1000, 2)
        if previous is not None:
            before_size, before = previous
            run["growth_from_" + str(before_size)] = {
                "patients_x": size / before_size,
                "time_per_share_x": round(run["ms_per_share"] / before["ms_per_share"], 2),
                "peak_rss_x": round(run["peak_rss_mib"] / before["peak_rss_mib"], 2),
            }
        figures["patients"][str(size)] = run
        previous = (size, run)

    figures["large_shares"] = {}
    for mib in bigs:
        path = big_share(cache, recipient, mib)
        run = measure(cache, [path], k=1)
        size = path.stat().st_size
        run["share_mib"] = round(size / 2**20, 1)
        run["peak_rss_over_baseline_mib"] = round(
            run["peak_rss_mib"] - baseline["peak_rss_mib"], 1
        )
        run["peak_rss_over_share_size"] = round(run["peak_rss_mib"] / (size / 2**20), 2)
        figures["large_shares"][str(mib)] = run
    report("ingest", figures)


if __name__ == "__main__":
    main()
