"""The one error family: every failure the user can see is a HealthWalletError.

Each class carries its documented exit code and a default hint. The CLI turns an
error into two lines on stderr (``error: …`` / ``hint: …``) and exits with the code.
Messages must never contain secrets or health data: name things by id, never by
content, label or file name.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERIFY = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_KEYSTORE = 4
EXIT_NETWORK = 5
EXIT_INTERNAL = 70


class HealthWalletError(Exception):
    """Base of every error healthwallet reports to a user."""

    exit_code: int = EXIT_INTERNAL
    default_hint: str = "run again with --debug and report the trace"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint


class VerificationError(HealthWalletError):
    """A signature, digest, commitment, validity window or status check failed."""

    exit_code = EXIT_VERIFY
    default_hint = "the data was changed or is no longer valid; ask the sender for a fresh copy"


class AccessDeniedError(HealthWalletError):
    """The caller is not allowed to do this (for example: not the grant's recipient)."""

    exit_code = EXIT_VERIFY
    default_hint = "check that you are using the wallet the data was addressed to"


class UsageError(HealthWalletError):
    """A bad argument, a bad input file, or a request that makes no sense."""

    exit_code = EXIT_USAGE
    default_hint = "see `healthwallet --help`"


class BadInputError(UsageError):
    """An input file is not what it claims to be (not JSON, truncated, wrong format)."""

    default_hint = "check the file you passed"


class NotFoundError(HealthWalletError):
    """A record, grant, wallet or file that was asked for does not exist."""

    exit_code = EXIT_NOT_FOUND
    default_hint = "list what exists with `healthwallet record list`"


class KeystoreError(HealthWalletError):
    """The identity cannot be unlocked: keystore missing, locked, or wrong passphrase."""

    exit_code = EXIT_KEYSTORE
    default_hint = "set HEALTHWALLET_PASSPHRASE or pass --passphrase-file"


class NetworkError(HealthWalletError):
    """A ledger, status list host or other remote part could not be reached."""

    exit_code = EXIT_NETWORK
    default_hint = "check the URL and your connection, then try again"


class LedgerUnavailableError(NetworkError):
    """The ledger backend could not be reached; nothing was lost."""

    default_hint = "the batch stays pending; run `healthwallet anchor` again later"


class StorageError(HealthWalletError):
    """The wallet home cannot be written (full disk, read-only, permissions)."""

    exit_code = EXIT_USAGE
    default_hint = "check free space and permissions of the wallet home"


class InternalError(HealthWalletError):
    """A bug: something that should not happen did."""

    exit_code = EXIT_INTERNAL
