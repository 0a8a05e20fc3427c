"""Time: the injectable clock, and parsing times people type (durations, ISO 8601 instants)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .errors import UsageError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `15m`, `24h`, `7d`, `2w` as a timedelta; None if ``text`` is not a duration."""
    match = _DURATION.match(text)
    if match is None:
        return None
    try:
        return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise UsageError(f"the duration {text.strip()} is too long", "give e.g. 7d") from None


def parse_instant(text: str, what: str = "a time") -> datetime:
    """An ISO 8601 date-time with a zone (Z or ±HH:MM); UsageError otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"{what} is not an ISO 8601 date-time", "write it like 2026-12-31T18:00:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise UsageError(f"{what} has no time zone", "add Z or an offset such as +01:00")
    return moment


def is_date_only(text: str) -> bool:
    """True for a calendar date with no time (`2026-12-20`), which means the end of that day."""
    return _DATE_ONLY.match(text) is not None


def end_of_day(text: str, zone: tzinfo | None = None) -> datetime:
    """The last second of the date ``text`` in ``zone`` (default: this machine's time zone)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError("--expires is not a valid date", "write it like 2026-12-20") from None
    moment = datetime.combine(day, time(23, 59, 59))
    return moment.replace(tzinfo=zone) if zone is not None else moment.astimezone()


def parse_expiry(text: str, now: datetime, max_days: int, zone: tzinfo | None = None) -> datetime:
    """When a grant or consent ends: a duration from ``now``, an instant, or a date alone
    (the end of that day in ``zone``, by default this machine's time zone).

    Refuses (UsageError) an expiry that is not in the future or is more than ``max_days`` away.
    """
    duration = parse_duration(text)
    try:
        if duration is not None:
            expires = now + duration
        elif is_date_only(text):
            expires = end_of_day(text, zone)
        else:
            expires = parse_instant(text, "--expires")
        too_far = expires - now > timedelta(days=max_days)
    except OverflowError:
        too_far, expires = True, now
    if not too_far and expires <= now:
        raise UsageError("the expiry is not in the future", "give e.g. --expires 7d")
    if too_far:
        raise UsageError(
            f"the expiry is more than {max_days} days away",
            "choose a shorter expiry, or raise `max-expiry-days` with `healthwallet config set`",
        )
    return expires
