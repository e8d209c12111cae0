"""The service layer without HTTP, as the MCP tools use it: same rules, own unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import FrozenClock
from shared.db import Database, create_engine
from todo_service import service
from todo_service.schemas import TaskCreate, TaskPatch, TaskQuery, TaskReplace

ALICE = "alice-subject"
BOB = "bob-subject"


async def test_unit_of_work_commits_on_success(
    committed_database: Database,
) -> None:
    async with committed_database.unit_of_work() as session:
        task = await service.add_task(session, ALICE, data=TaskCreate(title="kept"))

    async with committed_database.unit_of_work() as session:
        assert (await service.get_task(session, ALICE, task_id=task.id)).title == "kept"


async def test_unit_of_work_rolls_back_on_error(
    committed_database: Database,
) -> None:
    created: list[int] = []

    async def write_then_fail() -> None:
        async with committed_database.unit_of_work() as session:
            created.append((await service.add_task(session, ALICE, data=TaskCreate(title="x"))).id)
            raise RuntimeError("the caller failed after the write")

    with pytest.raises(RuntimeError):
        await write_then_fail()

    async with committed_database.unit_of_work() as session:
        with pytest.raises(service.TaskNotFound):
            await service.get_task(session, ALICE, task_id=created[0])
    page = await service.list_tasks(committed_database, ALICE, query=TaskQuery())
    assert page.total == 0


async def test_a_domain_error_rolls_back_the_whole_unit(
    committed_database: Database,
) -> None:

    async def write_then_miss() -> None:
        async with committed_database.unit_of_work() as session:
            await service.add_task(session, ALICE, data=TaskCreate(title="x"))
            await service.delete_task(session, ALICE, task_id=123456)

    with pytest.raises(service.TaskNotFound):
        await write_then_miss()

    assert (await service.list_tasks(committed_database, ALICE, query=TaskQuery())).total == 0


async def test_every_function_treats_another_users_task_as_missing(
    database: Database,
) -> None:
    async with database.unit_of_work() as session:
        task = await service.add_task(session, ALICE, data=TaskCreate(title="mine"))
        calls = [
            service.get_task(session, BOB, task_id=task.id),
            service.update_task(session, BOB, task_id=task.id, changes=TaskReplace(title="x")),
            service.update_task(session, BOB, task_id=task.id, changes=TaskPatch(title="x")),
            service.set_completed(session, BOB, task_id=task.id),
            service.delete_task(session, BOB, task_id=task.id),
        ]
        for call in calls:
            with pytest.raises(service.TaskNotFound):
                await call
        assert await service.get_task(session, ALICE, task_id=task.id) == task
        assert (await service.list_tasks(database, BOB, query=TaskQuery())).total == 0


@pytest.mark.parametrize("task_id", [0, -1, 2**63, 10**30])
async def test_ids_no_task_can_have_are_not_found_without_a_query(
    database: Database, task_id: int
) -> None:
    async with database.unit_of_work() as session:
        with pytest.raises(service.TaskNotFound):
            await service.get_task(session, ALICE, task_id=task_id)
        with pytest.raises(service.TaskNotFound):
            await service.set_completed(session, ALICE, task_id=task_id)


def test_the_inputs_validate_like_the_http_bodies() -> None:
    with pytest.raises(ValidationError):
        TaskCreate(title="   ")
    with pytest.raises(ValidationError):
        TaskCreate.model_validate({"title": "x", "owner": "bob"})
    with pytest.raises(ValidationError):
        TaskPatch.model_validate({"title": None})
    assert TaskCreate(title=" x ", tags=["A", "a"]).model_dump()["tags"] == ["a"]


async def test_set_completed_toggles_or_sets(
    database: Database,
) -> None:
    clock = FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))
    async with database.unit_of_work() as session:
        task = await service.add_task(session, ALICE, data=TaskCreate(title="t"), clock=clock)
        toggled = await service.set_completed(session, ALICE, task_id=task.id, clock=clock)
        assert toggled.completed is True
        assert toggled.completed_at == clock.now
        kept = await service.set_completed(session, ALICE, task_id=task.id, completed=True)
        assert kept.version == toggled.version
        back = await service.set_completed(session, ALICE, task_id=task.id)
        assert back.completed is False
        assert back.completed_at is None


async def test_an_if_match_that_accepts_no_version_is_stale(
    database: Database,
) -> None:
    async with database.unit_of_work() as session:
        task = await service.add_task(session, ALICE, data=TaskCreate(title="t"))
        with pytest.raises(service.StaleTask):
            await service.update_task(
                session, ALICE, task_id=task.id, changes=TaskPatch(title="u"), if_match=()
            )
        updated = await service.update_task(
            session, ALICE, task_id=task.id, changes=TaskPatch(title="u"), if_match=(1,)
        )
        assert updated.version == 2


async def test_list_tasks_returns_models_and_a_cursor(
    database: Database,
) -> None:
    clock = FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))
    async with database.unit_of_work() as session:
        created = []
        for i in range(5):
            created.append(
                await service.add_task(session, ALICE, data=TaskCreate(title=f"t{i}"), clock=clock)
            )
            clock.advance(seconds=1)

        first = await service.list_tasks(database, ALICE, query=TaskQuery(limit=3))
        assert first.total == 5
        assert first.items == list(reversed(created))[:3]
        assert first.next_cursor is not None
        rest = await service.list_tasks(
            database, ALICE, query=TaskQuery(limit=3, cursor=first.next_cursor)
        )
        assert rest.items == list(reversed(created))[3:]
        assert rest.next_cursor is None

        with pytest.raises(service.InvalidCursor):
            await service.list_tasks(database, ALICE, query=TaskQuery(cursor="nope"))


async def test_counters_follow_writes_made_outside_the_service(
    database: Database,
) -> None:
    """The totals are kept by triggers, so even a manual fix in SQL keeps them exact."""
    async with database.unit_of_work() as session:
        for i in range(4):
            task = await service.add_task(session, ALICE, data=TaskCreate(title=f"t{i}"))
        await service.set_completed(session, ALICE, task_id=task.id)
        connection = await session.connection()
        await connection.execute(
            text("UPDATE todo.tasks SET user_id = :bob WHERE id = :id"),
            {"bob": BOB, "id": task.id},
        )
        await connection.execute(
            text("DELETE FROM todo.tasks WHERE user_id = :alice AND title = 't0'"),
            {"alice": ALICE},
        )

        for user, total, completed in ((ALICE, 2, 0), (BOB, 1, 1)):
            everything = await service.list_tasks(database, user, query=TaskQuery())
            done = await service.list_tasks(database, user, query=TaskQuery(status="completed"))
            assert (everything.total, done.total) == (total, completed)
            assert everything.total == len(everything.items)


def count_transactions(engine: AsyncEngine) -> list[int]:
    begun: list[int] = []
    event.listen(engine.sync_engine, "begin", lambda connection: begun.append(1))
    return begun


async def test_a_list_reads_without_opening_a_transaction(migrated_url: str) -> None:
    db = Database.open(migrated_url)
    begun = count_transactions(db.engine)
    try:
        page = await service.list_tasks(db, "nobody", query=TaskQuery())
        assert page.total == 0
        await service.list_tasks_json(db, "nobody", query=TaskQuery())
        assert begun == []
    finally:
        await db.dispose()


async def test_behind_a_transaction_pooler_a_list_reads_the_same(migrated_url: str) -> None:
    # The explicit transaction itself is Database.fetch_row's (tests/shared/test_database.py).
    db = Database(create_engine(migrated_url), pooled=True)
    try:
        page = await service.list_tasks(db, "nobody", query=TaskQuery())
        assert page.total == 0
        assert page.items == []
    finally:
        await db.dispose()


async def test_a_connection_the_server_closed_in_the_pool_costs_no_list(
    migrated_url: str, committed_database: Database
) -> None:
    # One pooled connection, never pinged before use: the driver knows it closed, so the
    # checkout takes a new one instead.
    db = Database.open(migrated_url, pool_size=1, max_overflow=0, ping_after_idle=3600.0)
    try:
        (pid,) = await db.fetch_row("SELECT pg_backend_pid()") or ()
        await committed_database.fetch_row("SELECT pg_terminate_backend($1, 5000)", pid)

        assert (await service.list_tasks(db, ALICE, query=TaskQuery())).total == 0
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()


async def test_a_connection_that_dies_under_a_page_read_is_not_reused(migrated_url: str) -> None:
    # A page read is one ``Database.fetch_row``, straight from the pool. Its statement ends
    # its own backend here: the connection must not go back.
    db = Database.open(migrated_url, pool_size=1, max_overflow=0, ping_after_idle=3600.0)
    pid = "SELECT pg_backend_pid()"
    try:
        killed = await db.fetch_row(pid)
        with pytest.raises(Exception, match=r"terminat|closed"):
            await db.fetch_row("SELECT pg_terminate_backend(pg_backend_pid(), 5000)")
        assert await db.fetch_row(pid) != killed
        assert db.engine.sync_engine.pool.checkedout() == 0
    finally:
        await db.dispose()
