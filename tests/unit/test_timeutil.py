"""Times people type: a date alone in --expires means the end of that day, in their zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from healthwallet.errors import UsageError
from healthwallet.timeutil import is_date_only, parse_expiry

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LISBON_WINTER = timezone(timedelta(0))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


@pytest.mark.parametrize("zone", [LISBON_WINTER, NEW_YORK_WINTER, timezone(timedelta(hours=14))])
def test_a_date_alone_is_the_last_second_of_that_day_in_the_given_zone(zone: timezone) -> None:
    expires = parse_expiry("2026-12-20", NOW, 365, zone)
    assert expires == datetime(2026, 12, 20, 23, 59, 59, tzinfo=zone)


def test_durations_and_instants_are_unchanged() -> None:
    assert parse_expiry("7d", NOW, 365) == NOW + timedelta(days=7)
    assert parse_expiry("2026-12-20T10:00:00Z", NOW, 365) == datetime(2026, 12, 20, 10,
                                                                     tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01"])
def test_an_impossible_date_is_a_usage_error(text: str) -> None:
    assert is_date_only(text)
    with pytest.raises(UsageError):
        parse_expiry(text, NOW, 365, UTC)


def test_a_past_day_is_refused() -> None:
    with pytest.raises(UsageError, match="not in the future"):
        parse_expiry("2026-12-03", NOW, 365, UTC)
