"""IANA time-zone names as the platform accepts them from clients."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, StringConstraints

# Files of the zone directory that name no place: the server's own local time (whatever the
# machine is set to; PostgreSQL does not know it either).
NOT_ZONES = frozenset({"localtime"})
# The longest name accepted (the zone database's longest is 32 characters): the request
# schemas' bound and the columns' length (auth's profile, todo's tasks).
TIME_ZONE_MAX = 64


def iana_zone(name: str) -> str:
    """Only names the zone database knows; ``ZoneInfo`` also refuses paths and odd keys."""
    try:
        if name in NOT_ZONES:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a known IANA time zone (e.g. 'Europe/Paris', 'UTC')") from None
    return name


TimeZoneName = Annotated[
    str, StringConstraints(min_length=1, max_length=TIME_ZONE_MAX), AfterValidator(iana_zone)
]


def local_or_as_given(moment: datetime, tz: tzinfo) -> datetime:
    """``moment`` in ``tz``, or as given where its local time would leave the calendar: the
    API takes instants up to the end of 9999 in UTC (and writes them in UTC), a local year
    10000 in a zone ahead of it."""
    try:
        return moment.astimezone(tz)
    except OverflowError:
        return moment
