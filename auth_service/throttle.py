"""Throttling of password guesses, after OWASP's authentication cheat sheet.

Each guess is counted under one or more keys before the password is checked: the counter is
raised atomically (``INSERT ... ON CONFLICT DO UPDATE ... WHERE failures < limit``) and a key at
its limit refuses the guess without hashing, so N parallel guesses can never all reach the
check. A guess that turns out right gives its count back. Counts decay: a key's window starts
at its first failure and everything in it is forgotten when it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.models import AttemptCounter, KnownAddress
from shared.errors import TooManyRequests

# Dead counters removed per new window (see ``_purge``).
PURGE_BATCH = 100


class LockedOut(
    TooManyRequests, code="login_locked", message="Too many failed attempts; try again later"
):
    """A limit of failed password attempts is reached: refused before the password is checked."""


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` failures under ``key_hash`` per ``window``."""

    key_hash: str
    limit: int
    window: timedelta


@dataclass(frozen=True)
class Reservation:
    """One failure counted in advance under a key, in the window that started then."""

    key_hash: str
    window_started_at: datetime


async def reserve(
    session: AsyncSession, limits: Sequence[Limit], now: datetime, *, retain: timedelta
) -> list[Reservation]:
    """Count one failure under every limit, or raise ``LockedOut`` when one is at its limit.

    The caller commits at once (before hashing), so concurrent guesses see each other; on
    ``LockedOut`` it rolls back, so a refused guess counts nowhere. ``retain`` is the longest
    window of any key: a counter older than that is dead, whatever its key.
    """
    reservations = []
    for limit in limits:
        started = col(AttemptCounter.window_started_at)
        expired = started <= now - limit.window
        statement = (
            insert(AttemptCounter)
            .values(key_hash=limit.key_hash, window_started_at=now, failures=1)
            .on_conflict_do_update(
                index_elements=[col(AttemptCounter.key_hash)],
                set_={
                    "failures": case((expired, 1), else_=col(AttemptCounter.failures) + 1),
                    "window_started_at": case((expired, now), else_=started),
                },
                where=or_(expired, col(AttemptCounter.failures) < limit.limit),
            )
            .returning(started)
        )
        window_started_at = (await session.exec(statement)).scalar_one_or_none()
        if window_started_at is None:
            raise LockedOut(retry_after=await _seconds_left(session, limit, now))
        reservations.append(Reservation(limit.key_hash, window_started_at))
    if any(reservation.window_started_at == now for reservation in reservations):
        await _purge(session, now - retain)
    return reservations


async def _purge(session: AsyncSession, before: datetime) -> None:
    """Delete a batch of counters whose window ended before ``before``.

    Every new window pays for removing up to ``PURGE_BATCH`` dead ones, so the table holds
    little more than the windows still running, however many keys an attacker makes up.
    """
    dead = (
        select(AttemptCounter.key_hash)
        .where(col(AttemptCounter.window_started_at) < before)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await session.exec(delete(AttemptCounter).where(col(AttemptCounter.key_hash).in_(dead)))


async def _seconds_left(session: AsyncSession, limit: Limit, now: datetime) -> int:
    result = await session.exec(
        select(AttemptCounter.window_started_at).where(AttemptCounter.key_hash == limit.key_hash)
    )
    ends = result.one() + limit.window
    return max(1, int((ends - now).total_seconds() + 0.999))


async def clear(session: AsyncSession, key_hash: str) -> None:
    """Forget every failure under a key (a success from that key's client)."""
    await session.exec(delete(AttemptCounter).where(col(AttemptCounter.key_hash) == key_hash))


async def give_back(session: AsyncSession, reservation: Reservation) -> None:
    """Return one reserved failure, if its window is still the current one."""
    await session.exec(
        update(AttemptCounter)
        .where(
            col(AttemptCounter.key_hash) == reservation.key_hash,
            col(AttemptCounter.window_started_at) == reservation.window_started_at,
            col(AttemptCounter.failures) > 0,
        )
        .values(failures=col(AttemptCounter.failures) - 1)
    )


async def is_known(
    session: AsyncSession, user_id: uuid.UUID, address_hash: str, since: datetime
) -> bool:
    result = await session.exec(
        select(KnownAddress.user_id).where(
            KnownAddress.user_id == user_id,
            KnownAddress.address_hash == address_hash,
            col(KnownAddress.last_success_at) > since,
        )
    )
    return result.first() is not None


async def forget_known(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Forget every address the account signed in from (its password changed)."""
    await session.exec(delete(KnownAddress).where(col(KnownAddress.user_id) == user_id))


async def remember(
    session: AsyncSession,
    user_id: uuid.UUID,
    address_hash: str,
    now: datetime,
    *,
    forget_before: datetime,
) -> None:
    """Record a successful sign-in from this address; the account's addresses unused since
    ``forget_before`` are forgotten."""
    await session.exec(
        delete(KnownAddress).where(
            col(KnownAddress.user_id) == user_id,
            col(KnownAddress.last_success_at) <= forget_before,
        )
    )
    statement = (
        insert(KnownAddress)
        .values(user_id=user_id, address_hash=address_hash, last_success_at=now)
        .on_conflict_do_update(
            index_elements=[col(KnownAddress.user_id), col(KnownAddress.address_hash)],
            set_={"last_success_at": now},
        )
    )
    await session.exec(statement)
