"""The signing secrets' keys (rotation, a removed key), the documented verifier's refusals
(replays, forgeries), and account deletion: a deleted user's webhooks and deliveries are
purged and can never be stored again."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import FrozenClock
from shared.db import Database
from shared.sealing import SecretBox
from tests.support.errors import assert_error
from tests.support.events import user_deleted
from tests.support.serving import serve
from tests.todo.conftest import User
from tests.todo.webhooks.conftest import TableDns, register
from tests.todo.webhooks.receiver import documented_verifier
from todo_service import events
from todo_service.app import create_app
from todo_service.models import WEBHOOK_DELIVERIES, WEBHOOKS
from todo_service.settings import TodoSettings
from todo_service.webhooks.__main__ import main
from todo_service.webhooks.delivery import WebhookDeliverer
from todo_service.webhooks.keys import WebhookKeys, reseal_secrets
from todo_service.webhooks.signing import new_secret, signed_headers

DOCS = Path(__file__).parents[3] / "docs"

# --- keys ---------------------------------------------------------------------------------


async def sealed(sessionmaker: async_sessionmaker[AsyncSession], webhook_id: int) -> bytes:
    async with sessionmaker() as session:
        value = (
            await (await session.connection()).execute(
                select(WEBHOOKS.c.secret_sealed).where(WEBHOOKS.c.id == webhook_id)
            )
        ).scalar_one()
    return bytes(value)


async def test_reseal_moves_every_secret_to_the_newest_key(
    hooks: httpx.AsyncClient,
    alice: User,
    bob: User,
    box_key: bytes,
    database: Database,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    created = [await register(hooks, alice), await register(hooks, bob)]
    new = Fernet.generate_key()
    # A rotation's middle step: the new key first, the old one still there.
    assert await reseal_secrets(database, SecretBox([new, box_key]), batch=1) == 2
    only_new = SecretBox([new])
    for webhook in created:
        assert only_new.open(await sealed(sessionmaker, webhook["id"])) == webhook["secret"]


async def test_a_secret_no_configured_key_opens_is_a_failed_attempt_not_a_request(
    hooks: httpx.AsyncClient,
    alice: User,
    database: Database,
    todo_settings: TodoSettings,
    clock: FrozenClock,
    dns: TableDns,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    created = await register(hooks, alice)
    async with sessionmaker() as session:
        await (await session.connection()).execute(
            text(
                "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
                " payload, status, next_attempt_at, created_at)"
                " VALUES (:w, :u, '1', 'task.created', '{}', 'pending', :now, :now)"
            ),
            {"w": created["id"], "u": alice.sub, "now": clock()},
        )
        await session.commit()
    stranger = SecretBox([Fernet.generate_key()])
    deliverer = WebhookDeliverer(
        database, WebhookKeys(todo_settings, stranger), todo_settings, clock=clock, resolver=dns
    )
    assert await deliverer.deliver_once() == 1
    assert dns.asked == ["hooks.example.com"]  # at registration only: no attempt was made
    async with sessionmaker() as session:
        row = (
            await (await session.connection()).execute(
                select(WEBHOOK_DELIVERIES.c.status, WEBHOOK_DELIVERIES.c.last_error)
            )
        ).one()
    assert row.status == "pending"
    assert "cannot be opened" in row.last_error


def test_each_step_of_the_documented_rotation_opens_what_the_step_beside_it_seals() -> None:
    """docs/webhooks.md's key rotation, as the key lists the API and the worker hold: a
    rolling restart runs each step beside the one before (and the API's Deployment and the
    worker's roll apart), so whatever either seals the other must open, or the worker fails
    every attempt to a webhook registered meanwhile (the test above)."""
    section = (DOCS / "webhooks.md").read_text().split("## Keys and rotation", 1)[1]
    section = section.split("\n## ", 1)[0]
    steps = [m.group(1).split(", ") for m in re.finditer(r"= `([A-Z]+(?:, [A-Z]+)*)`", section)]
    assert len(steps) >= 2
    keys = {"CURRENT": Fernet.generate_key(), "NEW": Fernet.generate_key()}
    rotation = [["CURRENT"], *steps]
    for before, after in itertools.pairwise(rotation):
        for sealer, opener in ((before, after), (after, before)):
            sealed = SecretBox([keys[name] for name in sealer]).seal("whsec_secret")
            opened = SecretBox([keys[name] for name in opener]).open(sealed)
            assert opened == "whsec_secret", (sealer, opener)


def test_the_reseal_command_refuses_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rotate-everything"]) == 2
    assert "usage" in capsys.readouterr().err


# --- the documented verifier ---------------------------------------------------------------


@pytest.fixture
def signed() -> tuple[str, dict[str, str], bytes]:
    secret = new_secret()
    body = b'{"id":"5","type":"task.created"}'
    return secret, signed_headers(secret, "5", int(time.time()), body), body


def test_the_documented_verifier_accepts_a_fresh_signed_request(
    signed: tuple[str, dict[str, str], bytes],
) -> None:
    secret, headers, body = signed
    assert documented_verifier()(secret, headers, body)


def test_the_documented_verifier_accepts_one_valid_signature_among_several(
    signed: tuple[str, dict[str, str], bytes],
) -> None:
    secret, headers, body = signed
    headers = {**headers, "webhook-signature": "v1,AAAA v2,xyz " + headers["webhook-signature"]}
    assert documented_verifier()(secret, headers, body)


@pytest.mark.parametrize(
    "tamper",
    [
        "replayed-after-5-minutes",
        "from-the-future",
        "body-changed",
        "id-changed",
        "timestamp-changed",
        "other-secret",
        "no-signature",
        "timestamp-not-a-number",
        "unknown-version",
    ],
)
def test_the_documented_verifier_refuses(
    signed: tuple[str, dict[str, str], bytes], tamper: str
) -> None:
    secret, headers, body = signed
    verify = documented_verifier()
    now = int(headers["webhook-timestamp"])
    changes: dict[str, Any] = {
        "replayed-after-5-minutes": {"now": now + 301},
        "from-the-future": {"now": now - 301},
        "body-changed": {"body": body + b" "},
        "id-changed": {"headers": {**headers, "webhook-id": "6"}},
        "timestamp-changed": {"headers": {**headers, "webhook-timestamp": str(now + 1)}},
        "other-secret": {"secret": new_secret()},
        "no-signature": {"headers": {k: v for k, v in headers.items() if k != "webhook-signature"}},
        "timestamp-not-a-number": {"headers": {**headers, "webhook-timestamp": "1e9"}},
        "unknown-version": {
            "headers": {
                **headers,
                "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,"),
            }
        },
    }[tamper]
    arguments = {"secret": secret, "headers": headers, "body": body, "now": now, **changes}
    assert not verify(
        arguments["secret"], arguments["headers"], arguments["body"], arguments["now"]
    )
    # Just inside the window it is still accepted.
    assert verify(secret, headers, body, now + 299)


# --- account deletion ----------------------------------------------------------------------


async def count(db: Database, table: Any, subject: str) -> int:
    async with db.engine.connect() as connection:
        query = select(func.count()).select_from(table).where(table.c.user_id == subject)
        return int((await connection.execute(query)).scalar_one())


async def test_a_deleted_users_webhooks_and_deliveries_are_purged_and_refused_after(
    todo_settings: TodoSettings,
    committed_database: Database,
    issuer: Any,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    alice: User,
    bob: User,
) -> None:
    app = create_app(
        todo_settings, db=committed_database, verifier=issuer.verifier(), clock=clock,
        resolver=dns, webhook_box=box,
    )  # fmt: skip
    async with serve(app) as client:
        mine = await register(client, alice)
        await register(client, bob)
        async with committed_database.unit_of_work() as session:
            await (await session.connection()).execute(
                text(
                    "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id,"
                    " event_type, payload, status, next_attempt_at, created_at)"
                    " VALUES (:w, :u, '1', 'task.created', '{}', 'pending', now(), now())"
                ),
                {"w": mine["id"], "u": alice.sub},
            )
        await events.PURGE.handle(committed_database, user_deleted(alice.sub, "71"))
        assert await count(committed_database, WEBHOOKS, alice.sub) == 0
        assert await count(committed_database, WEBHOOK_DELIVERIES, alice.sub) == 0
        assert await count(committed_database, WEBHOOKS, bob.sub) == 1

        refused = await client.post(
            "/api/webhooks", json={"url": "https://hooks.example.com/"}, headers=alice.headers
        )
        assert_error(refused, 401, "account_deleted")
    # A write past the token check is refused by the trigger.
    for statement in (
        "INSERT INTO todo.webhooks (user_id, url, events, secret_sealed, created_at)"
        " VALUES (:u, 'https://x.example.com/', '{task.created}', '\\x00', now())",
        "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
        " payload, status, next_attempt_at, created_at)"
        " SELECT id, :u, '2', 'task.created', '{}', 'pending', now(), now()"
        " FROM todo.webhooks LIMIT 1",
    ):
        async with committed_database.engine.connect() as writer:
            with pytest.raises(DBAPIError) as error:
                await writer.execute(text(statement), {"u": alice.sub})
        assert isinstance(error.value.orig.__cause__, asyncpg.PostgresError)
        assert error.value.orig.__cause__.sqlstate == "P0401"


# --- retention -------------------------------------------------------------------------------


async def test_finished_deliveries_are_deleted_after_the_retention_and_pending_ones_kept(
    hooks: httpx.AsyncClient,
    alice: User,
    database: Database,
    todo_settings: TodoSettings,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    created = await register(hooks, alice)
    retention = todo_settings.webhook_retention_seconds
    async with sessionmaker() as session:
        await (await session.connection()).execute(
            text(
                "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
                " payload, status, next_attempt_at, created_at, finished_at) VALUES"
                " (:w, :u, 'old', 'task.created', '{}', 'failed', NULL, :long_ago, :long_ago),"
                " (:w, :u, 'recent', 'task.created', '{}', 'delivered', NULL, :now, :now),"
                " (:w, :u, 'waiting', 'task.created', '{}', 'pending', :later, :long_ago, NULL)"
            ),
            {
                "w": created["id"],
                "u": alice.sub,
                "now": clock(),
                "later": clock() + timedelta(days=1),
                "long_ago": clock() - timedelta(seconds=retention + 1),
            },
        )
        await session.commit()
    deliverer = WebhookDeliverer(
        database, WebhookKeys(todo_settings, box), todo_settings, clock=clock, resolver=dns
    )
    assert await deliverer.forget_finished(batch=10) == 1
    async with sessionmaker() as session:
        kept = (
            await (await session.connection()).execute(
                select(WEBHOOK_DELIVERIES.c.event_id).order_by(WEBHOOK_DELIVERIES.c.event_id)
            )
        ).scalars()
        assert list(kept) == ["recent", "waiting"]


async def test_a_delivery_claimed_by_a_replica_that_died_waits_for_its_lease_then_is_retried(
    hooks: httpx.AsyncClient,
    alice: User,
    database: Database,
    todo_settings: TodoSettings,
    clock: FrozenClock,
    dns: TableDns,
    box: SecretBox,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    created = await register(hooks, alice)
    async with sessionmaker() as session:
        await (await session.connection()).execute(
            text(
                "INSERT INTO todo.webhook_deliveries (webhook_id, user_id, event_id, event_type,"
                " payload, status, next_attempt_at, created_at)"
                " VALUES (:w, :u, '1', 'task.created', '{}', 'pending', :now, :now)"
            ),
            {"w": created["id"], "u": alice.sub, "now": clock()},
        )
        await session.commit()
    attempting, stuck = asyncio.Event(), asyncio.Event()

    async def hanging_dns(host: str, port: int) -> list[Any]:
        attempting.set()  # claimed and leased: the attempt has begun
        await stuck.wait()  # the replica dies during its attempt
        return []

    dying = WebhookDeliverer(
        database, WebhookKeys(todo_settings, box), todo_settings, clock=clock, resolver=hanging_dns
    )
    attempt = asyncio.create_task(dying.deliver_once())
    await asyncio.wait_for(attempting.wait(), timeout=10)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    other = WebhookDeliverer(
        database, WebhookKeys(todo_settings, box), todo_settings, clock=clock, resolver=dns
    )
    assert await other.deliver_once() == 0  # leased to the dead replica
    lease = 2 * todo_settings.webhook_attempt_timeout + 5
    clock.advance(seconds=lease)
    # Refused before any connection: the test reaches no network.
    dns.answers["hooks.example.com"] = ["10.0.0.1"]
    assert await other.deliver_once() == 1
    async with sessionmaker() as session:
        attempts = (
            await (await session.connection()).execute(select(WEBHOOK_DELIVERIES.c.attempts))
        ).scalar_one()
    assert attempts == 2
    assert dns.asked[-1] == "hooks.example.com"
