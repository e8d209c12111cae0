"""Tables of the chat service, all in schema ``chat``.

``user_id`` is the token's subject as an opaque string: users live in another service (or
another issuer), so there is no foreign key to them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from shared.columns import identity, timestamp
from shared.db import schema_metadata
from shared.events import processed_events_table
from shared.tombstones import tombstone_table

SCHEMA = "chat"
IDEMPOTENCY_KEY_MAX = 255


class ChatBase(SQLModel):
    metadata = schema_metadata(SCHEMA)


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class Conversation(ChatBase, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        # A user's conversations, most recently active first (the list's keyset order;
        # PostgreSQL walks the index backwards for the descending order).
        Index("ix_conversations_user_id_updated_at_id", "user_id", "updated_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=identity())
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamp(default_now=True))
    updated_at: datetime = Field(sa_column=timestamp(default_now=True))
    # The user messages stored in it, each holding room for its reply: a turn is let in while
    # twice this stays within CHAT_MAX_MESSAGES_PER_CONVERSATION, checked and counted by the
    # statement that locks this row (concurrent turns take turns).
    turns: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )


class Message(ChatBase, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
        # A conversation's messages in order: both the history window and the message pages.
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=identity())
    conversation_id: int = Field(
        sa_column=Column(
            BigInteger,
            ForeignKey(f"{SCHEMA}.conversations.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    role: str = Field(sa_column=Column(Text, nullable=False))
    content: str = Field(sa_column=Column(Text, nullable=False))
    # The tools an assistant turn called: [{name, arguments, result}], in order.
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSONB, nullable=True)
    )
    # What an assistant message waits for (agents.state.DialogueState); null for user messages.
    state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    created_at: datetime = Field(sa_column=timestamp(default_now=True))


class TurnKey(ChatBase, table=True):
    """A ``POST /api/chat`` sent with an ``Idempotency-Key``, per user: the turn it started
    (its stored user message) and, once done, the answer replayed to a retry.

    ``locked_until`` is the lease of the attempt running the turn: a retry waits (409) while it
    holds, and takes the turn over, on the same stored message, once it has lapsed.
    """

    __tablename__ = "turn_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_turn_keys_expires_at", "expires_at"),
    )

    id: int | None = Field(default=None, sa_column=identity())
    user_id: str = Field(sa_column=Column(Text, nullable=False))
    key: str = Field(sa_column=Column(String(IDEMPOTENCY_KEY_MAX), nullable=False))
    # SHA-256 of the validated request body: the same key with another body is refused.
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    conversation_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # The answer as first given ({conversation_id, response, tool_calls}), replayed as is.
    response: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    locked_until: datetime = Field(sa_column=timestamp())
    created_at: datetime = Field(sa_column=timestamp(default_now=True))
    expires_at: datetime = Field(sa_column=timestamp())


# The tables as Core objects (the purge of a deleted user's rows).
CONVERSATIONS = ChatBase.metadata.tables[f"{SCHEMA}.conversations"]
MESSAGES = ChatBase.metadata.tables[f"{SCHEMA}.messages"]
TURN_KEYS = ChatBase.metadata.tables[f"{SCHEMA}.turn_keys"]

# Account deletion (docs/events.md): the subjects whose rows were purged on ``user.deleted``,
# and the events already applied (a redelivered one changes nothing).
DELETED_SUBJECTS = tombstone_table(ChatBase.metadata)
PROCESSED_EVENTS = processed_events_table(ChatBase.metadata)
# Tables refusing rows of a deleted subject (a trigger each, shared/tombstones.py).
USER_TABLES = ("conversations", "messages", "turn_keys")
