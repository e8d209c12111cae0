"""Tables of the web service, all in schema ``web``.

A session row is the server side of the browser's cookie: the cookie holds an opaque random
id, the row is keyed by that id's SHA-256 (a copy of the table names no live cookie), and the
user's tokens are stored encrypted (``web_service.crypto``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from shared.columns import timestamp
from shared.db import schema_metadata

SCHEMA = "web"


class WebBase(SQLModel):
    metadata = schema_metadata(SCHEMA)


class Session(WebBase, table=True):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_expires_at", "expires_at"),
    )

    # SHA-256 (hex) of the cookie's value.
    id_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    # Fernet tokens of the access and refresh tokens.
    access_token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    refresh_token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    access_expires_at: datetime = Field(sa_column=timestamp())
    # The refresh token's expiry: the family's absolute lifetime ends the session with it.
    expires_at: datetime = Field(sa_column=timestamp())
    # Pushed on by use (at most once a minute); an idle session ends after the idle timeout.
    last_seen_at: datetime = Field(sa_column=timestamp(default_now=True))
    # The synchronizer token every state-changing form and fetch of this session carries.
    csrf_token: str = Field(sa_column=Column(String(64), nullable=False))
    # The user as the auth service last described them: {email, name, timezone}.
    profile: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_column=timestamp(default_now=True))


class AuthAttempt(WebBase, table=True):
    """Sign-in and sign-up POSTs per client network in the current fixed window."""

    __tablename__ = "auth_attempts"

    bucket: str = Field(sa_column=Column(Text, primary_key=True))
    window_start: datetime = Field(sa_column=timestamp())
    count: int = Field(sa_column=Column(Integer, nullable=False))


class FormState(WebBase, table=True):
    """A refused form as it was sent (its errors and what was typed, never a password), kept
    for the page that shows it again after the form's redirect (``web_service.form_states``).
    It belongs to one session and ends with it."""

    __tablename__ = "form_states"
    __table_args__ = (
        Index("ix_form_states_session_id_hash_created_at", "session_id_hash", "created_at"),
        # The purge's way to the expired states of every session.
        Index("ix_form_states_expires_at", "expires_at"),
    )

    # Random, named in the page's address (``?form=``); worth nothing to another session.
    id: str = Field(sa_column=Column(String(32), primary_key=True))
    session_id_hash: str = Field(
        sa_column=Column(
            String(64), ForeignKey("web.sessions.id_hash", ondelete="CASCADE"), nullable=False
        )
    )
    # The path of the page it is shown on.
    page: str = Field(sa_column=Column(Text, nullable=False))
    # JSON sealed with the session keys (``TokenBox``): what was typed is not kept readable,
    # and any text a form can send is kept as sent.
    state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires_at: datetime = Field(sa_column=timestamp())
    created_at: datetime = Field(sa_column=timestamp(default_now=True))
