"""How guessable a new keystore passphrase is (zxcvbn), so trivially guessable ones are refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# zxcvbn scores 0..4; 0 and 1 mean fewer than about 10^6 guesses ("too" and "very" guessable),
# which an offline attacker against a stolen identity.key tries in well under a day.
WEAK_BELOW = 2
# zxcvbn's matching is superlinear in the input; a passphrase longer than this is not
# trivially guessable for our purpose, so only its start is estimated.
_ESTIMATED_CHARS = 100


@dataclass(frozen=True)
class Strength:
    """zxcvbn's verdict on a passphrase: a 0..4 score and its plain-words warning."""

    score: int
    warning: str

    @property
    def weak(self) -> bool:
        """True when the passphrase is trivially guessable."""
        return self.score < WEAK_BELOW


def estimate(passphrase: str, context: Sequence[str] = ()) -> Strength:
    """The strength of ``passphrase``; ``context`` lists words an attacker would try first."""
    from zxcvbn import zxcvbn  # imported here: only commands that set a passphrase pay for it

    verdict = zxcvbn(passphrase[:_ESTIMATED_CHARS], user_inputs=list(context))
    warning = str(verdict.get("feedback", {}).get("warning") or "")
    return Strength(score=int(verdict["score"]), warning=warning)
