"""Domain logic of the auth service. Functions flush; the request's unit of work commits."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service import events, throttle
from auth_service.keys import KeySet
from auth_service.models import EMAIL_UNIQUE, RefreshFamily, RefreshToken, User
from auth_service.passwords import PasswordCheckBusy, PasswordHasher, normalised
from auth_service.schemas import UserPublic
from auth_service.settings import AuthSettings
from shared.clock import Clock
from shared.db import Statements
from shared.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    violated_constraint,
)
from shared.network import client_network
from shared.tokens import InvalidToken


class InvalidCredentials(
    Unauthorized, code="invalid_credentials", message="Incorrect email or password"
):
    """A sign-in refused: the same answer for an unknown email and a wrong password."""


class InvalidRefreshToken(
    Unauthorized,
    code="invalid_refresh_token",
    message="The refresh token is invalid, expired or revoked",
    keep_changes=True,  # a reused token's family stays revoked
):
    """A refresh or logout with a token that cannot open a session (any more)."""


class WrongPassword(
    BadRequest, code="wrong_password", message="The current password is not correct"
):
    """A password change whose current password is wrong."""


class PasswordNotConfirmed(Forbidden, code="wrong_password", message="The password is not correct"):
    """An account deletion whose re-entered password is wrong."""


class WeakPassword(
    BadRequest,
    code="weak_password",
    message="The password must not be the email address",
    keep_changes=True,  # at POST /password: the right current password's count is given back
):
    """A new password that is the account's email address."""

    @classmethod
    def refuse(cls, password: str, email: str) -> None:
        """Raised when ``password``, in the form it is hashed, is the (normalised) ``email``."""
        if normalised(password).strip().lower() == email:
            raise cls()


@dataclass(frozen=True)
class AuthContext:
    """What the auth domain needs besides a session; built once per app."""

    settings: AuthSettings
    keys: KeySet
    hasher: PasswordHasher
    clock: Clock
    # For the throttling counters, committed in their own short transaction before hashing.
    sessionmaker: async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: User


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def register(
    session: AsyncSession,
    ctx: AuthContext,
    *,
    email: str,
    password: str,
    name: str | None,
    timezone: str = "UTC",
) -> User:
    """A new account. A taken email is a 409 after the same hashing work as a new account, so
    the time to answer does not tell which it was (the 409 itself does; see docs/auth.md)."""
    email = normalise_email(email)
    WeakPassword.refuse(password, email)
    password_hash = await ctx.hasher.hash(password)
    if await _user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    now = ctx.clock()
    user = User(
        email=email,
        name=name,
        timezone=timezone,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        # A concurrent registration of the same email won; any other refusal is a fault.
        if violated_constraint(exc) != EMAIL_UNIQUE:
            raise
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    await events.user_registered(session, user.id, now)
    return user


async def authenticate(
    session: AsyncSession, ctx: AuthContext, *, email: str, password: str, client: str
) -> User:
    """The user for these credentials, with the same answer and timing for unknown emails.

    Before the password is checked, the guess is counted (and refused at the limit) per
    (account, client network) and, from a network the account never signed in from, per
    account: the counts are committed at once, so parallel guesses cannot all be checked.
    """
    settings = ctx.settings
    email = normalise_email(email)
    email_hash = _sha256(email)
    address_hash = _sha256(client_network(client))
    now = ctx.clock()
    async with ctx.sessionmaker.begin() as gate:
        found = (
            await gate.exec(select(User.id, User.password_hash).where(User.email == email))
        ).first()
        user_id, stored_hash = found if found is not None else (None, "")
        since = now - timedelta(days=settings.known_address_days)
        # Asked for unknown emails too (of the nil id), so both take the same statements.
        known = await throttle.is_known(gate, user_id or uuid.UUID(int=0), address_hash, since)
        limits = [
            throttle.Limit(
                _sha256(f"login:{email_hash}:{address_hash}"),
                settings.lockout_threshold,
                timedelta(seconds=settings.lockout_window_seconds),
            )
        ]
        if not known:
            limits.append(
                throttle.Limit(
                    _sha256(f"account:{email_hash}"),
                    settings.lockout_account_ceiling,
                    timedelta(seconds=settings.lockout_account_window_seconds),
                )
            )
        pair, *account = await throttle.reserve(gate, limits, now, retain=_retain(settings))

    try:
        if user_id is None:
            await ctx.hasher.verify_dummy(password)
            raise InvalidCredentials()
        valid, new_hash = await ctx.hasher.verify(password, stored_hash)
    except PasswordCheckBusy:
        await _give_back(session, [pair, *account])
        raise
    if not valid:
        raise InvalidCredentials()
    # Lock the account's row and read its hash again: a password change that committed while
    # this one was checked makes the old password worthless, and a change that starts now waits
    # for this login's session, which it then revokes.
    user = (
        await session.exec(
            select(User)
            .where(User.id == user_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    ).first()
    if user is None or user.password_hash != stored_hash:
        raise InvalidCredentials()
    if new_hash is not None:
        user.password_hash = new_hash
    await throttle.clear(session, pair.key_hash)
    for reservation in account:
        await throttle.give_back(session, reservation)
    await throttle.remember(session, user.id, address_hash, now, forget_before=since)
    return user


async def _give_back(session: AsyncSession, reservations: Sequence[throttle.Reservation]) -> None:
    """A guess refused before its password was checked (hashing busy) counts nowhere."""
    for reservation in reservations:
        await throttle.give_back(session, reservation)


def _retain(settings: AuthSettings) -> timedelta:
    """How long any failure counter can matter: the longest throttling window."""
    return timedelta(
        seconds=max(settings.lockout_window_seconds, settings.lockout_account_window_seconds)
    )


async def issue_tokens(
    session: AsyncSession, ctx: AuthContext, user: User, *, family: RefreshFamily | None = None
) -> TokenPair:
    """A new access token and a refresh token of ``family`` (a new session when omitted).

    The refresh token never outlives its family: its expiry is the earlier of the refresh
    lifetime and the session's absolute end.
    """
    settings = ctx.settings
    now = ctx.clock()
    if family is None:
        await _end_oldest_sessions(session, now, user, keep=settings.max_sessions_per_user - 1)
        family = RefreshFamily(
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(days=settings.session_max_days),
        )
        session.add(family)
    access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
    refresh_expires_at = min(
        now + timedelta(days=settings.refresh_token_ttl_days), session_end(family, settings)
    )
    access = ctx.keys.mint_access_token(
        subject=str(user.id),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        now=now,
        ttl=access_ttl,
    )
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family.id,
            token_hash=_sha256(refresh),
            issued_at=now,
            expires_at=refresh_expires_at,
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access,
        expires_in=int(access_ttl.total_seconds()),
        refresh_token=refresh,
        refresh_expires_in=int((refresh_expires_at - now).total_seconds()),
        user=user,
    )


def session_end(family: RefreshFamily, settings: AuthSettings) -> datetime:
    """When ``family`` ends: its absolute end, or sooner when ``AUTH_SESSION_MAX_DAYS`` has
    been lowered since its login (a shorter lifetime applies to the sessions already begun)."""
    return min(family.expires_at, family.created_at + timedelta(days=settings.session_max_days))


async def _end_oldest_sessions(
    session: AsyncSession, now: datetime, user: User, *, keep: int
) -> None:
    """End ``user``'s live sessions beyond the ``keep`` newest (by when each began), their rows
    locked in id order as ``_revoke_every_session`` locks them, so that a new one makes at
    most ``AUTH_MAX_SESSIONS_PER_USER``."""
    oldest = (
        select(RefreshFamily.id)
        .where(
            RefreshFamily.user_id == user.id,
            col(RefreshFamily.revoked_at).is_(None),
            RefreshFamily.expires_at > now,
        )
        .order_by(col(RefreshFamily.created_at).desc(), col(RefreshFamily.id).desc())
        .offset(keep)
    )
    families = await session.exec(
        select(RefreshFamily)
        .where(col(RefreshFamily.id).in_(oldest))
        .order_by(col(RefreshFamily.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    await _revoke(session, now, families.all())


async def rotate_refresh_token(
    session: AsyncSession, ctx: AuthContext, *, refresh_token: str
) -> TokenPair:
    """Spend a refresh token for a new pair. A spent token presented again revokes its family.

    The family's row lock makes rotations, logout and revocations of one session take turns:
    of two concurrent refreshes with one token exactly one wins, and a revocation never misses
    a token minted by a rotation running beside it.
    """
    now = ctx.clock()
    token_hash = _sha256(refresh_token)
    family = await _lock_family_of(session, token_hash)
    if family is None or family.revoked_at is not None or session_end(family, ctx.settings) <= now:
        raise InvalidRefreshToken()
    # Read after the family lock, so a rotation that just committed is seen.
    token = (
        await session.exec(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    ).one()
    # Its own expiry, or sooner when AUTH_REFRESH_TOKEN_TTL_DAYS has been lowered since.
    lifetime = timedelta(days=ctx.settings.refresh_token_ttl_days)
    if token.revoked_at is not None or min(token.expires_at, token.issued_at + lifetime) <= now:
        raise InvalidRefreshToken()
    if token.used_at is not None:
        await _revoke(session, now, [family])
        raise InvalidRefreshToken(
            "The refresh token was already used; the session is revoked",
            code="refresh_token_reused",
        )
    token.used_at = now
    user = await session.get(User, family.user_id)
    if user is None:
        raise InvalidRefreshToken()
    return await issue_tokens(session, ctx, user, family=family)


async def logout(session: AsyncSession, ctx: AuthContext, *, refresh_token: str) -> None:
    """Revoke the session the token belongs to. Unknown tokens are ignored (nothing to end)."""
    family = await _lock_family_of(session, _sha256(refresh_token))
    if family is not None and family.revoked_at is None:
        await _revoke(session, ctx.clock(), [family])


async def _lock_family_of(session: AsyncSession, token_hash: str) -> RefreshFamily | None:
    """The family of a refresh token, locked ``FOR UPDATE`` until the transaction ends."""
    result = await session.exec(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash)
    )
    family_id = result.first()
    if family_id is None:
        return None
    locked = await session.exec(
        select(RefreshFamily)
        .where(RefreshFamily.id == family_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return locked.first()


async def _revoke(session: AsyncSession, now: datetime, families: Sequence[RefreshFamily]) -> None:
    """End these sessions (their rows locked by the caller) and mark their tokens revoked."""
    if not families:
        return
    for family in families:
        family.revoked_at = now
    await session.exec(
        update(RefreshToken)
        .where(
            col(RefreshToken.family_id).in_([family.id for family in families]),
            col(RefreshToken.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    await session.flush()


_FORGET_ENDED_SESSIONS = (
    "WITH gone AS (DELETE FROM auth.refresh_families WHERE id IN ("
    "SELECT id FROM auth.refresh_families WHERE expires_at < $1 OR revoked_at < $1 "
    "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) SELECT count(*) FROM gone"
)


async def forget_ended_sessions(db: Statements, *, before: datetime, batch: int) -> int:
    """Delete at most ``batch`` sessions that ended (revoked, or past their absolute end)
    before ``before``, with their refresh tokens (the foreign key cascades); how many.

    Nothing is lost by it: a token of a deleted session is refused as one of an ended session
    is (401 ``invalid_refresh_token``), and its logout ends nothing either way. Without it
    every login and every rotation would leave a row for good. A session being rotated or
    revoked right now (its row locked) waits for the next round.
    """
    row = await db.fetch_row(_FORGET_ENDED_SESSIONS, before, batch, write=True)
    return int(row[0]) if row is not None else 0


async def get_user(session: AsyncSession, user_id: str) -> User:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise NotFound("User not found") from None
    user = await session.get(User, key)
    if user is None:
        raise NotFound("User not found")
    return user


# What PATCH /me may change (validated by its schema first).
PROFILE_FIELDS = frozenset({"name", "timezone"})


async def update_profile(
    session: AsyncSession, ctx: AuthContext, user: User, *, changes: Mapping[str, Any]
) -> User:
    """Apply the profile fields the client sent (absent ones are kept)."""
    if not changes:
        return user
    for field, value in changes.items():
        assert field in PROFILE_FIELDS, field
        setattr(user, field, value)
    user.updated_at = ctx.clock()
    await session.flush()
    return user


_ACCOUNT = f"SELECT {', '.join(UserPublic.model_fields)} FROM auth.users WHERE id = $1"  # noqa: S608


async def account(db: Statements, subject: str) -> UserPublic:
    """The public view of an access token's subject's account, one statement. A token that
    outlived its account is a 401, as in ``current_account``."""
    try:
        key = uuid.UUID(subject)
    except ValueError:
        raise InvalidToken() from None
    row = await db.fetch_row(_ACCOUNT, key)
    if row is None:
        raise InvalidToken()
    return UserPublic.model_validate(dict(zip(UserPublic.model_fields, row, strict=True)))


async def current_account(session: AsyncSession, subject: str) -> User:
    """The account of an access token's subject. A token that outlived its account is a 401,
    so the client logs in again, rather than a 404 about a resource it never named."""
    try:
        return await get_user(session, subject)
    except NotFound:
        raise InvalidToken() from None


async def change_password(
    session: AsyncSession, ctx: AuthContext, subject: str, *, current: str, new: str, client: str
) -> TokenPair:
    """Replace the password, end every session (all refresh tokens revoked), and open a new
    one for the caller: the device that changed the password stays signed in with fresh
    tokens, every other one must sign in again with the new password.

    The addresses the account signed in from are forgotten but the caller's (``client``):
    each was trusted past the account's ceiling on guesses for a sign-in with the old
    password, which may have been a thief's.

    Wrong current passwords are throttled per account, apart from logins: only a holder of
    the account's access token adds to that count, so strangers' failed logins never block it.
    """
    now = ctx.clock()
    user = await _confirm_password(session, ctx, subject, current, wrong=WrongPassword, now=now)
    WeakPassword.refuse(new, user.email)
    user.password_hash = await ctx.hasher.hash(new)
    user.updated_at = now
    # The user's row first (a login racing this change waits for it), then every family.
    await session.flush()
    await _revoke_every_session(session, now, user)
    await throttle.forget_known(session, user.id)
    await throttle.remember(
        session,
        user.id,
        _sha256(client_network(client)),
        now,
        forget_before=now - timedelta(days=ctx.settings.known_address_days),
    )
    return await issue_tokens(session, ctx, user)


async def _confirm_password(
    session: AsyncSession,
    ctx: AuthContext,
    subject: str,
    password: str,
    *,
    wrong: type[AppError],
    now: datetime,
) -> User:
    """The signed-in account, once ``password`` is confirmed as its own. Wrong passwords are
    throttled per account, apart from logins: only a holder of the account's access token
    adds to that count, so strangers' failed logins never block it."""
    settings = ctx.settings
    # Counted before the account is even read, so no connection is held while waiting for one.
    # One count for every route that confirms the password (a guess is a guess wherever it
    # is made), within the window and under the account's ceiling per account window, as
    # logins from new addresses are: a stolen session (refreshed for as long as it lasts)
    # guesses no faster here than a stranger at the login.
    async with ctx.sessionmaker.begin() as gate:
        attempt, ceiling = await throttle.reserve(
            gate,
            [
                throttle.Limit(
                    _sha256(f"confirm:{subject}"),
                    settings.lockout_threshold,
                    timedelta(seconds=settings.lockout_window_seconds),
                ),
                throttle.Limit(
                    _sha256(f"confirm-ceiling:{subject}"),
                    settings.lockout_account_ceiling,
                    timedelta(seconds=settings.lockout_account_window_seconds),
                ),
            ],
            now,
            retain=_retain(settings),
        )
    user = await current_account(session, subject)
    try:
        valid, _ = await ctx.hasher.verify(password, user.password_hash)
    except PasswordCheckBusy:
        await _give_back(session, [attempt, ceiling])
        raise
    if not valid:
        raise wrong()
    await throttle.clear(session, attempt.key_hash)
    await throttle.give_back(session, ceiling)
    return user


async def logout_everywhere(session: AsyncSession, ctx: AuthContext, subject: str) -> None:
    """End every session of the account: each refresh token is revoked, so every device must
    sign in again once its access token (at most ``access_token_ttl_seconds``) expires."""
    user = await current_account(session, subject)
    await _revoke_every_session(session, ctx.clock(), user)


async def _revoke_every_session(session: AsyncSession, now: datetime, user: User) -> None:
    """Revoke every live family of ``user``, locked in id order, so two transactions locking
    several families never deadlock (and a rotation running beside this one takes turns)."""
    families = await session.exec(
        select(RefreshFamily)
        .where(RefreshFamily.user_id == user.id, col(RefreshFamily.revoked_at).is_(None))
        .order_by(col(RefreshFamily.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    await _revoke(session, now, families.all())


async def delete_account(
    session: AsyncSession, ctx: AuthContext, subject: str, *, password: str
) -> None:
    """Delete the account after its password is re-entered, ending every session at once,
    and write ``user.deleted`` in the same transaction: the other services purge the user's
    rows when they consume it (docs/events.md).

    Wrong passwords are throttled per account as at ``POST /password`` (only a holder of the
    account's access token adds to the count).
    """
    now = ctx.clock()
    user = await _confirm_password(
        session, ctx, subject, password, wrong=PasswordNotConfirmed, now=now
    )
    # Every session's row first, in id order, as a password change takes them: a rotation
    # holding one finishes first (and its token is deleted with the account), a later one
    # finds no family. Then the account: its sessions, tokens and known addresses go with it
    # (ON DELETE CASCADE), and a login racing this waits for the row and then finds nothing.
    await session.exec(
        select(RefreshFamily.id)
        .where(RefreshFamily.user_id == user.id)
        .order_by(col(RefreshFamily.id))
        .with_for_update()
    )
    deleted = await session.exec(
        delete(User).where(col(User.id) == user.id).returning(col(User.id))
    )
    if deleted.first() is None:  # deleted by a concurrent request meanwhile
        raise InvalidToken()
    await events.user_deleted(session, user.id, now)
    session.expunge(user)


async def _user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(User.email == email))
    return result.first()
