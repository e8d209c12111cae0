"""Conversations and their messages: every query is scoped to the token's user.

The reads and the delete take a session and never commit: the request's unit of work does.
A turn's writes are single statements through ``Database.fetch_row``: each commits on its own
(in the tests, inside their rolled-back transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.models import Conversation, Message, Role
from shared.columns import MAX_ID
from shared.db import Database, Session
from shared.errors import (
    Conflict,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidCursor,
    NotFound,
)
from shared.pagination import (
    Page,
    cursor_id,
    cursor_timestamp,
    decode_cursor_list,
    encode_cursor,
)
from shared.tombstones import lock_subject, subject_lock_sql

TITLE_MAX = 80


class ConversationNotFound(
    NotFound, code="conversation_not_found", message="Conversation not found"
):
    """No such conversation, or not the current user's."""


class ConversationFull(
    Conflict,
    code="conversation_full",
    message="This conversation is at its length limit: start a new conversation to go on",
):
    """The conversation has no room left for another message and its reply."""


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
# pooled driver connection (``Database.fetch_row``), with the ownership check inside it.
# Every write says so (``write=True``): a connection lost as it commits is ``outcome_unknown``.
#
# Lock order (shared/tombstones.py): the user's subject lock, shared, before the
# conversation's row. A statement that updates the conversation and then inserts the message
# would otherwise hold the row while the insert's trigger waits for the subject's lock, which
# the account's purge holds while it waits for that row: PostgreSQL aborts one of them.
_SUBJECT = f"subject AS MATERIALIZED (SELECT {subject_lock_sql('$2::text')})"

# The user's conversation starts take turns (after the subject's lock, before any row), so the
# trim below sees every conversation committed before it: two concurrent starts cannot both
# keep the same oldest one.
_STARTS_LOCK_CLASS = 0x0B11
_LOCK_STARTS = (
    f"SELECT {subject_lock_sql('$1::text')}, "
    f"pg_advisory_xact_lock({_STARTS_LOCK_CLASS}, hashtext($1::text))"
)
# Starting a conversation keeps the user's newest ``$5`` others and deletes the rest, with their
# messages: the least recently active first, and at most a batch per start (an account over the
# bound from before it, or a lowered bound, comes back within it start by start).
_TRIM_BATCH = 100
# A deleted conversation's keyed turns forget their answers (the conversation's content, for
# retries to replay): a retry then takes the turn over and finds the conversation gone (404),
# instead of being served the deleted reply, or run again. The user's subject lock is held.
_FORGET_ANSWERS = """
    UPDATE chat.turn_keys SET response = NULL
    WHERE user_id = $1::text AND conversation_id IN {conversations} AND response IS NOT NULL"""
_BEGIN_IN_NEW_CONVERSATION = f"""
WITH dropped AS (
    DELETE FROM chat.conversations WHERE id IN (
        SELECT id FROM chat.conversations WHERE user_id = $1::text
        ORDER BY updated_at DESC, id DESC
        OFFSET $5::int LIMIT $6::int)
    RETURNING id
), forgotten AS ({_FORGET_ANSWERS.format(conversations="(SELECT id FROM dropped)")}
), conversation AS (
    INSERT INTO chat.conversations (user_id, title, created_at, updated_at, turns)
    VALUES ($1::text, $2::text, $3::timestamptz, $3::timestamptz, 1)
    RETURNING id
)
INSERT INTO chat.messages (conversation_id, user_id, role, content, created_at)
SELECT id, $1::text, 'user', $4::text, $3::timestamptz FROM conversation
RETURNING conversation_id, id"""  # noqa: S608 - no input in the text

# One snapshot for every part: the history is the window before this message, and the message
# is inserted only if the conversation is (still) the user's and has room for it and its reply
# (fewer than ``$6`` turns). The room is checked and taken on the conversation's row as the
# UPDATE locks it (PostgreSQL checks the condition again on the row's latest version), so
# concurrent turns take it one after the other. The last column tells "full" from "not found".
_BEGIN_IN_CONVERSATION = f"""
WITH {_SUBJECT}, conversation AS (
    UPDATE chat.conversations SET updated_at = greatest(updated_at, $3::timestamptz),
                                  turns = turns + 1
    FROM subject
    WHERE id = $1::bigint AND user_id = $2::text AND turns < $6::int
    RETURNING id
), history AS (
    SELECT id, role, content, tool_calls, state FROM chat.messages
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
                                          'tool_calls', tool_calls, 'state', state)
                        ORDER BY id)::text
        FROM history),
       EXISTS (SELECT 1 FROM chat.conversations WHERE id = $1::bigint AND user_id = $2::text)
"""  # noqa: S608 - no input in the text

_ADD_MESSAGE = f"""
WITH {_SUBJECT}, conversation AS (
    UPDATE chat.conversations SET updated_at = greatest(updated_at, $3::timestamptz)
    FROM subject
    WHERE id = $1::bigint AND user_id = $2::text
    RETURNING id
)
INSERT INTO chat.messages (conversation_id, user_id, role, content, tool_calls, state,
                           created_at)
SELECT id, $2::text, $4::text, $5::text, $6::text::jsonb, $7::text::jsonb, $3::timestamptz
FROM conversation
RETURNING id"""  # noqa: S608 - no input in the text


_HISTORY_BEFORE = """
SELECT (SELECT id FROM chat.messages
        WHERE id = $3::bigint AND conversation_id = $1::bigint AND user_id = $2::text),
       (SELECT json_agg(json_build_object('role', role, 'content', content,
                                          'tool_calls', tool_calls, 'state', state)
                        ORDER BY id)::text
        FROM (SELECT id, role, content, tool_calls, state FROM chat.messages
              WHERE conversation_id = $1::bigint AND user_id = $2::text AND id < $3::bigint
              ORDER BY id DESC
              LIMIT $4::int) AS history)"""

# The reply and, in the same statement, the answer a keyed turn replays from now on.
_ADD_REPLY_OF_KEYED_TURN = f"""
WITH {_SUBJECT}, conversation AS (
    UPDATE chat.conversations SET updated_at = greatest(updated_at, $3::timestamptz)
    FROM subject
    WHERE id = $1::bigint AND user_id = $2::text
    RETURNING id
), reply AS (
    INSERT INTO chat.messages (conversation_id, user_id, role, content, tool_calls, state,
                               created_at)
    SELECT id, $2::text, $4::text, $5::text, $6::text::jsonb, $9::text::jsonb, $3::timestamptz
    FROM conversation
    RETURNING id
), answered AS (
    UPDATE chat.turn_keys SET response = $7::text, locked_until = $3::timestamptz
    WHERE id = $8::bigint AND user_id = $2::text AND EXISTS (SELECT 1 FROM reply)
)
SELECT id FROM reply"""  # noqa: S608 - no input in the text


@dataclass(frozen=True)
class StoredMessage:
    """A message of the history window, as the agent reads it."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None
    state: dict[str, Any] | None = None  # the assistant's DialogueState as stored


async def start_conversation(
    db: Database, user_id: str, *, first_message: str, now: datetime, max_conversations: int
) -> tuple[int, int]:
    """A new conversation of the user's holding its first message; the ids of both. The user
    keeps at most ``max_conversations``: the least recently active beyond go, with their
    messages. One transaction: the starts' lock, then the trim and the insert, read after it."""
    async with db.unit_of_work() as session:
        await session.fetch_row(_LOCK_STARTS, user_id)
        row = await session.fetch_row(
            _BEGIN_IN_NEW_CONVERSATION,
            user_id,
            title_for(first_message),
            now,
            first_message,
            max_conversations - 1,
            _TRIM_BATCH,
        )
    assert row is not None  # an INSERT ... VALUES always returns its row
    return int(row[0]), int(row[1])


async def continue_conversation(
    db: Database,
    user_id: str,
    *,
    conversation_id: int,
    message: str,
    now: datetime,
    window: int,
    max_messages: int,
) -> tuple[int, list[StoredMessage]]:
    """Append the user's message to their conversation; its id and the ``window`` messages
    before it, oldest first. Someone else's conversation is as unknown as a missing one; one
    without room for the message and its reply within ``max_messages`` is ``ConversationFull``
    (each turn counts two, its reply stored or not)."""
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    row = await db.fetch_row(
        _BEGIN_IN_CONVERSATION,
        conversation_id,
        user_id,
        now,
        message,
        window,
        max_messages // 2,
        write=True,
    )
    if row is None or row[0] is None:
        raise ConversationFull() if row is not None and row[2] else ConversationNotFound()
    return int(row[0]), [StoredMessage(**stored) for stored in json.loads(row[1] or "[]")]


async def history_before(
    db: Database, user_id: str, *, conversation_id: int, message_id: int, window: int
) -> list[StoredMessage]:
    """The ``window`` messages before the user's stored message ``message_id``, oldest first:
    the history of a turn that is run again. A message (or conversation) deleted since is
    "not found"."""
    row = await db.fetch_row(_HISTORY_BEFORE, conversation_id, user_id, message_id, window)
    if row is None or row[0] is None:
        raise ConversationNotFound()
    return [StoredMessage(**stored) for stored in json.loads(row[1] or "[]")]


async def add_message(
    db: Database,
    user_id: str,
    *,
    conversation_id: int,
    role: Role,
    content: str,
    now: datetime,
    tool_calls: list[dict[str, Any]] | None = None,
    answer_of_key: tuple[int, str] | None = None,
    state: dict[str, Any] | None = None,
) -> int:
    """Append a message, mark the conversation active now, and return the message's id.

    One statement: the message is inserted only if the conversation is (still) the user's,
    so a foreign id and a conversation deleted while a turn ran are both "not found".
    ``answer_of_key`` (a turn key's id, the answer to replay) is stored in the same statement.
    """
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    calls = None if tool_calls is None else json.dumps(tool_calls)
    stored_state = None if state is None else json.dumps(state)
    args: tuple[Any, ...] = (conversation_id, user_id, now, role.value, content, calls)
    if answer_of_key is None:
        row = await db.fetch_row(_ADD_MESSAGE, *args, stored_state, write=True)
    else:
        key_id, answer = answer_of_key
        row = await db.fetch_row(
            _ADD_REPLY_OF_KEYED_TURN, *args, answer, key_id, stored_state, write=True
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
        updated_at, last_id = decode_cursor_list(cursor, length=2)
        after, last_id = cursor_timestamp(updated_at), cursor_id(last_id)
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
        next_cursor = encode_cursor([last.updated_at, last.id])
    return Page(items=items, total=total, next_cursor=next_cursor)


async def list_messages(
    session: AsyncSession,
    user_id: str,
    *,
    conversation_id: int,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page[Message]:
    """One page of a conversation's messages, oldest first (or ``newest_first``); the cursor
    is the last id the page before held (with ``"desc"`` for newest first: a cursor of one
    order is ``InvalidCursor`` in the other), and the next page goes on past it."""
    condition = (Message.conversation_id == conversation_id) & (Message.user_id == user_id)
    statement = select(Message).where(condition)
    message_id = col(Message.id)
    order_mark = ["desc"] if newest_first else []
    if cursor is not None:
        key, *mark = decode_cursor_list(cursor, length=1 + len(order_mark))
        if mark != order_mark:
            raise InvalidCursor()
        last_id = cursor_id(key)
        statement = statement.where(message_id < last_id if newest_first else message_id > last_id)
    order = message_id.desc() if newest_first else message_id
    rows = (await session.exec(statement.order_by(order).limit(limit + 1))).all()
    total = await _count(session, condition, Message)
    items = rows[:limit]
    next_cursor = encode_cursor([items[-1].id, *order_mark]) if len(rows) > limit else None
    return Page(items=items, total=total, next_cursor=next_cursor)


async def delete_conversation(session: Session, user_id: str, *, conversation_id: int) -> None:
    """Delete the conversation and (by cascade) its messages. The subject's lock first: the
    purge deletes the messages before the conversations, this the conversation before its
    messages (shared/tombstones.py)."""
    if not 1 <= conversation_id <= MAX_ID:
        raise ConversationNotFound()
    await lock_subject(session, user_id)
    result = await session.exec(
        delete(Conversation)
        .where(col(Conversation.id) == conversation_id, col(Conversation.user_id) == user_id)
        .returning(col(Conversation.id))
    )
    if result.first() is None:
        raise ConversationNotFound()
    await session.fetch_row(
        _FORGET_ANSWERS.format(conversations="($2::bigint)"), user_id, conversation_id
    )


async def _count(session: AsyncSession, condition: Any, model: type[Any]) -> int:
    result = await session.exec(select(func.count()).select_from(model).where(condition))
    return int(result.one())


# --- Idempotency-Key of a turn ---------------------------------------------------------------
# A keyed turn claims its key (one row per user and key) before it stores the user's message,
# records which message that is, and stores its answer with the reply. A retry of the same
# request replays a stored answer, waits (409) while another attempt holds the lease, or takes
# over a turn whose attempt failed or died, on the same stored message, so the todo tools see
# the same add_task keys and add nothing twice.


@dataclass(frozen=True)
class KeyedTurn:
    """The claim of a turn key: run the turn (``answer`` None) as row ``id``, on its stored
    message when an earlier attempt stored one; or replay ``answer``."""

    id: int
    conversation_id: int | None = None
    message_id: int | None = None
    answer: str | None = None


# A key's claim: a new row, or an expired one taken over. Other expired keys are the worker's
# to delete (``shared.worker.forget_expired``): a range over the keys' expiry here would make
# PostgreSQL plan the claim anew on every execution (as todo's keyed create, bench/RESULTS.md)
# and lock other users' rows before the insert.
_CLAIM_TURN_KEY = """
INSERT INTO chat.turn_keys AS k
    (user_id, key, request_hash, locked_until, created_at, expires_at)
VALUES ($1::text, $2::text, $3::text, $4::timestamptz, $5::timestamptz, $6::timestamptz)
ON CONFLICT (user_id, key) DO UPDATE SET
    request_hash = EXCLUDED.request_hash, conversation_id = NULL, message_id = NULL,
    response = NULL, locked_until = EXCLUDED.locked_until, created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= EXCLUDED.created_at
RETURNING id"""

_TAKE_OVER_TURN_KEY = """
UPDATE chat.turn_keys SET locked_until = $4::timestamptz
WHERE user_id = $1::text AND key = $2::text AND request_hash = $3::text
  AND response IS NULL AND locked_until <= $5::timestamptz AND expires_at > $5::timestamptz
RETURNING id, conversation_id, message_id"""

_READ_TURN_KEY = """
SELECT request_hash, response FROM chat.turn_keys WHERE user_id = $1::text AND key = $2::text"""

_RECORD_TURN_MESSAGE = """
UPDATE chat.turn_keys SET conversation_id = $3::bigint, message_id = $4::bigint
WHERE id = $1::bigint AND user_id = $2::text
RETURNING id"""

_RELEASE_TURN_KEY = """
UPDATE chat.turn_keys SET locked_until = $3::timestamptz
WHERE id = $1::bigint AND user_id = $2::text AND response IS NULL
RETURNING id"""


async def claim_turn_key(
    db: Database,
    user_id: str,
    *,
    key: str,
    request_hash: str,
    now: datetime,
    lease: timedelta,
    ttl: timedelta,
) -> KeyedTurn:
    """Claim ``key`` for a turn: new (or expired), or an earlier attempt's whose lease lapsed
    without an answer; or the stored answer to replay. ``IdempotencyKeyReused`` for the same
    key with another body, ``IdempotentRequestInProgress`` while another attempt holds the
    lease."""
    row = await db.fetch_row(
        _CLAIM_TURN_KEY,
        user_id,
        key,
        request_hash,
        now + lease,
        now,
        now + ttl,
        write=True,
    )
    if row is not None:
        return KeyedTurn(id=int(row[0]))
    row = await db.fetch_row(
        _TAKE_OVER_TURN_KEY, user_id, key, request_hash, now + lease, now, write=True
    )
    if row is not None:
        return KeyedTurn(id=int(row[0]), conversation_id=row[1], message_id=row[2])
    row = await db.fetch_row(_READ_TURN_KEY, user_id, key)
    if row is not None and row[0] != request_hash:
        raise IdempotencyKeyReused()
    if row is not None and row[1] is not None:
        return KeyedTurn(id=0, answer=str(row[1]))
    raise IdempotentRequestInProgress(headers={"Retry-After": "1"})


async def record_turn_message(
    db: Database, user_id: str, *, key_id: int, conversation_id: int, message_id: int
) -> None:
    """Which stored user message the keyed turn is about (a take-over runs on it again)."""
    await db.fetch_row(
        _RECORD_TURN_MESSAGE, key_id, user_id, conversation_id, message_id, write=True
    )


async def release_turn_key(db: Database, user_id: str, *, key_id: int, now: datetime) -> None:
    """End a failed attempt's lease, so a retry takes the turn over at once."""
    await db.fetch_row(_RELEASE_TURN_KEY, key_id, user_id, now, write=True)
