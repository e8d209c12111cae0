"""Where a conversation stands is stored data, not the wording of a reply.

A conversation stored before revision 0003 (old reply texts, no state) continues after the
upgrade; and with every stored reply reworded, waiting conversations continue unchanged.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chat_service.agents.state import DialogueState
from shared.migrations import upgrade
from tests.chat.conftest import User, stored_messages
from tests.deploy.support import connect

OLD_ASK_TITLE = "Sure — what should the new task be called?"
OLD_ASK_WHICH = "Which one did you mean? You can answer with its number."


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    name = f"chat_migration_{secrets.token_hex(4)}"
    server = await connect(database_url)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


async def test_conversations_stored_before_0003_get_their_state_from_the_old_texts(
    fresh_database: str,
) -> None:
    await asyncio.to_thread(upgrade, "chat_service", fresh_database, "0002")
    db = await connect(fresh_database)
    try:
        conversation = await db.fetchval(
            "INSERT INTO chat.conversations (user_id, title) VALUES ('ann', 'x') RETURNING id"
        )
        messages = [
            ("user", "Add a task"),
            ("assistant", OLD_ASK_TITLE),
            ("user", "make the report task high priority"),
            (
                "assistant",
                f"I found 2 tasks matching “report”:\n• 7: Report\n• 9: Report 2\n{OLD_ASK_WHICH}",
            ),
            ("user", "delete it"),
            ("assistant", "Which task do you mean? Give me its number."),
        ]
        for role, content in messages:
            await db.execute(
                "INSERT INTO chat.messages (conversation_id, user_id, role, content)"
                " VALUES ($1, 'ann', $2, $3)",
                conversation,
                role,
                content,
            )
        await asyncio.to_thread(upgrade, "chat_service", fresh_database, "head")
        rows = await db.fetch("SELECT role, state FROM chat.messages ORDER BY id")
    finally:
        await db.close()
    states = [json.loads(row["state"]) if row["state"] else None for row in rows]
    assert states == [
        None,
        {"awaiting": "title", "command": {"action": "add_task"}},
        None,
        {
            "awaiting": "choice",
            "candidates": [7, 9],
            "command": {"action": "update_task", "arguments": {"priority": "high"}},
        },
        None,
        None,
    ]
    for state in states:
        DialogueState.load(state)  # every backfilled value is a valid state


@pytest.fixture
async def reworded(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> Any:
    async def reword() -> None:
        async with committed_sessionmaker() as session:
            await session.exec(
                text(
                    "UPDATE chat.messages SET content = 'Reworded: ' || md5(content)"
                    " WHERE role = 'assistant'"
                )
            )
            await session.commit()

    return reword


async def say(
    client: httpx.AsyncClient, user: User, message: str, conversation: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if conversation is not None:
        body["conversation_id"] = conversation
    response = await client.post("/api/chat", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def calls(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["arguments"]) for c in answer["tool_calls"]]


async def test_waiting_conversations_continue_with_every_reply_reworded(
    agent: httpx.AsyncClient,
    alice: User,
    reworded: Any,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first = (await say(agent, alice, "add 'Book dentist'"))["tool_calls"][0]["result"]["task_id"]
    second = (await say(agent, alice, "add 'Book hotel'"))["tool_calls"][0]["result"]["task_id"]
    title = await say(agent, alice, "Add a task")
    choice = await say(agent, alice, "make the book task urgent")
    assert calls(choice) == [("list_tasks", {"status": "all", "q": "book"})]
    await reworded()
    stored = await stored_messages(committed_sessionmaker, choice["conversation_id"])
    assert all(m.content.startswith("Reworded: ") for m in stored if m.role == "assistant")
    assert stored[-1].state["awaiting"] == "choice"
    listed = stored[-1].state["candidates"]
    assert sorted(listed) == sorted([first, second])

    named = await say(agent, alice, "water the plants", title["conversation_id"])
    assert calls(named) == [("add_task", {"title": "Water the plants"})]
    chosen = await say(agent, alice, "the second one", choice["conversation_id"])
    assert calls(chosen) == [("update_task", {"task_id": listed[1], "priority": "high"})]
