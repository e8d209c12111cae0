"""The todo outbox never loses a task event: under a write load (creates, updates, completions,
reopenings and deletions through the REST API, and service-layer transactions that write and
then roll back), the todo worker and the PostgreSQL server are each killed with SIGKILL at
random points, several times, and started again (the database through crash recovery). In
the end every committed change's event is on the tasks stream at least once, none of a
rolled-back change is, and each user's events are in the order of the changes.

Each user's changes are made one after the other, and a request that gets no answer (the
database died under it) is sent again until it has one: a create with the same
``Idempotency-Key``, the others with ``If-Match`` of the version they changed. A repeat
either makes the change (the first attempt did not commit) or says it was made (a replayed
create, 412 or 404), so every change commits exactly once and each user's expected events
are known exactly: the stream, each event id taken once, must hold exactly them.

Bounded: ``CRASH_TODO_USERS`` users (default 24) of ``CRASH_TODO_CHANGES`` changes each
(default 10), the load going on (at most ``LOAD_SECONDS``) until the worker was killed
``CRASH_WORKER_KILLS`` times (default 3) and PostgreSQL ``CRASH_PG_KILLS`` times (default 3);
a PostgreSQL of its own in a temporary directory, everything on loopback or a Unix socket;
``CRASH_SEED`` replays a run's choices (the kill points depend on timing too).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.db import Database, create_engine
from shared.embedded_pg import EmbeddedPostgres
from shared.events import TASKS_STREAM
from tests.support.database import own_postgres
from tests.support.serving import serve
from tests.support.tokens import TestIssuer
from tests.support.workers import (
    WorkerProcess,
    assert_ids_increase_per_key,
    first_deliveries,
    read_stream,
)
from todo_service import service
from todo_service.app import create_app
from todo_service.schemas import TaskCreate, TaskPatch
from todo_service.settings import TodoSettings

pytestmark = pytest.mark.timeout(240)

USERS = int(os.environ.get("CRASH_TODO_USERS", "24"))
CHANGES = int(os.environ.get("CRASH_TODO_CHANGES", "10"))
WORKER_KILLS = int(os.environ.get("CRASH_WORKER_KILLS", "3"))
PG_KILLS = int(os.environ.get("CRASH_PG_KILLS", "3"))
LOAD_SECONDS = 50.0
CONCURRENT_USERS = 6
# How long one change may take to get an answer, the database dying under it included.
CHANGE_SECONDS = 45.0
DRAIN_SECONDS = 45.0
SEED = int(os.environ.get("CRASH_SEED", str(random.randrange(1_000_000))))
ROLLED_BACK_TITLE = "rolled back"


class RolledBack(Exception):
    pass


@dataclass
class Life:
    """One user's changes, made one after the other, and the events they must produce."""

    sub: str
    headers: dict[str, str]
    # The user's tasks: id -> (version, completed).
    tasks: dict[int, tuple[int, bool]] = field(default_factory=dict)
    expected: list[tuple[str, int]] = field(default_factory=list)
    rolled_back: int = 0
    repeated: int = 0


async def settle(
    client: httpx.AsyncClient, life: Life, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, bool]:
    """Send until the service answers something other than an outage; the answer, and
    whether an earlier attempt went unanswered (it may have committed)."""
    unanswered = False
    deadline = time.monotonic() + CHANGE_SECONDS
    while True:
        try:
            response = await client.request(method, url, **kwargs)
        except Exception:  # the database died under the request, past the error handlers
            response = None
        if response is not None and response.status_code < 500 and response.status_code != 409:
            return response, unanswered
        if response is None or response.status_code >= 500:
            unanswered = True
        life.repeated += 1
        assert time.monotonic() < deadline, f"{method} {url}: no answer in {CHANGE_SECONDS} s"
        await asyncio.sleep(0.1)


async def create(client: httpx.AsyncClient, life: Life, n: int) -> None:
    headers = {**life.headers, "Idempotency-Key": uuid.uuid4().hex}
    response, _ = await settle(
        client, life, "POST", "/api/tasks", json={"title": f"task {n}"}, headers=headers
    )
    assert response.status_code == 201, response.text
    task = response.json()
    life.tasks[task["id"]] = (task["version"], task["completed"])
    life.expected.append(("task.created", task["id"]))


async def change(
    client: httpx.AsyncClient, life: Life, rng: random.Random, n: int, kind: str
) -> None:
    """An update, a completion or reopening, or a deletion of one of the user's tasks, at
    the version last seen: a 412 (or a 404 for a deletion) is only possible after an
    unanswered attempt, which then committed."""
    task_id = rng.choice(sorted(life.tasks))
    version, completed = life.tasks[task_id]
    headers = {**life.headers, "If-Match": f'"{version}"'}
    url = f"/api/tasks/{task_id}"
    if kind == "delete":
        response, unanswered = await settle(client, life, "DELETE", url, headers=headers)
        assert response.status_code == 204 or (unanswered and response.status_code == 404), (
            response.status_code,
            response.text,
        )
        del life.tasks[task_id]
        life.expected.append(("task.deleted", task_id))
        return
    if kind == "update":
        method, path, body, type = "PATCH", url, {"title": f"edit {n}"}, "task.updated"
    else:
        body = {"completed": not completed}
        method, path = "PATCH", f"{url}/complete"
        type = "task.reopened" if completed else "task.completed"
    response, unanswered = await settle(client, life, method, path, json=body, headers=headers)
    assert response.status_code == 200 or (unanswered and response.status_code == 412), (
        response.status_code,
        response.text,
    )
    now_completed = body.get("completed", completed)
    life.tasks[task_id] = (version + 1, bool(now_completed))
    life.expected.append((type, task_id))


async def roll_back(db: Database, life: Life, rng: random.Random) -> None:
    """A transaction that writes (as an MCP tool's does) and then rolls back."""
    try:
        async with db.unit_of_work() as session:
            choice = rng.choice(["add", "patch", "complete", "delete"] if life.tasks else ["add"])
            task_id = rng.choice(sorted(life.tasks)) if life.tasks else 0
            if choice == "add":
                await service.add_task(session, life.sub, data=TaskCreate(title=ROLLED_BACK_TITLE))
            elif choice == "patch":
                changes = TaskPatch(title=ROLLED_BACK_TITLE)
                await service.update_task(session, life.sub, task_id=task_id, changes=changes)
            elif choice == "complete":
                await service.set_completed(session, life.sub, task_id=task_id)
            else:
                await service.delete_task(session, life.sub, task_id=task_id)
            raise RolledBack()
    except RolledBack:
        life.rolled_back += 1
    except Exception:  # the database died under it: rolled back all the same
        life.rolled_back += 1


async def live(client: httpx.AsyncClient, db: Database, life: Life, rng: random.Random) -> Life:
    for n in range(CHANGES):
        roll = rng.random()
        if not life.tasks or roll < 0.3:
            await create(client, life, n)
        elif roll < 0.5:
            await change(client, life, rng, n, "update")
        elif roll < 0.7:
            await change(client, life, rng, n, "complete")
        elif roll < 0.85:
            await change(client, life, rng, n, "delete")
        else:
            await roll_back(db, life, rng)
        await asyncio.sleep(rng.uniform(0.0, 0.15))
    return life


def todo_worker(database_url: str, redis_url: str, log: Path) -> WorkerProcess:
    """``python -m todo_service.worker``, publishing in small batches with short pauses."""
    return WorkerProcess(
        "todo_service.worker",
        {
            "TODO_DATABASE_URL": database_url,
            "EVENTS_REDIS_URL": redis_url,
            "TODO_EVENTS_BATCH": "3",
            "TODO_EVENTS_IDLE_SECONDS": "0.05",
            "TODO_DB_POOL_SIZE": "2",
        },
        log,
    )


async def test_no_committed_task_event_is_lost_when_the_worker_and_postgresql_are_killed(
    redis_url: str, tmp_path: Path, record_property: Any
) -> None:
    rng = random.Random(SEED)
    print(f"CRASH_SEED={SEED}")
    async with own_postgres(("todo_service",)) as (server, url):
        await run_crash_load(server, url, redis_url, tmp_path, rng, record_property)


async def run_crash_load(
    server: EmbeddedPostgres,
    url: str,
    redis_url: str,
    tmp_path: Path,
    rng: random.Random,
    record_property: Any,
) -> None:
    issuer = TestIssuer()
    engine = create_engine(url, pool_size=CONCURRENT_USERS + 2, pool_timeout=5)
    db = Database(engine)
    settings = TodoSettings(_env_file=None, environment="test", database_url=url)
    app = create_app(settings, db=db, verifier=issuer.verifier())
    worker = todo_worker(url, redis_url, tmp_path / "worker.log")
    load_done = asyncio.Event()
    pg_kills = 0

    async def kill_the_worker() -> None:
        while not load_done.is_set():
            worker.start()
            await worker.serving()
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            worker.kill()

    async def kill_postgresql() -> None:
        nonlocal pg_kills
        while not load_done.is_set():
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            await asyncio.to_thread(server.crash)
            pg_kills += 1
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await asyncio.to_thread(server.resume)

    async def load(client: httpx.AsyncClient) -> list[Life]:
        started = time.monotonic()
        lives: list[asyncio.Task[Life]] = []
        try:
            while len(lives) < USERS or (
                (worker.kills < WORKER_KILLS or pg_kills < PG_KILLS)
                and time.monotonic() - started < LOAD_SECONDS
            ):
                running = [life for life in lives if not life.done()]
                if len(running) >= CONCURRENT_USERS:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                sub = f"crash-{uuid.uuid4().hex[:12]}"
                life = Life(sub, issuer.auth(sub))
                lives.append(
                    asyncio.create_task(live(client, db, life, random.Random(rng.random())))
                )
                await asyncio.sleep(rng.uniform(0.0, 0.2))
            return await asyncio.gather(*lives)
        finally:
            load_done.set()

    killers = [asyncio.create_task(kill_the_worker()), asyncio.create_task(kill_postgresql())]
    try:
        started = time.monotonic()
        async with serve(app) as client:
            lives = await load(client)
        await asyncio.gather(*killers)
        load_seconds = time.monotonic() - started
        # Started once more and left to finish: every committed row must reach the stream.
        worker.start()
        deadline = time.monotonic() + DRAIN_SECONDS
        while await db.fetch_row("SELECT 1 FROM todo.outbox WHERE sent_at IS NULL LIMIT 1"):
            assert time.monotonic() < deadline, worker.log_tail()
            await asyncio.sleep(0.1)
        drain_seconds = time.monotonic() - started - load_seconds
    finally:
        for killer in killers:
            killer.cancel()
        worker.stop()
        await engine.dispose()

    stream = await read_stream(redis_url, TASKS_STREAM)
    firsts = first_deliveries(stream)
    written: dict[str, list[tuple[str, int]]] = {}
    for event in firsts:
        assert event.version == 1
        assert event.data["user_id"] == event.key
        task_id = (
            event.data["task_id"] if event.type == "task.deleted" else event.data["task"]["id"]
        )
        written.setdefault(event.key, []).append((event.type, task_id))
        # Nothing of a rolled-back transaction: no task it wrote, no title it set.
        if event.type != "task.deleted":
            assert event.data["task"]["title"] != ROLLED_BACK_TITLE, event
    # Exactly each user's committed changes, in the order they were made: none lost, none
    # of a rolled-back transaction, none out of order.
    for life in lives:
        assert written.pop(life.sub, []) == life.expected, life.sub
    assert written == {}
    assert_ids_increase_per_key(firsts)

    assert worker.kills > 0
    assert pg_kills > 0
    figures = (
        f"worker_kills={worker.kills} postgresql_kills={pg_kills} users={len(lives)} "
        f"changes={sum(len(life.expected) for life in lives)} "
        f"rolled_back={sum(life.rolled_back for life in lives)} "
        f"repeated_requests={sum(life.repeated for life in lives)} entries={len(stream)} "
        f"duplicates={len(stream) - len(firsts)} load_seconds={load_seconds:.1f} "
        f"drain_seconds={drain_seconds:.1f}"
    )
    print(figures)
    record_property("todo_outbox_crash", figures)
