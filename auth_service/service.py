"""Domain logic of the auth service. Functions flush; the request's unit of work commits."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth_service.keys import KeySet
from auth_service.models import LoginThrottle, RefreshFamily, RefreshToken, User
from auth_service.passwords import PasswordHasher
from auth_service.settings import AuthSettings
from shared.clock import Clock
from shared.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Incorrect email or password"
    keep_changes = True  # the failure is counted towards the lockout


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is invalid, expired or revoked"
    keep_changes = True  # a reused token's family stays revoked


class WrongPassword(BadRequest):
    code = "wrong_password"
    message = "The current password is not correct"
    keep_changes = True


class LockedOut(TooManyRequests):
    code = "login_locked"
    message = "Too many failed attempts; try again later"


@dataclass(frozen=True)
class AuthContext:
    """What the auth domain needs besides a session; built once per app."""

    settings: AuthSettings
    keys: KeySet
    hasher: PasswordHasher
    clock: Clock


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
    session: AsyncSession, ctx: AuthContext, *, email: str, password: str, name: str | None
) -> User:
    """A new account. A taken email is a 409 after the same hashing work as a new account, so
    the time to answer does not tell which it was (the 409 itself does; see docs/auth.md)."""
    email = normalise_email(email)
    if password.strip().lower() == email:
        raise BadRequest("The password must not be the email address", code="weak_password")
    password_hash = await ctx.hasher.hash(password)
    if await _user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    now = ctx.clock()
    user = User(
        email=email,
        name=name,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same email won
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    return user


async def authenticate(
    session: AsyncSession, ctx: AuthContext, *, email: str, password: str
) -> User:
    """The user for these credentials, with the same answer and timing for unknown emails."""
    email = normalise_email(email)
    email_hash = _sha256(email)
    now = ctx.clock()
    await _check_lockout(session, email_hash, now)

    user = await _user_by_email(session, email)
    if user is None:
        await ctx.hasher.verify_dummy(password)
        await _record_failure(session, ctx, email_hash, now)
        raise InvalidCredentials()
    valid, new_hash = await ctx.hasher.verify(password, user.password_hash)
    if not valid:
        await _record_failure(session, ctx, email_hash, now)
        raise InvalidCredentials()
    # Lock the account's row and read its hash again: a password change that committed while
    # this one was checked makes the old password worthless, and a change that starts now waits
    # for this login's session, which it then revokes.
    current_hash = (
        await session.exec(
            select(User.password_hash).where(User.id == user.id).with_for_update(key_share=True)
        )
    ).one()
    if current_hash != user.password_hash:
        raise InvalidCredentials()
    if new_hash is not None:
        user.password_hash = new_hash
    await session.exec(delete(LoginThrottle).where(col(LoginThrottle.email_hash) == email_hash))
    return user


async def _check_lockout(session: AsyncSession, email_hash: str, now: datetime) -> None:
    result = await session.exec(
        select(LoginThrottle.locked_until).where(LoginThrottle.email_hash == email_hash)
    )
    locked_until = result.first()
    if locked_until is not None and locked_until > now:
        raise LockedOut(retry_after=_seconds_until(locked_until, now))


async def _record_failure(
    session: AsyncSession, ctx: AuthContext, email_hash: str, now: datetime
) -> None:
    """Count one failure atomically (concurrent guesses all count) and lock when due."""
    settings = ctx.settings
    failures_column = col(LoginThrottle.failures)
    statement = (
        insert(LoginThrottle)
        .values(email_hash=email_hash, failures=1, last_failure_at=now)
        .on_conflict_do_update(
            index_elements=[col(LoginThrottle.email_hash)],
            set_={"failures": failures_column + 1, "last_failure_at": now},
        )
        .returning(failures_column)
    )
    failures = (await session.exec(statement)).scalar_one()
    if failures >= settings.lockout_threshold:
        exponent = min(failures - settings.lockout_threshold, 20)
        wait = min(settings.lockout_base_seconds * 2**exponent, settings.lockout_max_seconds)
        await session.exec(
            update(LoginThrottle)
            .where(col(LoginThrottle.email_hash) == email_hash)
            .values(locked_until=now + timedelta(seconds=wait))
        )


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


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
        family = RefreshFamily(
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(days=settings.session_max_days),
        )
        session.add(family)
    access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
    refresh_expires_at = min(
        now + timedelta(days=settings.refresh_token_ttl_days), family.expires_at
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
    if family is None or family.revoked_at is not None or family.expires_at <= now:
        raise InvalidRefreshToken()
    # Read after the family lock, so a rotation that just committed is seen.
    token = (
        await session.exec(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    ).one()
    if token.revoked_at is not None or token.expires_at <= now:
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


async def get_user(session: AsyncSession, user_id: str) -> User:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise NotFound("User not found") from None
    user = await session.get(User, key)
    if user is None:
        raise NotFound("User not found")
    return user


async def update_profile(
    session: AsyncSession, ctx: AuthContext, user: User, *, name: str | None
) -> User:
    user.name = name
    user.updated_at = ctx.clock()
    await session.flush()
    return user


async def change_password(
    session: AsyncSession, ctx: AuthContext, user: User, *, current: str, new: str
) -> None:
    """Replace the password and end every session (all refresh tokens revoked)."""
    email_hash = _sha256(user.email)
    now = ctx.clock()
    await _check_lockout(session, email_hash, now)
    valid, _ = await ctx.hasher.verify(current, user.password_hash)
    if not valid:
        await _record_failure(session, ctx, email_hash, now)
        raise WrongPassword()
    if new.strip().lower() == user.email:
        raise BadRequest("The password must not be the email address", code="weak_password")
    user.password_hash = await ctx.hasher.hash(new)
    user.updated_at = now
    # The user's row first (a login racing this change waits for it), then every live family
    # in id order, so two transactions locking several families never deadlock.
    await session.flush()
    families = await session.exec(
        select(RefreshFamily)
        .where(RefreshFamily.user_id == user.id, col(RefreshFamily.revoked_at).is_(None))
        .order_by(col(RefreshFamily.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    await _revoke(session, now, families.all())


async def _user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(User.email == email))
    return result.first()
