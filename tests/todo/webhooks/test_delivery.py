"""Webhook delivery through the real path: an event written to ``todo.outbox`` with
``add_event``, published by the real ``OutboxDispatcher`` to a real Redis, fanned out by the
``webhooks`` consumer group, and POSTed by the delivery loop to a real receiver (uvicorn on
127.0.0.1) that checks the signature with the code docs/webhooks.md publishes. Time moves
through an injected clock; nothing sleeps through a backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.clock import FrozenClock, utcnow
from shared.db import Database
from shared.events import TASKS_STREAM, Event, RedisStreamPublisher, redis_client
from shared.outbox import OutboxDispatcher, add_event
from shared.sealing import SecretBox
from shared.tasks import stop_tasks
from shared.worker import Loop
from tests.support.events import eventually
from tests.support.serving import live_server, serve
from tests.support.tls import Issued, TestCA
from tests.support.tokens import TestIssuer
from tests.todo.conftest import User
from tests.todo.webhooks.conftest import TableDns, register, serve_todo
from tests.todo.webhooks.receiver import Receiver
from todo_service.models import OUTBOX
from todo_service.settings import TodoSettings
from todo_service.webhooks.delivery import CLAIM_POLL_SECONDS, HELD_ERROR, WebhookDeliverer
from todo_service.webhooks.fanout import WebhookFanout, fanout_loop
from todo_service.webhooks.keys import WebhookKeys
from todo_service.worker import create_app as create_worker

RECEIVER_HOST = "receiver.example.com"
BASE = 10.0  # seconds: the first retry's pause before jitter
WINDOW = 100.0


@pytest.fixture
def live_clock() -> FrozenClock:
    """Near the real time (the documented verifier compares with it), moved by the test."""
    return FrozenClock(utcnow())


@pytest.fixture
def settings(todo_settings: TodoSettings, redis_url: str) -> TodoSettings:
    return todo_settings.model_copy(
        update={
            "webhooks_allow_loopback": True,
            "events_redis_url": redis_url,
            "events_idle_seconds": 0.05,
            # A fan-out round with nothing left to read waits this long, not the default 2 s.
            "events_block_seconds": 0.05,
            "webhook_retry_base_seconds": BASE,
            "webhook_retry_max_seconds": 4 * BASE,
            "webhook_retry_window_seconds": WINDOW,
            # Generous, so that a loaded machine's pause never times out an attempt that
            # should deliver; the timeout's own test shortens it.
            "webhook_read_timeout": 5.0,
            "webhook_attempt_timeout": 5.0,
        }
    )


@pytest.fixture
async def receiver(dns: TableDns) -> AsyncIterator[tuple[Receiver, str]]:
    """The receiver, and its URL under a name only the injected DNS knows (so a request
    that arrives proves the delivery connected to the address that was checked)."""
    receiving = Receiver()
    async with live_server(receiving.app()) as base:
        dns.answers[RECEIVER_HOST] = ["127.0.0.1"]
        port = urlsplit(base).port
        yield receiving, f"http://{RECEIVER_HOST}:{port}/hook"


@pytest.fixture
async def api(
    settings: TodoSettings,
    committed_database: Database,
    issuer: TestIssuer,
    live_clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_todo(settings, committed_database, issuer, live_clock, dns, box) as client:
        yield client


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url)
    yield client
    await client.aclose()


class Pipeline:
    """The worker's three steps, run one round at a time by the test."""

    def __init__(
        self,
        db: Database,
        redis: Redis,
        settings: TodoSettings,
        clock: FrozenClock,
        dns: TableDns,
        box: SecretBox,
        consumer: str = "t1",
    ) -> None:
        self.db = db
        self.dispatcher = OutboxDispatcher(
            db, OUTBOX, RedisStreamPublisher(redis, maxlen=10_000), batch=100, retention_seconds=60
        )
        self.fanout: Loop = fanout_loop(settings, db, redis, clock=clock, consumer=consumer)
        self.deliverer = WebhookDeliverer(
            db, WebhookKeys(settings, box), settings, clock=clock, resolver=dns, jitter=lambda: 0.0
        )

    async def emit(self, user: str, kind: str = "task.created", **data: Any) -> str:
        async with self.db.unit_of_work() as session:
            event_id = await add_event(
                session,
                OUTBOX,
                stream=TASKS_STREAM,
                key=user,
                type=kind,
                version=1,
                data={"user_id": user, **data},
            )
        return str(event_id)

    async def fan_out(self) -> None:
        await self.dispatcher.dispatch_once()
        while await self.fanout.step():
            pass

    async def deliver(self) -> int:
        return await self.deliverer.deliver_once()


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(
    committed_database: Database,
    redis: Redis,
    settings: TodoSettings,
    live_clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
) -> PipelineFactory:
    """A pipeline with the test's settings changed by ``updates`` (and a consumer name)."""

    def make(consumer: str = "t1", **updates: Any) -> Pipeline:
        changed = settings.model_copy(update=updates)
        return Pipeline(committed_database, redis, changed, live_clock, dns, box, consumer)

    return make


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Pipeline:
    return make_pipeline()


async def deliveries(api: httpx.AsyncClient, user: User, webhook: dict[str, Any]) -> list[Any]:
    response = await api.get(f"/api/webhooks/{webhook['id']}/deliveries", headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()
    return items


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_an_event_reaches_the_receiver_signed_and_the_documented_verifier_accepts_it(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    receiver: tuple[Receiver, str],
    alice: User,
    bob: User,
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.secret = webhook["secret"]
    await register(api, alice, url, events=["reminder.due"])  # not this type
    event_id = await pipeline.emit(alice.sub, "task.created", task={"id": 7, "title": "milk"})
    await pipeline.emit(bob.sub, "task.created", task={"id": 8, "title": "bob's"})
    await pipeline.fan_out()
    assert await pipeline.deliver() == 1

    assert len(receiving.received) == 1
    got = receiving.received[0]
    assert got.verified
    assert got.path == "/hook"
    assert got.headers["webhook-id"] == event_id
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == urlsplit(url).netloc  # the name, not the address
    envelope = json.loads(got.body)
    assert envelope["id"] == event_id
    assert envelope["type"] == "task.created"
    assert envelope["key"] == alice.sub
    assert envelope["data"] == {"user_id": alice.sub, "task": {"id": 7, "title": "milk"}}
    assert set(envelope) == {"id", "type", "version", "key", "occurred_at", "data"}

    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["next_attempt_at"] is None
    assert delivery["delivered_at"] is not None
    assert delivery["event_id"] == event_id


async def test_a_signature_made_with_another_secret_fails_the_documented_verifier(
    api: httpx.AsyncClient, pipeline: Pipeline, receiver: tuple[Receiver, str], alice: User
) -> None:
    receiving, url = receiver
    await register(api, alice, url)
    other = await register(api, alice, url, events=["reminder.due"])
    receiving.secret = other["secret"]
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    await pipeline.deliver()
    assert [r.verified for r in receiving.received] == [False]


async def test_a_redelivered_event_makes_no_second_delivery(
    api: httpx.AsyncClient,
    settings: TodoSettings,
    committed_database: Database,
    live_clock: FrozenClock,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    _, url = receiver
    webhook = await register(api, alice, url)
    fanout = WebhookFanout(
        committed_database, clock=live_clock, pending_per_user=settings.webhook_pending_per_user
    )
    event = Event("99", "task.created", 1, alice.sub, "2026-12-06T00:00:00Z", {})
    await fanout.handle(event)
    await fanout.handle(event)
    assert len(await deliveries(api, alice, webhook)) == 1


async def test_events_beyond_a_users_pending_bound_are_recorded_failed_not_queued(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    receiver: tuple[Receiver, str],
    alice: User,
    bob: User,
) -> None:
    # A receiver that never answers and a stream of changes once grew a user's backlog
    # without end, and every claim read past all of it while the user held its share.
    pipeline = make_pipeline(webhook_pending_per_user=3)
    _, url = receiver
    alices = [await register(api, alice, url), await register(api, alice, url)]
    bobs = await register(api, bob, url)
    # Two deliveries an event: the second is queued with 2 pending (4 then: an event's
    # deliveries past the bound), the third and fourth find 4 and are not.
    for n in range(3):
        await pipeline.emit(alice.sub, n=n)
    await pipeline.emit(bob.sub)
    await pipeline.fan_out()
    await pipeline.emit(alice.sub, n=3)
    await pipeline.fan_out()

    for webhook in alices:
        found = await deliveries(api, alice, webhook)
        assert [d["status"] for d in found] == ["failed", "failed", "pending", "pending"]
        assert found[0]["attempts"] == 0
        assert found[0]["last_error"] == "not queued: 3 deliveries of this account were pending"
    assert [d["status"] for d in await deliveries(api, bob, bobs)] == ["pending"]
    # Once the backlog is sent, the user's events are queued again.
    assert await pipeline.deliver() == 5
    await pipeline.emit(alice.sub, n=4)
    await pipeline.fan_out()
    newest = (await deliveries(api, alice, alices[0]))[0]
    assert newest["status"] == "pending"


async def test_a_failed_attempt_is_retried_after_the_backoff_then_delivered(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    receiver: tuple[Receiver, str],
    live_clock: FrozenClock,
    alice: User,
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.secret = webhook["secret"]
    receiving.plan = [500, 200]
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    assert await pipeline.deliver() == 1

    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500"
    # Jitter 0: half the base pause after the first failure.
    assert instant(delivery["next_attempt_at"]) == live_clock.now + timedelta(seconds=BASE / 2)

    live_clock.advance(seconds=BASE / 2 - 0.001)
    assert await pipeline.deliver() == 0  # not due yet
    live_clock.advance(seconds=0.001)
    assert await pipeline.deliver() == 1
    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 2
    assert delivery["last_error"] is None
    first, second = receiving.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.verified
    assert second.verified


def test_the_backoff_doubles_up_to_its_cap_with_jitter(
    settings: TodoSettings, committed_database: Database, box: SecretBox
) -> None:
    low = WebhookDeliverer(
        committed_database, WebhookKeys(settings, box), settings, jitter=lambda: 0.0
    )
    high = WebhookDeliverer(
        committed_database, WebhookKeys(settings, box), settings, jitter=lambda: 0.999
    )
    assert [low.retry_delay(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 20, 20]
    assert [round(high.retry_delay(n).total_seconds(), 3) for n in (1, 2, 3, 9)] == [
        9.995, 19.99, 39.98, 39.98,
    ]  # fmt: skip
    assert low.retry_delay(10_000).total_seconds() == 20  # no overflow however many


async def test_a_delivery_failing_until_the_window_ends_is_failed_and_shown(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    receiver: tuple[Receiver, str],
    live_clock: FrozenClock,
    alice: User,
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = [503] * 50
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    start = live_clock.now
    rounds = 0
    while True:
        assert await pipeline.deliver() == 1
        rounds += 1
        [delivery] = await deliveries(api, alice, webhook)
        if delivery["status"] != "pending":
            break
        live_clock.now = instant(delivery["next_attempt_at"])
        assert rounds < 20
    # Attempts at 0, 5, 15, 35, 55, 75 and 95 s; the next would be past 100 s: failed.
    assert rounds == 7
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 7
    assert delivery["last_status_code"] == 503
    assert delivery["last_error"] == "HTTP 503"
    assert delivery["next_attempt_at"] is None
    assert delivery["delivered_at"] is None
    assert live_clock.now - start == timedelta(seconds=95)
    assert len(receiving.received) == 7
    live_clock.advance(seconds=3600)
    assert await pipeline.deliver() == 0  # failed is final


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    api: httpx.AsyncClient, pipeline: Pipeline, receiver: tuple[Receiver, str], alice: User
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = ["redirect"]
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    await pipeline.deliver()
    assert [r.path for r in receiving.received] == ["/hook"]
    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] == 302
    assert "redirects are not followed" in delivery["last_error"]


async def test_a_receiver_that_does_not_answer_in_time_is_a_timed_out_attempt(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    pipeline = make_pipeline(webhook_read_timeout=0.5)
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = ["slow"]
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    async with asyncio.timeout(3):  # the read timeout is 0.5 s
        await pipeline.deliver()
    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "pending"
    assert delivery["last_error"] == "timed out"
    assert delivery["last_status_code"] is None


async def test_an_endless_answer_is_read_only_up_to_the_bound(
    api: httpx.AsyncClient, pipeline: Pipeline, receiver: tuple[Receiver, str], alice: User
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = ["flood"]
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    # The answer never ends: only the bound on what is read ends the attempt (else the
    # attempt's timeout would, after 5 s).
    async with asyncio.timeout(3):
        await pipeline.deliver()
    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "delivered"


async def test_a_name_that_resolves_to_a_forbidden_address_at_delivery_time_is_refused(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    receiver: tuple[Receiver, str],
    dns: TableDns,
    alice: User,
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    # Registered while the name was loopback-only; now it also answers a private address.
    dns.answers[RECEIVER_HOST] = ["127.0.0.1", "10.0.0.7"]
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    await pipeline.deliver()
    assert receiving.received == []
    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "pending"
    assert delivery["last_error"].startswith("refused: ")
    assert "public addresses only" in delivery["last_error"]


async def test_a_deleted_webhooks_pending_deliveries_are_never_sent(
    api: httpx.AsyncClient, pipeline: Pipeline, receiver: tuple[Receiver, str], alice: User
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    await pipeline.emit(alice.sub)
    await pipeline.fan_out()
    response = await api.delete(f"/api/webhooks/{webhook['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert await pipeline.deliver() == 0
    assert receiving.received == []


async def test_two_delivery_loops_never_send_one_delivery_twice(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    make_pipeline: PipelineFactory,
    committed_database: Database,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    receiving, url = receiver
    await register(api, alice, url + "/a")
    await register(api, alice, url + "/b")
    for n in range(15):
        await pipeline.emit(alice.sub, n=n)
    await pipeline.fan_out()
    other = make_pipeline("t2")
    counts = []
    while True:
        done = await asyncio.gather(pipeline.deliver(), other.deliver())
        counts.append(done)
        if sum(done) == 0:
            break
    sent = [(r.path, r.headers["webhook-id"]) for r in receiving.received]
    assert len(sent) == 30
    assert len(set(sent)) == 30  # each event once to each webhook
    assert sum(sum(c) for c in counts) == 30
    async with committed_database.unit_of_work() as session:
        row = (
            await (await session.connection()).execute(
                text("SELECT count(*), max(attempts) FROM todo.webhook_deliveries "
                     "WHERE status = 'delivered'")
            )
        ).one()  # fmt: skip
    assert tuple(row) == (30, 1)


async def test_a_failure_recorded_after_the_lease_leaves_the_next_replicas_attempt_alone(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    live_clock: FrozenClock,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    # A replica's attempt outlasts its lease; another replica leases the delivery again and
    # is still attempting it when the first records its failure. That record once moved the
    # second's lease (a third could then send it beside the second) or failed the delivery
    # (the second's success then changed nothing).
    receiving, url = receiver
    receiving.plan = ["hold", "hold"]
    webhook = await register(api, alice, url)
    settings = {"webhook_attempt_timeout": 5.0, "webhook_retry_base_seconds": 100.0}
    first, second = make_pipeline("t1", **settings), make_pipeline("t2", **settings)
    await first.emit(alice.sub)
    await first.fan_out()

    async def requests(count: int) -> bool:
        return len(receiving.held) == count

    first_round = asyncio.create_task(first.deliver())
    second_round: asyncio.Task[int] | None = None
    try:
        await eventually(lambda: requests(1))
        live_clock.advance(seconds=20)  # past the first lease (2 x 5 + 5 s)
        second_round = asyncio.create_task(second.deliver())
        await eventually(lambda: requests(2))
        [leased] = await deliveries(api, alice, webhook)
        receiving.held[0].set_result(500)
        await first_round
        [after] = await deliveries(api, alice, webhook)
        assert (after["attempts"], after["next_attempt_at"]) == (2, leased["next_attempt_at"])
        receiving.held[1].set_result(200)
        await second_round
    finally:
        await stop_tasks([t for t in (first_round, second_round) if t is not None])
    [delivery] = await deliveries(api, alice, webhook)
    assert delivery["status"] == "delivered"


@asynccontextmanager
async def tarpit(dns: TableDns) -> AsyncIterator[tuple[Receiver, str]]:
    """A receiver that answers nothing for longer than any attempt, and its URL."""
    stalling = Receiver(plan=["slow"] * 40)
    async with live_server(stalling.app()) as base:
        dns.answers["tarpit.example.com"] = ["127.0.0.1"]
        yield stalling, f"http://tarpit.example.com:{urlsplit(base).port}/hook"


async def test_one_users_stalling_receiver_does_not_hold_up_another_users_delivery(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    committed_database: Database,
    live_clock: FrozenClock,
    dns: TableDns,
    receiver: tuple[Receiver, str],
    alice: User,
    bob: User,
) -> None:
    # Bob's receiver answers nothing for as long as an attempt may take, and he has a
    # backlog older than Alice's one delivery. Once each round waited for its slowest
    # attempt and took the oldest deliveries first: Alice waited for all of Bob's.
    pipeline = make_pipeline(
        webhook_read_timeout=20.0,
        webhook_attempt_timeout=20.0,
        webhook_batch=4,
        webhook_attempts_per_user=2,
    )
    fast, url = receiver
    async with tarpit(dns) as (stalling, stalling_url):
        await register(api, bob, stalling_url)
        webhook = await register(api, alice, url)
        for n in range(12):
            await pipeline.emit(bob.sub, n=n)
        await pipeline.fan_out()
        live_clock.advance(seconds=1)
        await pipeline.emit(alice.sub)
        await pipeline.fan_out()
        delivering = asyncio.create_task(pipeline.deliver())
        try:

            async def alice_delivered() -> bool:
                [delivery] = await deliveries(api, alice, webhook)
                return bool(delivery["status"] == "delivered")

            # Sent and recorded while Bob's attempts still hang.
            await eventually(alice_delivered, seconds=10)
            assert len(fast.received) == 1

            async def bobs_share_taken() -> bool:
                return len(stalling.received) >= 2

            # Bob holds his share of the slots and no more: his requests may still be on
            # their way when Alice's is recorded, and a free slot is claimed again at the
            # next poll.
            await eventually(bobs_share_taken, seconds=10)
            await asyncio.sleep(2 * CLAIM_POLL_SECONDS)
            assert len(stalling.received) == 2
        finally:
            await stop_tasks([delivering])
    async with committed_database.unit_of_work() as session:
        statuses = (
            await (await session.connection()).execute(
                text("SELECT user_id, status, count(*) FROM todo.webhook_deliveries "
                     "GROUP BY user_id, status ORDER BY user_id")
            )
        ).all()  # fmt: skip
    assert [tuple(row) for row in statuses] == [
        (alice.sub, "delivered", 1),
        (bob.sub, "pending", 12),
    ]


async def webhook_hold(db: Database, webhook: dict[str, Any]) -> tuple[int, datetime | None]:
    """The webhook's failures in a row and the end of its hold."""
    async with db.unit_of_work() as session:
        row = (
            await (await session.connection()).execute(
                text("SELECT failures, held_until FROM todo.webhooks WHERE id = :id"),
                {"id": webhook["id"]},
            )
        ).one()
    return row.failures, row.held_until


async def test_a_failing_receiver_holds_back_its_webhooks_deliveries_until_the_pause_ends(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    committed_database: Database,
    receiver: tuple[Receiver, str],
    live_clock: FrozenClock,
    alice: User,
) -> None:
    # One slot: a round claims again as each attempt ends, so without the hold it would
    # go on to the webhook's next due delivery, and the next.
    pipeline = make_pipeline(webhook_batch=1)
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = [500, 500]
    for n in range(3):
        await pipeline.emit(alice.sub, n=n)
    await pipeline.fan_out()
    assert await pipeline.deliver() == 1
    # Jitter 0: half the base pause after the first failure, for all three.
    held_until = live_clock.now + timedelta(seconds=BASE / 2)
    assert await webhook_hold(committed_database, webhook) == (1, held_until)
    found = await deliveries(api, alice, webhook)
    assert [instant(d["next_attempt_at"]) for d in found] == [held_until] * 3
    assert [d["attempts"] for d in found] == [0, 0, 1]  # newest first
    # An event fanned out during the hold is due when the hold ends.
    await pipeline.emit(alice.sub, n=3)
    await pipeline.fan_out()
    assert instant((await deliveries(api, alice, webhook))[0]["next_attempt_at"]) == held_until
    assert await pipeline.deliver() == 0

    # The pause doubles with the failures in a row.
    live_clock.now = held_until
    assert await pipeline.deliver() == 1
    held_until = live_clock.now + timedelta(seconds=BASE)
    assert await webhook_hold(committed_database, webhook) == (2, held_until)
    assert {instant(d["next_attempt_at"]) for d in await deliveries(api, alice, webhook)} == {
        held_until
    }

    # The first success ends the series, and the rest go out in the same round.
    live_clock.now = held_until
    assert await pipeline.deliver() == 4
    assert await webhook_hold(committed_database, webhook) == (0, None)
    statuses = [d["status"] for d in await deliveries(api, alice, webhook)]
    assert statuses == ["delivered"] * 4
    assert len(receiving.received) == 6


async def test_stalling_receivers_of_many_accounts_get_one_attempt_each_per_pause(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    dns: TableDns,
    receiver: tuple[Receiver, str],
    live_clock: FrozenClock,
    alice: User,
    bob: User,
    carol: User,
) -> None:
    # Bob and Carol (two accounts of one sender) each have a backlog for a receiver that
    # never answers. The per-user share alone let the two of them hold every slot for as
    # long as their backlogs lasted, each stalled attempt followed by the next.
    pipeline = make_pipeline(
        webhook_batch=4,
        webhook_attempts_per_user=2,
        webhook_read_timeout=0.3,
        webhook_attempt_timeout=1.5,
    )
    fast, url = receiver
    async with tarpit(dns) as (stalling, stalling_url):
        for sender in (bob, carol):
            await register(api, sender, stalling_url)
            for n in range(6):
                await pipeline.emit(sender.sub, n=n)
        await pipeline.fan_out()
        async with asyncio.timeout(10):
            # Each stalled attempt times out (0.3 s) while the round still claims (1.5 s):
            # only the first two of each account were ever attempted.
            assert await pipeline.deliver() == 4

        live_clock.advance(seconds=1)
        webhook = await register(api, alice, url)
        await pipeline.emit(alice.sub)
        await pipeline.fan_out()
        async with asyncio.timeout(10):
            assert await pipeline.deliver() == 1
        assert [d["status"] for d in await deliveries(api, alice, webhook)] == ["delivered"]
        assert len(fast.received) == 1
        assert len(stalling.received) <= 4  # the first round's four, or fewer read in time


async def test_a_receiver_that_answers_slowly_holds_its_webhook_though_it_delivered(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    committed_database: Database,
    receiver: tuple[Receiver, str],
    live_clock: FrozenClock,
    alice: User,
) -> None:
    # A 2xx after most of the attempt's timeout costs a slot as long as a stall does.
    pipeline = make_pipeline(webhook_batch=1, webhook_slow_seconds=0.2)
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = ["hold"]
    for n in range(2):
        await pipeline.emit(alice.sub, n=n)
    await pipeline.fan_out()
    delivering = asyncio.create_task(pipeline.deliver())
    try:

        async def answering() -> bool:
            return bool(receiving.held)

        await eventually(answering)
        await asyncio.sleep(0.3)
        receiving.held[0].set_result(200)
        async with asyncio.timeout(10):
            assert await delivering == 1
    finally:
        await stop_tasks([delivering])
    held_until = live_clock.now + timedelta(seconds=BASE / 2)
    assert await webhook_hold(committed_database, webhook) == (1, held_until)
    second, first = await deliveries(api, alice, webhook)
    assert first["status"] == "delivered"
    assert (second["status"], instant(second["next_attempt_at"])) == ("pending", held_until)


async def test_a_hold_does_not_wait_for_a_purge_that_has_the_webhooks_rows(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    committed_database: Database,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    # The account's purge deletes the deliveries, then the webhooks; a hold that waited for
    # either while holding its own delivery's row would deadlock with it.
    pipeline = make_pipeline(webhook_batch=1)
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = [500]
    for n in range(2):
        await pipeline.emit(alice.sub, n=n)
    await pipeline.fan_out()
    newest = (await deliveries(api, alice, webhook))[0]
    async with committed_database.unit_of_work() as purge:
        await (await purge.connection()).execute(
            text(
                "SELECT w.id FROM todo.webhooks AS w "
                "JOIN todo.webhook_deliveries AS d ON d.webhook_id = w.id "
                "WHERE w.id = :webhook AND d.id = :delivery FOR UPDATE"
            ),
            {"webhook": webhook["id"], "delivery": newest["id"]},
        )
        async with asyncio.timeout(10):
            assert await pipeline.deliver() == 1
    assert await webhook_hold(committed_database, webhook) == (0, None)
    second, first = await deliveries(api, alice, webhook)
    assert (first["status"], first["last_error"]) == ("pending", "HTTP 500")
    assert (second["status"], second["attempts"]) == ("pending", 0)
    assert second["next_attempt_at"] == newest["next_attempt_at"]


async def test_deliveries_whose_retry_window_ends_during_the_hold_are_failed(
    api: httpx.AsyncClient,
    make_pipeline: PipelineFactory,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    # The hold (5 s) outlasts the window (3 s): waiting would only attempt them too late.
    pipeline = make_pipeline(webhook_batch=1, webhook_retry_window_seconds=3.0)
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.plan = [503]
    for n in range(2):
        await pipeline.emit(alice.sub, n=n)
    await pipeline.fan_out()
    assert await pipeline.deliver() == 1
    second, first = await deliveries(api, alice, webhook)
    assert (first["status"], first["attempts"], first["last_error"]) == ("failed", 1, "HTTP 503")
    assert (second["status"], second["attempts"]) == ("failed", 0)
    assert second["last_error"] == HELD_ERROR
    assert second["next_attempt_at"] is None
    assert len(receiving.received) == 1


def held_receiver(release: asyncio.Event) -> tuple[Starlette, list[bytes]]:
    """A receiver that answers 204 to each request once ``release`` is set."""
    received: list[bytes] = []

    async def hold(request: Request) -> Response:
        received.append(await request.body())
        await release.wait()
        return Response(status_code=204)

    return Starlette(routes=[Route("/{path:path}", hold, methods=["POST"])]), received


async def test_a_claim_that_fails_while_an_attempt_runs_lets_it_end_and_be_recorded(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    dns: TableDns,
    alice: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The database goes away at a claim while an attempt is in flight: the attempt goes on
    # and is recorded; cancelling it would send it again after its lease, late.
    database_away = asyncio.Event()
    app, received = held_receiver(database_away)
    deliverer = pipeline.deliverer
    claim = deliverer._claim

    async def claim_then_fail(free: int, running: Counter[str]) -> list[Any]:
        if running:
            database_away.set()
            raise ConnectionRefusedError("the database is away")
        return await claim(free, running)

    monkeypatch.setattr(deliverer, "_claim", claim_then_fail)
    async with live_server(app) as base:
        dns.answers["held.example.com"] = ["127.0.0.1"]
        webhook = await register(api, alice, f"http://held.example.com:{urlsplit(base).port}/h")
        await pipeline.emit(alice.sub)
        await pipeline.fan_out()
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionRefusedError):
                await pipeline.deliver()
    assert len(received) == 1
    [delivery] = await deliveries(api, alice, webhook)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)


async def test_a_failure_to_record_one_attempt_lets_the_others_end_and_be_recorded(
    api: httpx.AsyncClient,
    pipeline: Pipeline,
    dns: TableDns,
    receiver: tuple[Receiver, str],
    alice: User,
    bob: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded_bobs = asyncio.Event()
    app, received = held_receiver(recorded_bobs)
    deliverer = pipeline.deliverer
    record = deliverer._record

    async def record_failing_for_bob(connection: Any, row: Any, *args: Any) -> None:
        if row.user_id == bob.sub:
            recorded_bobs.set()
            raise ConnectionRefusedError("the database is away")
        await record(connection, row, *args)

    monkeypatch.setattr(deliverer, "_record", record_failing_for_bob)
    fast, url = receiver
    async with live_server(app) as base:
        dns.answers["held.example.com"] = ["127.0.0.1"]
        alices = await register(api, alice, f"http://held.example.com:{urlsplit(base).port}/h")
        await register(api, bob, url)
        await pipeline.emit(alice.sub)
        await pipeline.emit(bob.sub)
        await pipeline.fan_out()
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionRefusedError):
                await pipeline.deliver()
    assert (len(received), len(fast.received)) == (1, 1)
    [delivery] = await deliveries(api, alice, alices)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)


async def test_the_worker_process_fans_out_and_delivers(
    api: httpx.AsyncClient,
    settings: TodoSettings,
    committed_database: Database,
    live_clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.secret = webhook["secret"]
    async with committed_database.unit_of_work() as session:
        event_id = await add_event(
            session, OUTBOX, stream=TASKS_STREAM, key=alice.sub, type="task.deleted",
            version=1, data={"user_id": alice.sub, "task_id": 3},
        )  # fmt: skip
    worker = create_worker(
        settings,
        db=committed_database,
        consumer="w1",
        clock=live_clock,
        resolver=dns,
        webhook_box=box,
    )
    async with serve(worker) as client:

        async def delivered() -> bool:
            return any(r.verified for r in receiving.received)

        await eventually(delivered)
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
    assert receiving.received[0].headers["webhook-id"] == str(event_id)
    assert json.loads(receiving.received[0].body)["type"] == "task.deleted"


async def test_finished_deliveries_are_forgotten_while_the_delivery_loop_is_never_idle(
    api: httpx.AsyncClient,
    settings: TodoSettings,
    committed_database: Database,
    live_clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    receiver: tuple[Receiver, str],
    alice: User,
) -> None:
    """A receiver answering 2xx promptly enough not to be held, with deliveries always due,
    keeps an attempt running through round after round; the retention runs all the same."""
    receiving, url = receiver
    receiving.delay = 0.2
    webhook = await register(api, alice, url)
    receiving.secret = webhook["secret"]
    now = live_clock()
    long_ago = now - timedelta(seconds=settings.webhook_retention_seconds + 1)
    async with committed_database.unit_of_work() as session:
        connection = await session.connection()
        await connection.execute(
            text(
                "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
                " payload, status, next_attempt_at, created_at, finished_at) VALUES"
                " (:w, :u, 'old', 'task.created', '{}', 'delivered', NULL, :long_ago, :long_ago)"
            ),
            {"w": webhook["id"], "u": alice.sub, "long_ago": long_ago},
        )
        await connection.execute(
            text(
                "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
                " payload, status, next_attempt_at, created_at)"
                " SELECT :w, :u, 'p' || n, 'task.created', '{}', 'pending', :now, :now"
                " FROM generate_series(1, 20) AS n"
            ),
            {"w": webhook["id"], "u": alice.sub, "now": now},
        )
        await connection.execute(
            text("INSERT INTO todo.webhook_events (event_id, processed_at) VALUES ('1-0', :at)"),
            {"at": long_ago},
        )
    # One attempt at a time and rounds of about a second: 20 deliveries of 0.2 s each keep
    # the loop busy for several rounds, none of which attempts nothing.
    busy = settings.model_copy(
        update={"webhook_batch": 1, "webhook_attempts_per_user": 1, "webhook_attempt_timeout": 1.0}
    )
    worker = create_worker(
        busy, db=committed_database, consumer="w1", clock=live_clock, resolver=dns, webhook_box=box
    )

    async def forgotten_while_busy() -> bool:
        row = await committed_database.fetch_row(
            "SELECT count(*) FILTER (WHERE status = 'delivered'),"
            " count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE event_id = 'old'),"
            " (SELECT count(*) FROM todo.webhook_events WHERE event_id = '1-0')"
            " FROM todo.webhook_deliveries"
        )
        assert row is not None
        delivered, pending, old, old_event = row
        assert pending > 0, "every delivery ended before the old ones were forgotten"
        return bool(delivered >= 8 and old == 0 and old_event == 0)

    async with serve(worker):
        await eventually(forgotten_while_busy, seconds=30)
    assert all(r.verified for r in receiving.received)


async def test_real_task_changes_reach_the_webhook_through_the_worker(
    api: httpx.AsyncClient,
    settings: TodoSettings,
    committed_database: Database,
    live_clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    receiver: tuple[Receiver, str],
    alice: User,
    bob: User,
) -> None:
    """The whole path from a REST request: the task's trigger writes the event, the worker
    publishes, fans out and delivers it, the receiver verifies it; another user's change
    never reaches alice's webhook."""
    receiving, url = receiver
    webhook = await register(api, alice, url)
    receiving.secret = webhook["secret"]
    created = await api.post("/api/tasks", json={"title": "Call mum"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    task = created.json()
    done = await api.patch(
        f"/api/tasks/{task['id']}",
        json={"completed": True},
        headers={**alice.headers, "If-Match": created.headers["etag"]},
    )
    assert done.status_code == 200, done.text
    assert (await api.delete(f"/api/tasks/{task['id']}", headers=alice.headers)).status_code == 204
    theirs = await api.post("/api/tasks", json={"title": "Bob's"}, headers=bob.headers)
    assert theirs.status_code == 201, theirs.text
    worker = create_worker(
        settings,
        db=committed_database,
        consumer="w1",
        clock=live_clock,
        resolver=dns,
        webhook_box=box,
    )
    async with serve(worker):

        async def all_delivered() -> bool:
            statuses = [d["status"] for d in await deliveries(api, alice, webhook)]
            return statuses == ["delivered"] * 3

        await eventually(all_delivered)
    envelopes = sorted((json.loads(r.body) for r in receiving.received), key=lambda e: int(e["id"]))
    assert [e["type"] for e in envelopes] == ["task.created", "task.completed", "task.deleted"]
    assert all(e["key"] == alice.sub for e in envelopes)
    assert envelopes[0]["data"]["task"]["title"] == "Call mum"
    assert envelopes[2]["data"] == {"user_id": alice.sub, "task_id": task["id"]}
    assert all(r.verified for r in receiving.received)


# --- HTTPS to the pinned address ------------------------------------------------------------


@asynccontextmanager
async def tls_receiver(receiving: Receiver, issued: Issued, directory: Path) -> AsyncIterator[int]:
    """The receiver behind TLS with ``issued``'s certificate; yields its port."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    config = uvicorn.Config(
        receiving.app(), host="127.0.0.1", port=0, log_config=None, access_log=False,
        ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[assignment,method-assign]
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
                await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.mark.parametrize(
    ("certified", "delivered"), [(RECEIVER_HOST, True), ("other.example.com", False)]
)
async def test_https_goes_to_the_checked_address_with_the_names_certificate_checked(
    api: httpx.AsyncClient,
    committed_database: Database,
    settings: TodoSettings,
    live_clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    pipeline: Pipeline,
    tmp_path: Path,
    alice: User,
    certified: str,
    delivered: bool,
) -> None:
    authority = TestCA()
    trust = ssl.create_default_context(cadata=authority.cert_pem.decode())
    receiving = Receiver()
    async with tls_receiver(receiving, authority.issue(certified), tmp_path) as port:
        dns.answers[RECEIVER_HOST] = ["127.0.0.1"]
        webhook = await register(api, alice, f"https://{RECEIVER_HOST}:{port}/hook")
        receiving.secret = webhook["secret"]
        await pipeline.emit(alice.sub)
        await pipeline.fan_out()
        deliverer = WebhookDeliverer(
            committed_database, WebhookKeys(settings, box), settings,
            clock=live_clock, resolver=dns, trust=trust,
        )  # fmt: skip
        assert await deliverer.deliver_once() == 1
    [delivery] = await deliveries(api, alice, webhook)
    if delivered:
        # The certificate names only the host: TLS checked the name while the connection went
        # to the address the DNS check returned.
        assert delivery["status"] == "delivered"
        assert receiving.received[0].verified
        assert receiving.received[0].headers["host"] == f"{RECEIVER_HOST}:{port}"
    else:
        assert delivery["status"] == "pending"
        assert delivery["last_error"].startswith("connection failed")
        assert receiving.received == []


async def test_a_fanout_round_with_nothing_to_read_waits_only_the_configured_block(
    pipeline: Pipeline,
) -> None:
    started = time.monotonic()
    assert await pipeline.fanout.step() == 0
    assert time.monotonic() - started < 1.0  # events_block_seconds is 0.05 here, not 2
