"""Tables of the auth service, all in schema ``auth``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, text
from sqlmodel import Field, SQLModel

from shared.columns import time_zone, timestamp
from shared.db import schema_metadata
from shared.outbox import outbox_table

SCHEMA = "auth"

EMAIL_MAX = 320  # RFC 5321's longest path
# The unique constraint on users.email (its name by shared.db's naming convention).
EMAIL_UNIQUE = "uq_users_email"
NAME_MAX = 100


class AuthBase(SQLModel):
    metadata = schema_metadata(SCHEMA)


class User(AuthBase, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Stored normalised (trimmed, lower case), so a plain unique index is case-insensitive.
    email: str = Field(max_length=EMAIL_MAX, unique=True)
    name: str | None = Field(default=None, max_length=NAME_MAX)
    # An IANA name (validated at the API); dates the user sees and types are in it.
    timezone: str = Field(default="UTC", sa_column=time_zone(default="UTC"))
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=timestamp(default_now=True))
    updated_at: datetime = Field(sa_column=timestamp(default_now=True))


class RefreshFamily(AuthBase, table=True):
    """One login session. Rotation, logout, reuse detection and a password change all lock this
    row first (``FOR UPDATE``), so a revocation and a rotation of the family take turns: a token
    minted by a rotation is either revoked with the family or never minted."""

    __tablename__ = "refresh_families"
    # Ended sessions are found by when they ended, and deleted after a retention (``service``).
    __table_args__ = (
        Index("ix_refresh_families_expires_at", "expires_at"),
        Index(
            "ix_refresh_families_revoked_at",
            "revoked_at",
            postgresql_where=text("revoked_at IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = Field(sa_column=timestamp())
    # The session's absolute end: no rotation issues a refresh token that outlives it.
    expires_at: datetime = Field(sa_column=timestamp())
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))


class RefreshToken(AuthBase, table=True):
    """One issued refresh token. Only its SHA-256 is stored; its family is its login session."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index(
            "ix_refresh_tokens_user_id_active",
            "user_id",
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"), nullable=False)
    )
    family_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey(f"{SCHEMA}.refresh_families.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    token_hash: str = Field(max_length=64, unique=True)
    issued_at: datetime = Field(sa_column=timestamp())
    expires_at: datetime = Field(sa_column=timestamp())
    used_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp(nullable=True))


class AttemptCounter(AuthBase, table=True):
    """Failed attempts under one throttling key in its current window (see ``service``).

    The key is a SHA-256 of what it counts (an email and a client address, an email alone, an
    account's password changes): no stranger's address or email is stored.
    """

    __tablename__ = "attempt_counters"
    # Dead windows are found by their start and purged.
    __table_args__ = (Index("ix_attempt_counters_window_started_at", "window_started_at"),)

    key_hash: str = Field(max_length=64, primary_key=True)
    window_started_at: datetime = Field(sa_column=timestamp())
    failures: int


class KnownAddress(AuthBase, table=True):
    """A client address (IPv6: its /64) the account signed in from; it passes the per-account
    ceiling of failed logins. Stored as a SHA-256."""

    __tablename__ = "known_addresses"

    user_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"), primary_key=True)
    )
    address_hash: str = Field(max_length=64, primary_key=True)
    last_success_at: datetime = Field(sa_column=timestamp())


# Events of the auth service, written in the transaction of their change and published by
# its worker (shared/outbox.py, docs/events.md).
OUTBOX = outbox_table(AuthBase.metadata)
