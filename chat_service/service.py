"""Conversations and their messages: every query is scoped to the token's user.

Functions flush and never commit; the caller's unit of work decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text, delete, func, insert, literal, tuple_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.models import Conversation, Message, Role
from chat_service.pagination import InvalidCursor, Page, decode_cursor, encode_cursor
from shared.errors import NotFound

TITLE_MAX = 80
MAX_ID = 2**63 - 1


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


async def start_conversation(
    session: AsyncSession, user_id: str, *, first_message: str, now: datetime
) -> Conversation:
    conversation = Conversation(
        user_id=user_id, title=title_for(first_message), created_at=now, updated_at=now
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def add_message(
    session: AsyncSession,
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
    touched = (
        update(Conversation)
        .where(col(Conversation.id) == conversation_id, col(Conversation.user_id) == user_id)
        .values(updated_at=func.greatest(col(Conversation.updated_at), now))
        .returning(col(Conversation.id))
        .cte("touched")
    )
    row = sa_select(
        touched.c.id,
        literal(user_id, Text()),
        literal(role.value, Text()),
        literal(content, Text()),
        literal(tool_calls, JSONB()),
        literal(now, DateTime(timezone=True)),
    )
    statement = (
        insert(Message)
        .from_select(
            ["conversation_id", "user_id", "role", "content", "tool_calls", "created_at"], row
        )
        .returning(col(Message.id))
    )
    inserted = (await session.exec(statement)).scalar_one_or_none()
    if inserted is None:
        raise ConversationNotFound()
    return int(inserted)


async def recent_messages(
    session: AsyncSession, user_id: str, *, conversation_id: int, limit: int
) -> list[Message]:
    """The last ``limit`` messages, oldest first: the bounded window an agent sees."""
    result = await session.exec(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.user_id == user_id)
        .order_by(col(Message.id).desc())
        .limit(limit)
    )
    return list(reversed(result.all()))


async def list_conversations(
    session: AsyncSession, user_id: str, *, limit: int, cursor: str | None
) -> Page[Conversation]:
    """The user's conversations, most recently active first."""
    statement = select(Conversation).where(Conversation.user_id == user_id)
    if cursor is not None:
        updated_at, last_id = decode_cursor(cursor, length=2)
        try:
            after = datetime.fromisoformat(updated_at)
        except (TypeError, ValueError):
            raise InvalidCursor() from None
        if not isinstance(last_id, int) or after.tzinfo is None:
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
        (last_id,) = decode_cursor(cursor, length=1)
        if not isinstance(last_id, int):
            raise InvalidCursor()
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
