"""Server-side sessions: the browser holds an opaque id, this service holds the tokens.

The cookie's value is 32 random bytes; the row is keyed by its SHA-256, so the table alone
names no live cookie. The access and refresh tokens are stored sealed (``TokenBox``).

An access token about to expire is refreshed under the session row's lock
(``SELECT ... FOR UPDATE``): parallel requests of one session, in any replica, wait for the
one that refreshes and then use its new token, so a refresh token is never presented twice
(the auth service would read a second use as theft and end the family). A session ends at
the refresh token's expiry (the family's absolute lifetime), after the idle timeout, at
sign-out, or when a refresh is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from shared.clock import Clock
from shared.db import Database, Statements
from web_service.crypto import InvalidToken, TokenBox
from web_service.gateway_client import ApiError, GatewayClient
from web_service.settings import WebSettings

logger = logging.getLogger(__name__)

# last_seen_at is written at most this often per session (not on every page).
TOUCH_INTERVAL = timedelta(minutes=1)
COOKIE_BYTES = 32


class SessionEnded(Exception):
    """The session is gone: the user signs in again."""


def hash_id(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def new_cookie_value() -> str:
    return secrets.token_urlsafe(COOKIE_BYTES)


@dataclass
class WebSession:
    id_hash: str
    user_id: str
    access_token: bytes
    access_expires_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    csrf_token: str
    profile: dict[str, Any]

    @property
    def timezone(self) -> str:
        return str(self.profile.get("timezone") or "UTC")

    @property
    def display_name(self) -> str:
        return str(self.profile.get("name") or self.profile.get("email") or "")

    @property
    def draft_owner(self) -> str:
        """The user as the page's scripts may know them, without their id: what a tab keeps of
        theirs (a chat message typed as their session ended) is given back to them only, not
        to another person signing in next in that tab."""
        return hashlib.sha256(f"draft-owner:{self.user_id}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Tokens:
    """A pair as the auth service answers login, refresh (and password change)."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    user: dict[str, Any] | None

    @classmethod
    def from_answer(cls, body: dict[str, Any], now: datetime) -> Tokens:
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            access_expires_at=now + timedelta(seconds=int(body["expires_in"])),
            refresh_expires_at=now + timedelta(seconds=int(body["refresh_expires_in"])),
            user=body.get("user"),
        )


def profile_of(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "email": user.get("email"),
        "name": user.get("name"),
        "timezone": user.get("timezone") or "UTC",
    }


def _row_to_session(row: Any) -> WebSession:
    profile = row[7]
    if isinstance(profile, str):
        profile = json.loads(profile)
    return WebSession(
        id_hash=row[0],
        user_id=row[1],
        access_token=bytes(row[2]),
        access_expires_at=row[3],
        expires_at=row[4],
        last_seen_at=row[5],
        csrf_token=row[6],
        profile=profile,
    )


@dataclass(eq=False)
class SessionStore:
    db: Database
    box: TokenBox
    gateway: GatewayClient
    settings: WebSettings
    clock: Clock

    @property
    def idle(self) -> timedelta:
        """No use for this long ends a session."""
        return timedelta(seconds=self.settings.idle_timeout_seconds)

    @property
    def margin(self) -> timedelta:
        """An access token this close to its expiry is refreshed before use."""
        return timedelta(seconds=self.settings.refresh_margin_seconds)

    async def create(self, tokens: Tokens, user: dict[str, Any]) -> tuple[str, WebSession]:
        """A new session (always a new id: signing in never keeps an id the browser had)."""
        cookie, session = self._new(tokens, str(user["id"]), profile_of(user))
        await self._insert(self.db, session, tokens)
        return cookie, session

    async def rotate(self, old: WebSession, tokens: Tokens) -> tuple[str, WebSession]:
        """After a password change: this browser carries on under a new id (and a new CSRF
        token) with the new pair, and every session of the user here ends, the old id
        included, so a copy of the cookie taken before the change is worth nothing."""
        cookie, session = self._new(tokens, old.user_id, old.profile)
        async with self.db.unit_of_work() as unit:
            await unit.fetch_row("DELETE FROM web.sessions WHERE user_id = $1", old.user_id)
            await self._insert(unit, session, tokens)
        return cookie, session

    def _new(self, tokens: Tokens, user_id: str, profile: dict[str, Any]) -> tuple[str, WebSession]:
        cookie = new_cookie_value()
        return cookie, WebSession(
            id_hash=hash_id(cookie),
            user_id=user_id,
            access_token=self.box.seal(tokens.access_token),
            access_expires_at=tokens.access_expires_at,
            expires_at=tokens.refresh_expires_at,
            last_seen_at=self.clock(),
            csrf_token=secrets.token_urlsafe(32),
            profile=profile,
        )

    async def _insert(self, target: Statements, session: WebSession, tokens: Tokens) -> None:
        await target.fetch_row(
            "INSERT INTO web.sessions (id_hash, user_id, access_token, refresh_token, "
            "access_expires_at, expires_at, last_seen_at, csrf_token, profile, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $7)",
            session.id_hash,
            session.user_id,
            session.access_token,
            self.box.seal(tokens.refresh_token),
            session.access_expires_at,
            session.expires_at,
            session.last_seen_at,
            session.csrf_token,
            json.dumps(session.profile),
            write=True,
        )

    async def load(self, cookie: str | None) -> WebSession | None:
        """The live session the cookie names, or None (unknown, expired, idle too long)."""
        if not cookie or len(cookie) > 128:
            return None
        now = self.clock()
        row = await self.db.fetch_row(
            "SELECT id_hash, user_id, access_token, access_expires_at, expires_at, last_seen_at, "
            "csrf_token, profile FROM web.sessions "
            "WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at > $3",
            hash_id(cookie),
            now,
            now - self.idle,
        )
        if row is None:
            return None
        session = _row_to_session(row)
        if now - session.last_seen_at >= TOUCH_INTERVAL:
            await self.db.fetch_row(
                "UPDATE web.sessions SET last_seen_at = $2 WHERE id_hash = $1",
                session.id_hash,
                now,
                write=True,
            )
            session.last_seen_at = now
        return session

    async def access_token(self, session: WebSession, *, client_ip: str | None) -> str:
        """A valid access token of the session, refreshed first when it is about to expire."""
        if session.access_expires_at - self.margin > self.clock():
            try:
                return self.box.open(session.access_token)
            except InvalidToken:
                # Sealed with a key since removed: the session cannot be used any more.
                await self.end(session)
                raise SessionEnded from None
        return await self._refresh(session, client_ip=client_ip)

    async def _refresh(self, session: WebSession, *, client_ip: str | None) -> str:
        async with self.db.unit_of_work() as unit:
            # The row's lock is held until this unit commits: the refresh happens inside it.
            connection = await unit.connection()
            row = (
                await connection.execute(
                    text(
                        "SELECT access_token, refresh_token, access_expires_at, expires_at "
                        "FROM web.sessions WHERE id_hash = :id FOR UPDATE"
                    ),
                    {"id": session.id_hash},
                )
            ).first()
            now = self.clock()
            if row is None or row[3] <= now:
                raise SessionEnded
            if row[2] - self.margin > now:
                # Another request refreshed while this one waited for the lock.
                session.access_token, session.access_expires_at = bytes(row[0]), row[2]
                session.expires_at = row[3]
                return self.box.open(bytes(row[0]))
            try:
                refresh_token = self.box.open(bytes(row[1]))
            except InvalidToken:
                refresh_token = None
            answer = None
            if refresh_token is not None:
                answer = await self.gateway.call(
                    "POST",
                    "/api/auth/refresh",
                    json_body={"refresh_token": refresh_token},
                    client_ip=client_ip,
                )
                if answer.status >= 500 or answer.status == 429:
                    # Not a refusal of the session: keep it, the page says to try again.
                    raise ApiError.from_response(answer)
            if answer is None or answer.status != 200:
                await connection.execute(
                    text("DELETE FROM web.sessions WHERE id_hash = :id"), {"id": session.id_hash}
                )
                logger.info("session ended: refresh refused (%s)", answer and answer.status)
                # The deletion is the answer: committed, then the user signs in again.
                await unit.commit()
                raise SessionEnded
            tokens = Tokens.from_answer(answer.json(), self.clock())
            sealed = self.box.seal(tokens.access_token)
            await connection.execute(
                text(
                    "UPDATE web.sessions SET access_token = :access, refresh_token = :refresh, "
                    "access_expires_at = :access_expires, expires_at = :expires "
                    "WHERE id_hash = :id"
                ),
                {
                    "id": session.id_hash,
                    "access": sealed,
                    "refresh": self.box.seal(tokens.refresh_token),
                    "access_expires": tokens.access_expires_at,
                    "expires": tokens.refresh_expires_at,
                },
            )
        session.access_token, session.access_expires_at = sealed, tokens.access_expires_at
        session.expires_at = tokens.refresh_expires_at
        return tokens.access_token

    async def alive(self, session: WebSession) -> bool:
        """Whether the session is still live (not ended, expired or idle too long)."""
        now = self.clock()
        row = await self.db.fetch_row(
            "SELECT 1 FROM web.sessions "
            "WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at > $3",
            session.id_hash,
            now,
            now - self.idle,
        )
        return row is not None

    async def refresh_token(self, session: WebSession) -> str | None:
        row = await self.db.fetch_row(
            "SELECT refresh_token FROM web.sessions WHERE id_hash = $1", session.id_hash
        )
        if row is None:
            return None
        try:
            return self.box.open(bytes(row[0]))
        except InvalidToken:
            return None

    async def update_profile(self, session: WebSession, user: dict[str, Any]) -> None:
        session.profile = profile_of(user)
        await self.db.fetch_row(
            "UPDATE web.sessions SET profile = $2::jsonb WHERE id_hash = $1",
            session.id_hash,
            json.dumps(session.profile),
            write=True,
        )

    async def end(self, session: WebSession) -> None:
        await self.db.fetch_row(
            "DELETE FROM web.sessions WHERE id_hash = $1", session.id_hash, write=True
        )

    async def end_all(self, user_id: str) -> None:
        await self.db.fetch_row("DELETE FROM web.sessions WHERE user_id = $1", user_id, write=True)

    async def purge(self, *, batch: int = 1000) -> int:
        """Delete up to ``batch`` ended sessions; how many were deleted."""
        now = self.clock()
        row = await self.db.fetch_row(
            "WITH gone AS (DELETE FROM web.sessions WHERE id_hash IN ("
            "SELECT id_hash FROM web.sessions WHERE expires_at <= $1 OR last_seen_at <= $2 "
            "LIMIT $3) RETURNING 1) SELECT count(*) FROM gone",
            now,
            now - self.idle,
            batch,
            write=True,
        )
        return int(row[0]) if row else 0
