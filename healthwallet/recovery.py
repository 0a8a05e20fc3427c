"""The recovery phrase: the identity seed as a 24-word BIP-39 English mnemonic.

The 32-byte seed is the BIP-39 entropy (BIP-39 "Generating the mnemonic"): 256 bits plus an
8-bit checksum (the first byte of SHA-256 of the entropy) make 24 words of 11 bits each. The
BIP-39 "mnemonic to seed" PBKDF2 step is not used: the words map back to the entropy, and the
entropy *is* the identity seed, so the phrase recreates the same DID and vault key.

Errors never quote the words: they name a word only by its position.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import cache
from pathlib import Path

from mnemonic import Mnemonic

from .errors import NotFoundError, UsageError
from .keys import SEED_BYTES

PHRASE_WORDS = 24
_HINT = "check the words against what you wrote down (24 words, BIP-39 English list)"


@cache
def _english() -> Mnemonic:
    return Mnemonic("english")


def phrase_from_seed(seed: bytes) -> str:
    """The 24-word phrase (single spaces) for a 32-byte identity seed."""
    if len(seed) != SEED_BYTES:
        raise ValueError("an identity seed is 32 bytes")
    return str(_english().to_mnemonic(seed))


def normalize_phrase(text: str) -> list[str]:
    """The words of a phrase as typed: NFKD, lower case, any whitespace or numbering removed."""
    words = []
    for token in unicodedata.normalize("NFKD", text).lower().split():
        token = token.strip(".,;:")
        if not token or token.isdigit():
            continue  # "1. abandon 2. ability" as printed by `key export --phrase`
        words.append(token)
    return words


def seed_from_phrase(text: str) -> bytes:
    """The identity seed of a recovery phrase; UsageError if it is not a valid 24-word phrase."""
    words = normalize_phrase(text)
    if len(words) != PHRASE_WORDS:
        raise UsageError(
            f"a recovery phrase has {PHRASE_WORDS} words; this one has {len(words)}", _HINT
        )
    wordlist = _english().wordlist
    index = {word: i for i, word in enumerate(wordlist)}
    bits = 0
    for position, word in enumerate(words, start=1):
        if word not in index:
            raise UsageError(f"word {position} of the recovery phrase is not a BIP-39 word", _HINT)
        bits = (bits << 11) | index[word]
    # 24 words = 264 bits: 256 bits of entropy, then an 8-bit checksum (BIP-39).
    entropy = (bits >> 8).to_bytes(SEED_BYTES, "big")
    checksum = bits & 0xFF
    if hashlib.sha256(entropy).digest()[0] != checksum:
        raise UsageError(
            "the recovery phrase's checksum does not match (a word is wrong or out of order)",
            _HINT,
        )
    return entropy


def read_phrase_file(path: Path) -> str:
    """The phrase text inside a file (all of it; numbering and line breaks are fine)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(
            "the recovery phrase file does not exist", "check the path given to --phrase-file"
        ) from None
    except (OSError, UnicodeDecodeError):
        raise UsageError(
            "cannot read the recovery phrase file", "it must be a readable UTF-8 text file"
        ) from None
