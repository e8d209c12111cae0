"""Task events (docs/events.md): every change of a task writes its event into the todo outbox
in the change's transaction, whatever the path; the data is the task as the API answers it
and valid against the schema the page documents; nothing is written for a change that does
not happen; a purged account's rows go without events; a user's task events take turns with
the events ``add_event`` writes for that user; the worker's dispatcher carries them to the
tasks stream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from jsonschema import ValidationError
from sqlalchemy import text

from shared.db import Database
from shared.events import TASKS_STREAM, Event, RedisStreamPublisher, redis_client
from shared.outbox import OutboxDispatcher, add_event, lock_keys
from tests.support.errors import assert_error
from tests.support.event_schemas import documented_types, validate_data
from tests.todo.conftest import User, create, events_of, last_event_id
from todo_service.events import PURGE
from todo_service.models import (
    DESCRIPTION_MAX,
    OUTBOX,
    TAG_MAX,
    TAGS_MAX,
    TASK_EVENT_MAX_BYTES,
    TITLE_MAX,
)

TASK_TYPES = ("task.created", "task.updated", "task.completed", "task.reopened", "task.deleted")
# The fields of a task in version 1 of the task events: the documented schema's.
TASK_V1_FIELDS = frozenset(
    documented_types()[("task.created", 1)].schema["$defs"]["task"]["properties"]
)


def as_answered(task: dict[str, Any]) -> dict[str, Any]:
    """The version-1 fields of a task as the API answered it."""
    return {name: value for name, value in task.items() if name in TASK_V1_FIELDS}


def check_event(event: dict[str, Any], user: User, type: str) -> None:
    assert (event["stream"], event["key"], event["type"], event["version"]) == (
        TASKS_STREAM,
        user.sub,
        type,
        1,
    )
    assert event["data"]["user_id"] == user.sub
    validate_data(type, 1, event["data"])


# --- REST ----------------------------------------------------------------------------------


async def test_each_rest_change_writes_its_event_with_the_task_as_answered(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    start = await last_event_id(database)
    created = await create(client, alice, title="Call the dentist", tags=["health"])
    url = f"/api/tasks/{created['id']}"
    answers = [("task.created", created)]
    for method, path, body, type in [
        ("PATCH", "", {"title": "Call the dentist about the crown"}, "task.updated"),
        ("PUT", "", {"title": "Call the dentist", "priority": "high"}, "task.updated"),
        ("PATCH", "/complete", None, "task.completed"),
        ("PATCH", "/complete", {"completed": False}, "task.reopened"),
        ("PATCH", "", {"completed": True, "description": "ask about Friday"}, "task.completed"),
        ("PATCH", "", {"completed": False, "due_at": "2026-12-11T14:00:00Z"}, "task.reopened"),
    ]:
        response = await client.request(method, url + path, json=body, headers=alice.headers)
        assert response.status_code == 200, response.text
        answers.append((type, response.json()))
    assert (await client.delete(url, headers=alice.headers)).status_code == 204

    events = await events_of(database, alice, after=start)
    assert [event["type"] for event in events] == [type for type, _ in answers] + ["task.deleted"]
    for event, (type, answer) in zip(events, answers, strict=False):
        check_event(event, alice, type)
        assert event["data"]["task"] == as_answered(answer)
    check_event(events[-1], alice, "task.deleted")
    assert events[-1]["data"] == {"user_id": alice.sub, "task_id": created["id"]}


async def test_a_write_that_changes_nothing_writes_no_event(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "create-once"}
    first = await client.post("/api/tasks", json={"title": "once"}, headers=headers)
    assert first.status_code == 201
    start = await last_event_id(database)

    replay = await client.post("/api/tasks", json={"title": "once"}, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    same = await client.patch(
        f"/api/tasks/{first.json()['id']}", json={"title": "once"}, headers=alice.headers
    )
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert await events_of(database, alice, after=start) == []


async def test_an_update_that_changes_no_column_writes_no_event(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    task = await create(client, alice, tags=["home"])
    start = await last_event_id(database)
    async with database.unit_of_work() as session:
        await (await session.connection()).execute(
            text("UPDATE todo.tasks SET title = title, tags = tags WHERE id = :id"),
            {"id": task["id"]},
        )
    assert await last_event_id(database) == start


async def test_a_refused_write_writes_no_event(
    client: httpx.AsyncClient, database: Database, alice: User, bob: User
) -> None:
    task = await create(client, alice)
    url = f"/api/tasks/{task['id']}"
    start = await last_event_id(database)

    stale = await client.patch(
        url, json={"title": "late"}, headers={**alice.headers, "If-Match": '"7"'}
    )
    assert_error(stale, 412, "precondition_failed")
    assert_error(await client.delete(url, headers=bob.headers), 404, "task_not_found")
    assert_error(await client.patch(url + "/complete", headers=bob.headers), 404, "task_not_found")
    unknown = await client.patch(url, json={"colour": "red"}, headers=alice.headers)
    assert unknown.status_code == 422
    assert await last_event_id(database) == start


async def test_completing_a_recurring_task_writes_its_next_occurrence_then_the_completion(
    client: httpx.AsyncClient, database: Database, alice: User
) -> None:
    task = await create(client, alice, title="Water the plants", recurrence="weekly")
    start = await last_event_id(database)

    done = await client.patch(f"/api/tasks/{task['id']}/complete", headers=alice.headers)
    assert done.status_code == 200
    following_id = done.json()["next_occurrence_id"]
    following = (await client.get(f"/api/tasks/{following_id}", headers=alice.headers)).json()
    events = await events_of(database, alice, after=start)
    assert [(event["type"], event["data"]["task"]) for event in events] == [
        ("task.created", as_answered(following)),
        ("task.completed", as_answered(done.json())),
    ]

    # Deleting the occurrence clears the predecessor's link first: an update, then the delete.
    middle = await last_event_id(database)
    deleted = await client.delete(f"/api/tasks/{following_id}", headers=alice.headers)
    assert deleted.status_code == 204
    predecessor = (await client.get(f"/api/tasks/{task['id']}", headers=alice.headers)).json()
    events = await events_of(database, alice, after=middle)
    assert [event["type"] for event in events] == ["task.updated", "task.deleted"]
    assert events[0]["data"]["task"] == as_answered(predecessor)
    assert predecessor["next_occurrence_id"] is None
    assert events[1]["data"] == {"user_id": alice.sub, "task_id": following_id}
    for event in events:
        check_event(event, alice, event["type"])


async def test_purging_a_deleted_account_writes_no_task_events(
    client: httpx.AsyncClient, database: Database, alice: User, bob: User
) -> None:
    for title in ("one", "two"):
        await create(client, alice, title=title)
    bobs = await create(client, bob)
    start = await last_event_id(database)

    async with database.unit_of_work() as session:
        await PURGE.purge_user(session, alice.sub)
    assert await events_of(database, alice, after=start) == []
    assert (
        await database.fetch_row("SELECT 1 FROM todo.tasks WHERE user_id = $1", alice.sub) is None
    )

    # Only the buried subject's deletions go silently.
    assert (await client.delete(f"/api/tasks/{bobs['id']}", headers=bob.headers)).status_code == 204
    assert [event["type"] for event in await events_of(database, bob, after=start)] == [
        "task.deleted"
    ]


# --- the documented schemas ------------------------------------------------------------------


def test_every_task_event_type_is_documented_with_a_valid_example() -> None:
    documented = documented_types()
    for type in TASK_TYPES:
        assert documented[(type, 1)].examples, type
        for example in documented[(type, 1)].examples:
            validate_data(type, 1, example)


@pytest.mark.parametrize(
    ("type", "data"),
    [
        ("task.completed", {"completed": False}),
        ("task.reopened", {"completed_at": "2026-12-06T05:00:00.000000Z"}),
        ("task.created", {"colour": "red"}),
        ("task.created", {"due_at": "Friday at 3pm"}),
        ("task.updated", {"priority": "urgent"}),
    ],
)
def test_the_documented_schemas_refuse_what_no_event_carries(
    type: str, data: dict[str, Any]
) -> None:
    example = documented_types()[(type, 1)].examples[0]
    with pytest.raises(ValidationError):
        validate_data(type, 1, {**example, "task": {**example["task"], **data}})


# --- order with add_event ---------------------------------------------------------------------


async def test_task_events_take_turns_with_add_event_for_the_same_user(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User, bob: User
) -> None:
    async with committed_database.unit_of_work() as session:
        held = await add_event(
            session, OUTBOX, stream=TASKS_STREAM, key=alice.sub, type="test.held", version=1,
            data={"user_id": alice.sub},
        )  # fmt: skip
        creating = asyncio.create_task(create(committed_client, alice, title="waits"))
        # Another user's write does not wait.
        await asyncio.wait_for(create(committed_client, bob), timeout=10)
        await asyncio.sleep(0.3)
        assert not creating.done()
    await asyncio.wait_for(creating, timeout=10)

    events = await events_of(committed_database, alice)
    assert [(event["id"] > held, event["type"]) for event in events] == [
        (False, "test.held"),
        (True, "task.created"),
    ]


async def test_a_task_write_queues_on_the_users_outbox_lock_before_touching_the_counter(
    committed_client: httpx.AsyncClient, committed_database: Database, alice: User
) -> None:
    """A user's concurrent writes wait for the user's outbox lock holding nothing else: not
    the user's counter row, which every commit would otherwise wake all of them on; and they
    take the two in the order add_event's callers take them (the outbox lock first)."""
    await create(committed_client, alice, title="first")  # the counter row exists
    async with committed_database.unit_of_work() as session:
        await lock_keys(session, OUTBOX, [alice.sub])
        creating = asyncio.create_task(create(committed_client, alice, title="waits"))
        await asyncio.sleep(0.3)
        assert not creating.done()
        async with committed_database.unit_of_work() as other:
            await other.fetch_row("SET LOCAL lock_timeout = '2s'")
            counter = await other.fetch_row(
                "SELECT total FROM todo.task_counts WHERE user_id = $1 FOR UPDATE", alice.sub
            )
        assert counter is not None
        assert counter[0] == 1
    await asyncio.wait_for(creating, timeout=10)
    listed = await committed_client.get("/api/tasks", headers=alice.headers)
    assert listed.headers["X-Total-Count"] == "2"


# --- on the stream ---------------------------------------------------------------------------


async def test_task_events_reach_the_stream_valid_against_the_documented_schemas(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    redis_url: str,
    alice: User,
    bob: User,
) -> None:
    for user in (alice, bob):
        task = await create(committed_client, user, recurrence="daily")
        url = f"/api/tasks/{task['id']}"
        for method, path, body in [
            ("PATCH", "", {"title": "renamed", "tags": ["home"]}),
            ("PATCH", "/complete", None),
            ("PATCH", "/complete", None),
            ("DELETE", "", None),
        ]:
            response = await committed_client.request(
                method, url + path, json=body, headers=user.headers
            )
            assert response.status_code in (200, 204), response.text

    entries = await published(committed_database, redis_url)
    stream = [Event.from_json(fields[b"event"]) for _, fields in entries]
    for user in (alice, bob):
        mine = [event for event in stream if event.key == user.sub]
        assert [event.type for event in mine] == [
            "task.created",
            "task.updated",
            "task.created",  # the next occurrence
            "task.completed",
            "task.reopened",
            "task.deleted",
        ]
        assert [int(event.id) for event in mine] == sorted(int(event.id) for event in mine)
        for event in mine:
            assert event.version == 1
            assert event.data["user_id"] == user.sub
            validate_data(event.type, event.version, event.data)


# Characters at their largest in an event: an emoji outside the BMP (4 bytes of UTF-8, a
# 12-byte surrogate-pair escape in ASCII JSON) and a control character (a 6-byte escape).
@pytest.mark.parametrize("character", ["\N{GRINNING FACE}", "\x01"], ids=["emoji", "control"])
async def test_the_largest_task_event_on_the_stream_stays_within_its_stated_bound(
    committed_client: httpx.AsyncClient,
    committed_database: Database,
    redis_url: str,
    alice: User,
    character: str,
) -> None:
    fields = {
        "title": character * TITLE_MAX,
        "description": character * DESCRIPTION_MAX,
        # Distinct tags of TAG_MAX characters each.
        "tags": [f"{n}" + character * (TAG_MAX - 1) for n in range(TAGS_MAX)],
        "priority": "medium",
        "due_at": "2026-12-11T14:00:00.000000Z",
        "recurrence": "monthly",
    }
    task = await create(committed_client, alice, **fields)
    # Completing it sets every field an event can carry: completed_at, next_occurrence_id.
    completed = await committed_client.patch(
        f"/api/tasks/{task['id']}/complete", headers=alice.headers
    )
    assert completed.status_code == 200, completed.text

    entries = await published(committed_database, redis_url)
    sizes = {Event.from_json(f[b"event"]).type: len(f[b"event"]) for _, f in entries}
    assert set(sizes) == {"task.created", "task.completed"}
    assert max(sizes.values()) <= TASK_EVENT_MAX_BYTES, sizes


async def published(db: Database, redis_url: str) -> list[Any]:
    """Publish the whole outbox to a real Redis, as the todo worker's dispatcher does; the
    tasks stream's entries."""
    redis = redis_client(redis_url)
    try:
        dispatcher = OutboxDispatcher(
            db, OUTBOX, RedisStreamPublisher(redis, maxlen=10_000), batch=4, retention_seconds=3600
        )
        while await dispatcher.dispatch_once():
            pass
        return list(await redis.xrange(TASKS_STREAM))
    finally:
        await redis.aclose()
