"""Conversations and their messages: every query is scoped to the token's user.

The reads and the delete take a session and never commit: the request's unit of work does.
A turn's writes are single statements on a ``Bind`` (an engine: each commits on its own; a
connection: inside that connection's transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.models import Conversation, Message, Role
from chat_service.pagination import (
    MAX_ID,
    InvalidCursor,
    Page,
    cursor_id,
    decode_cursor,
    encode_cursor,
)
from shared.db import Bind, fetch_row
from shared.errors import NotFound

TITLE_MAX = 80


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    message = "Conversation not found"


def title_for(message: str) -> str:
    """A conversation's title: its first message, cut at a word near ``TITLE_MAX``."""
    text = " ".join(message.split())
    if len(text) <= TITLE_MAX:
        return text
    cut = text[: TITLE_MAX - 1].rsplit(" ", 1)[0] or text[: TITLE_MAX - 1]
    return cut + "…"


async def get_conversation(
    session: AsyncSession, user_id: str, *, conversation_id: int
) -> Conversation:
    """The user's conversation; someone else's is as unknown as a missing one."""
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    result = await session.exec(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
    )
    conversation = result.first()
    if conversation is None:
        raise ConversationNotFound()
    return conversation


# --- a turn's writes -------------------------------------------------------------------------
# A chat turn is the service's hot path: each of its two units of work is one statement on a
# pooled driver connection (``shared.db.fetch_row``), with the ownership check inside it.

_BEGIN_IN_NEW_CONVERSATION = """
WITH conversation AS (
    INSERT INTO chat.conversations (user_id, title, created_at, updated_at)
    VALUES ($1::text, $2::text, $3::timestamptz, $3::timestamptz)
    RETURNING id
)
INSERT INTO chat.messages (conversation_id, user_id, role, content, created_at)
SELECT id, $1::text, 'user', $4::text, $3::timestamptz FROM conversation
RETURNING conversation_id"""

# One snapshot for every part: the history is the window before this message, and the message
# is inserted only if the conversation is (still) the user's.
_BEGIN_IN_CONVERSATION = """
WITH conversation AS (
    UPDATE chat.conversations SET updated_at = greatest(updated_at, $3::timestamptz)
    WHERE id = $1::bigint AND user_id = $2::text
    RETURNING id
), history AS (
    SELECT id, role, content, tool_calls FROM chat.messages
    WHERE conversation_id = $1::bigint AND user_id = $2::text
    ORDER BY id DESC
    LIMIT $5::int
), message AS (
    INSERT INTO chat.messages (conversation_id, user_id, role, content, created_at)
    SELECT id, $2::text, 'user', $4::text, $3::timestamptz FROM conversation
    RETURNING id
)
SELECT (SELECT id FROM message),
       (SELECT json_agg(json_build_object('role', role, 'content', content,
                                          'tool_calls', tool_calls) ORDER BY id)::text
        FROM history)"""

_ADD_MESSAGE = """
WITH conversation AS (
    UPDATE chat.conversations SET updated_at = greatest(updated_at, $3::timestamptz)
    WHERE id = $1::bigint AND user_id = $2::text
    RETURNING id
)
INSERT INTO chat.messages (conversation_id, user_id, role, content, tool_calls, created_at)
SELECT id, $2::text, $4::text, $5::text, $6::text::jsonb, $3::timestamptz FROM conversation
RETURNING id"""


@dataclass(frozen=True)
class StoredMessage:
    """A message of the history window, as the agent reads it."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None


async def start_conversation(db: Bind, user_id: str, *, first_message: str, now: datetime) -> int:
    """A new conversation of the user's holding its first message; its id."""
    row = await fetch_row(
        db, _BEGIN_IN_NEW_CONVERSATION, user_id, title_for(first_message), now, first_message
    )
    assert row is not None  # an INSERT ... VALUES always returns its row
    return int(row[0])


async def continue_conversation(
    db: Bind, user_id: str, *, conversation_id: int, message: str, now: datetime, window: int
) -> list[StoredMessage]:
    """Append the user's message to their conversation and return the ``window`` messages
    before it, oldest first. Someone else's conversation is as unknown as a missing one."""
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    row = await fetch_row(
        db, _BEGIN_IN_CONVERSATION, conversation_id, user_id, now, message, window
    )
    if row is None or row[0] is None:
        raise ConversationNotFound()
    return [StoredMessage(**stored) for stored in json.loads(row[1] or "[]")]


async def add_message(
    db: Bind,
    user_id: str,
    *,
    conversation_id: int,
    role: Role,
    content: str,
    now: datetime,
    tool_calls: list[dict[str, Any]] | None = None,
) -> int:
    """Append a message, mark the conversation active now, and return the message's id.

    One statement: the message is inserted only if the conversation is (still) the user's,
    so a foreign id and a conversation deleted while a turn ran are both "not found".
    """
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    calls = None if tool_calls is None else json.dumps(tool_calls)
    row = await fetch_row(
        db, _ADD_MESSAGE, conversation_id, user_id, now, role.value, content, calls
    )
    if row is None:
        raise ConversationNotFound()
    return int(row[0])


async def list_conversations(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[Conversation]:
    """The user's conversations, most recently active first."""
    statement = select(Conversation).where(Conversation.user_id == user_id)
    if cursor is not None:
        updated_at, last_id = decode_cursor(cursor, length=2)
        last_id = cursor_id(last_id)
        try:
            after = datetime.fromisoformat(updated_at)
        except (TypeError, ValueError):
            raise InvalidCursor() from None
        if after.tzinfo is None:
            raise InvalidCursor()
        statement = statement.where(
            tuple_(col(Conversation.updated_at), col(Conversation.id)) < tuple_(after, last_id)
        )
    rows = (
        await session.exec(
            statement.order_by(
                col(Conversation.updated_at).desc(), col(Conversation.id).desc()
            ).limit(limit + 1)
        )
    ).all()
    total = await _count(session, Conversation.user_id == user_id, Conversation)
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last.updated_at.isoformat(), last.id])
    return Page(items=items, total=total, next_cursor=next_cursor)


async def list_messages(
    session: AsyncSession, user_id: str, *, conversation_id: int, limit: int, cursor: str | None
) -> Page[Message]:
    """One page of a conversation's messages, oldest first."""
    condition = (Message.conversation_id == conversation_id) & (Message.user_id == user_id)
    statement = select(Message).where(condition)
    if cursor is not None:
        (key,) = decode_cursor(cursor, length=1)
        last_id = cursor_id(key)
        statement = statement.where(col(Message.id) > last_id)
    rows = (await session.exec(statement.order_by(col(Message.id)).limit(limit + 1))).all()
    total = await _count(session, condition, Message)
    items = rows[:limit]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page(items=items, total=total, next_cursor=next_cursor)


async def delete_conversation(session: AsyncSession, user_id: str, *, conversation_id: int) -> None:
    """Delete the conversation and (by cascade) its messages."""
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    result = await session.exec(
        delete(Conversation)
        .where(col(Conversation.id) == conversation_id, col(Conversation.user_id) == user_id)
        .returning(col(Conversation.id))
    )
    if result.first() is None:
        raise ConversationNotFound()


async def _count(session: AsyncSession, condition: Any, model: type[Any]) -> int:
    result = await session.exec(select(func.count()).select_from(model).where(condition))
    return int(result.one())
