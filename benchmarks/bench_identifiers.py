"""Benchmark: the cost of the largest identifier healthwallet will decode.

Base58 decoding is quadratic in its input, so identifiers are capped before they are decoded
(healthwallet/limits.py). This measures, in the same run:

- a real did:key (``keys.ed25519_from_did``: the baseline);
- the longest base58 text ``keys.b58decode`` accepts (``limits.MAX_BASE58_CHARS``);
- refusing a million-character did:key (the attack from issue 9: minutes of decoding before
  the cap);
- for scale, the decoder with the cap lifted on 10 000 and 20 000 characters, and the
  million-character time that quadratic growth implies.

Target: the largest accepted base58 text decodes in at most 10x the time of a real did:key
(both are microseconds), and a million-character did:key is refused in under 10 ms.

Run:  .venv/bin/python benchmarks/bench_identifiers.py [--repeat 2000]
Prints JSON.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import best_of, report  # noqa: E402

from healthwallet import keys, limits  # noqa: E402
from healthwallet.errors import UsageError  # noqa: E402

REAL_DID = keys.Identity(bytes(range(32))).did
HUGE_DID = "did:key:z6Mk" + "z" * 1_000_000


def _each(fn: Callable[[], object], repeat: int) -> float:
    """Seconds per call of ``fn``: best of 5 batches of ``repeat`` calls."""

    def batch() -> None:
        for _ in range(repeat):
            fn()

    return best_of(batch) / repeat


def _refuse_huge() -> None:
    try:
        keys.ed25519_from_did(HUGE_DID)
    except UsageError:
        return
    raise SystemExit("a million-character did:key was accepted")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    largest = "z" * limits.MAX_BASE58_CHARS
    real_s = _each(lambda: keys.ed25519_from_did(REAL_DID), args.repeat)
    b58_real_s = _each(lambda: keys.b58decode(REAL_DID[len("did:key:z") :]), args.repeat)
    b58_largest_s = _each(lambda: keys.b58decode(largest), args.repeat)
    huge_s = _each(_refuse_huge, max(1, args.repeat // 100))
    uncapped = {
        n: best_of(lambda n=n: keys.b58decode("z" * n, max_chars=n), 3) for n in (10_000, 20_000)
    }
    report(
        "identifiers",
        {
            "did_key_parse_us": round(real_s * 1e6, 2),
            "base58_real_did_key_us": round(b58_real_s * 1e6, 2),
            "base58_largest_accepted_chars": limits.MAX_BASE58_CHARS,
            "base58_largest_accepted_us": round(b58_largest_s * 1e6, 2),
            "ratio_largest_vs_real": round(b58_largest_s / b58_real_s, 2),
            "refuse_1mb_did_key_ms": round(huge_s * 1e3, 3),
            "uncapped_base58_10k_chars_ms": round(uncapped[10_000] * 1e3, 1),
            "uncapped_base58_20k_chars_ms": round(uncapped[20_000] * 1e3, 1),
            "uncapped_base58_1mb_implied_s": round(uncapped[20_000] * 50**2),
            "target": "ratio <= 10, refuse_1mb_did_key_ms < 10",
        },
    )


if __name__ == "__main__":
    main()
