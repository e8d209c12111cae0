"""Redis's users as ``make compose-env`` configures them (compose and the local Kubernetes
overlay share the file): a real ``redis-server`` runs the generated ``redis.conf``, and each
client, with the URL it is given, can do its own work and nothing else.

The gateway faces the internet and holds a Redis URL for its rate-limit counters. With one
password for everything, whoever took the gateway over could ``XADD`` a forged
``user.deleted`` onto ``events.users`` (the todo and chat workers would purge that user's
rows) or a task event onto ``events.tasks`` (the webhooks would sign it with the user's
secret and deliver it). The same holds between the workers: a consumer of the users stream
cannot add to it, so only the auth worker can announce a deletion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from limits import parse
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from auth_service.events import USER_EVENT_MAX_BYTES
from auth_service.settings import AuthSettings
from gateway.ratelimit import RateLimiter
from scripts.processes import free_port
from shared.events import (
    DEAD_LETTER_MAXLEN,
    TASKS_STREAM,
    USER_DELETED,
    USERS_STREAM,
    Event,
    RedisStreamPublisher,
    RedisStreamSubscription,
    redis_client,
)
from tests.deploy.compose import compose_env, read_env, secret_files
from tests.deploy.kubernetes import of_kind
from tests.support.redis import redis_process
from todo_service.models import TASK_EVENT_MAX_BYTES
from todo_service.settings import TodoSettings


def forged_deletion(subject: str) -> Event:
    return Event(
        id="999999",
        type=USER_DELETED,
        version=1,
        key=subject,
        occurred_at="2026-12-06T00:00:00Z",
        data={"user_id": subject, "deleted_at": "2026-12-06T00:00:00Z"},
    )


WORKERS = ("auth", "todo", "chat")


class Secrets:
    """The generated secrets, with the URLs pointed at the test's Redis."""

    def __init__(self, root: Path, port: int) -> None:
        env = read_env(root / ".env")
        directory = root / env["SECRETS_DIR"]
        self.conf = directory / "redis.conf"
        self.default_password = env["REDIS_PASSWORD"]
        here = f"@127.0.0.1:{port}/"
        compose_host = "@redis:6379/"
        self.gateway_url = (directory / "gateway-redis-url").read_text().replace(compose_host, here)
        self.events_urls = {
            worker: (directory / f"{worker}-events-redis-url")
            .read_text()
            .replace(compose_host, here)
            for worker in WORKERS
        }
        self.port = port


@pytest.fixture(scope="module")
def redis_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secrets]:
    """``redis-server`` with the configuration compose mounts (on loopback, nothing on disk)."""
    root = tmp_path_factory.mktemp("redis-users")
    compose_env(root)
    secrets = Secrets(root, free_port())
    # Its users as generated; the data directory (compose's volume) is the test's own.
    conf = secrets.conf.read_text()
    assert "dir /data\n" in conf
    local_conf = root / "redis-test.conf"
    local_conf.write_text(conf.replace("dir /data\n", f"dir {root}\n"))
    with redis_process(secrets.port, str(local_conf)):
        yield secrets


@pytest.fixture
async def gateway_redis(redis_users: Secrets) -> AsyncIterator[Redis]:
    client = redis_client(redis_users.gateway_url)
    yield client
    await client.aclose()


@pytest.fixture
async def workers_redis(redis_users: Secrets) -> AsyncIterator[dict[str, Redis]]:
    """Each worker's client, with the URL its secret holds."""
    clients = {worker: redis_client(url) for worker, url in redis_users.events_urls.items()}
    yield clients
    for client in clients.values():
        await client.aclose()


def test_every_client_has_a_user_and_password_of_its_own(redis_users: Secrets) -> None:
    assert redis_users.gateway_url.startswith("redis://gateway:")
    urls = [redis_users.gateway_url]
    for worker, url in redis_users.events_urls.items():
        assert url.startswith(f"redis://{worker}-events:")
        assert url.endswith("/1")
        urls.append(url)
    passwords = {redis_users.default_password, *(url.split(":")[2].split("@")[0] for url in urls)}
    assert len(passwords) == 5
    assert "requirepass" not in redis_users.conf.read_text()


async def test_the_gateways_redis_user_cannot_write_a_forged_deletion_onto_the_users_stream(
    gateway_redis: Redis, workers_redis: dict[str, Redis]
) -> None:
    publisher = RedisStreamPublisher(gateway_redis, maxlen=10_000)
    event = forged_deletion("3f6c1e0a-9b1d-4c6e-8f2a-5d7e9b0c1a2f")
    with pytest.raises(NoPermissionError):
        await publisher.publish(USERS_STREAM, event.id, event.to_json())
    with pytest.raises(NoPermissionError):
        await gateway_redis.xadd("events.tasks", {"id": "1", "event": b"{}"})
    # Nor read, claim, acknowledge, trim or delete what is there.
    await RedisStreamPublisher(workers_redis["auth"], maxlen=10_000).publish(
        USERS_STREAM, "1", forged_deletion("someone").to_json()
    )
    for command in (
        ("XRANGE", USERS_STREAM, "-", "+"),
        ("XREADGROUP", "GROUP", "todo", "gateway", "STREAMS", USERS_STREAM, ">"),
        ("XGROUP", "CREATE", USERS_STREAM, "intruder", "0"),
        ("XTRIM", USERS_STREAM, "MAXLEN", "0"),
        ("DEL", USERS_STREAM),
        ("EVAL", "return redis.call('XADD', KEYS[1], '*', 'event', '{}')", "1", USERS_STREAM),
    ):
        with pytest.raises(NoPermissionError):
            await gateway_redis.execute_command(*command)
    assert await workers_redis["auth"].xlen(USERS_STREAM) >= 1


async def test_no_client_can_administer_redis(
    gateway_redis: Redis, workers_redis: dict[str, Redis]
) -> None:
    for client in (gateway_redis, *workers_redis.values()):
        for command in (
            ("FLUSHALL",),
            ("CONFIG", "SET", "appendonly", "no"),
            ("ACL", "SETUSER", "gateway", "+@all", "~*"),
            ("KEYS", "*"),
            ("SCRIPT", "FLUSH"),
            ("CLIENT", "KILL", "TYPE", "normal"),
            ("SUBSCRIBE", "anything"),
        ):
            with pytest.raises(NoPermissionError):
                await client.execute_command(*command)


async def test_no_worker_can_touch_the_rate_limit_counters(
    workers_redis: dict[str, Redis],
) -> None:
    for client in workers_redis.values():
        for command in (("SET", "LIMITS:anything", "0"), ("GET", "LIMITS:anything")):
            with pytest.raises(NoPermissionError):
                await client.execute_command(*command)


@pytest.mark.parametrize("worker", ["todo", "chat"])
async def test_a_consumer_of_the_users_stream_cannot_announce_a_deletion(
    workers_redis: dict[str, Redis], worker: str
) -> None:
    event = forged_deletion("3f6c1e0a-9b1d-4c6e-8f2a-5d7e9b0c1a2f")
    with pytest.raises(NoPermissionError):
        await RedisStreamPublisher(workers_redis[worker], maxlen=10_000).publish(
            USERS_STREAM, event.id, event.to_json()
        )
    with pytest.raises(NoPermissionError):
        await workers_redis[worker].execute_command(
            "XGROUP", "DESTROY", USERS_STREAM, "auth" if worker == "chat" else "chat"
        )


@pytest.mark.parametrize("worker", ["auth", "chat"])
async def test_only_the_todo_worker_adds_task_events(
    workers_redis: dict[str, Redis], worker: str
) -> None:
    with pytest.raises(NoPermissionError):
        await workers_redis[worker].xadd(TASKS_STREAM, {"id": "1", "event": b"{}"})


async def test_the_auth_worker_publishes_and_reads_no_group(
    workers_redis: dict[str, Redis],
) -> None:
    auth = workers_redis["auth"]
    await RedisStreamPublisher(auth, maxlen=10_000).publish(
        USERS_STREAM, "2", forged_deletion("someone").to_json()
    )
    with pytest.raises(NoPermissionError):
        await auth.execute_command(
            "XREADGROUP", "GROUP", "todo", "auth", "STREAMS", USERS_STREAM, ">"
        )


async def test_the_default_user_answers_ping_with_its_password_and_does_nothing_else(
    redis_users: Secrets,
) -> None:
    anonymous = Redis(host="127.0.0.1", port=redis_users.port, socket_timeout=5)
    with pytest.raises((AuthenticationError, ResponseError), match=r"NOAUTH|authenticated"):
        await anonymous.ping()
    await anonymous.aclose()
    probe = Redis(host="127.0.0.1", port=redis_users.port, password=redis_users.default_password)
    try:
        assert await probe.ping() is True
        with pytest.raises(NoPermissionError):
            await probe.xadd(USERS_STREAM, {"event": b"{}"})
        with pytest.raises(NoPermissionError):
            await probe.get("LIMITS:anything")
    finally:
        await probe.aclose()


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter", "moving-window"])
async def test_the_gateways_rate_limits_work_with_its_user(
    redis_users: Secrets, strategy: str
) -> None:
    limiter = RateLimiter(redis_users.gateway_url, strategy)  # type: ignore[arg-type]
    limit = parse("3/minute")
    key = f"test-{strategy}"
    # A storage error would let every request through: the fourth is refused only when the
    # counters work.
    for _ in range(3):
        assert await limiter.hit([limit], key) is None
    retry_after = await limiter.hit([limit], key)
    assert retry_after is not None
    assert 1 <= retry_after <= 60


async def consume(client: Redis, stream: str, group: str, *, failing: str) -> tuple[list[str], int]:
    """What a real subscription with ``client`` hands its handler (the entry whose event id
    is ``failing`` meets an outage first, which the subscription takes back from its count,
    then keeps failing, so it goes to the dead letters), and how many are pending."""
    subscription = RedisStreamSubscription(
        client, stream=stream, group=group, consumer="c1", block_ms=10, max_deliveries=1
    )
    seen: list[str] = []
    outage = True

    async def handler(event: Event) -> None:
        nonlocal outage
        if event.id == failing and outage:
            outage = False
            raise ConnectionRefusedError("database down")
        seen.append(event.id)
        if event.id == failing:
            raise ValueError("cannot be applied")

    async def drain() -> None:
        while await subscription.poll(handler):
            pass

    async with asyncio.timeout(10):
        with pytest.raises(ConnectionRefusedError):
            await drain()
        await drain()
    pending = await client.xpending(stream, group)
    return seen, int(pending["pending"])


def entry(event_id: str) -> bytes:
    return Event(
        id=event_id,
        type="test",
        version=1,
        key="k",
        occurred_at="2026-12-06T00:00:00Z",
        data={},
    ).to_json()


async def test_each_worker_runs_its_streams_with_its_own_user(
    workers_redis: dict[str, Redis],
) -> None:
    auth, todo, chat = workers_redis["auth"], workers_redis["todo"], workers_redis["chat"]
    users = RedisStreamPublisher(auth, maxlen=10_000)
    await users.publish(USERS_STREAM, "u1", entry("u1"))
    await users.publish(USERS_STREAM, "u2", entry("u2"))
    # The todo and chat groups each read the users stream; a failing entry is dead-lettered.
    for client, group in ((todo, "todo"), (chat, "chat")):
        seen, pending = await consume(client, USERS_STREAM, group, failing="u2")
        assert [event_id for event_id in seen if event_id.startswith("u")][-2:] == ["u1", "u2"]
        assert pending == 0
    assert await chat.xlen(USERS_STREAM + ".dead") >= 2
    # The todo worker publishes its tasks stream and reads it back as the webhooks group.
    tasks = RedisStreamPublisher(todo, maxlen=10_000)
    await tasks.publish(TASKS_STREAM, "t1", entry("t1"))
    await tasks.publish(TASKS_STREAM, "t2", entry("t2"))
    seen, pending = await consume(todo, TASKS_STREAM, "webhooks", failing="t1")
    assert seen == ["t1", "t2"]
    assert pending == 0
    assert await todo.xlen(TASKS_STREAM + ".dead") == 1
    # A full stream's publisher trims what every group has read and acknowledged, with the
    # same users; an entry handed out but not acknowledged (XPENDING's) stays.
    await users.publish(USERS_STREAM, "u3", entry("u3"))
    await todo.xreadgroup("todo", "c1", {USERS_STREAM: ">"}, count=1)
    full = RedisStreamPublisher(auth, maxlen=await auth.xlen(USERS_STREAM))
    # The chat group was handed u2 last, the todo group has u3 pending: both stay.
    assert (await full.room(USERS_STREAM)).entries == full.maxlen - 2
    full = RedisStreamPublisher(todo, maxlen=await todo.xlen(TASKS_STREAM))
    assert (await full.room(TASKS_STREAM)).entries == full.maxlen - 1


# Units of redis.conf's sizes, of compose's mem_limit and of Kubernetes' quantities: all powers
# of 1024 as they are used here.
_UNITS = {"": 1, "k": 1024, "kb": 1024, "ki": 1024, "m": 1024**2, "mb": 1024**2, "mi": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gi": 1024**3}  # fmt: skip


def size_bytes(value: str | int) -> int:
    text = str(value).strip().lower()
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(digits) * _UNITS[text[len(digits) :]]


def test_the_shipped_redis_refuses_writes_before_its_container_runs_out_of_memory(
    local: Any, env_file: Path, manifests: list[dict[str, Any]]
) -> None:
    conf = secret_files(local, env_file)["redis_conf"]
    settings = dict(
        line.split(" ", 1) for line in conf.splitlines() if line.startswith("maxmemory")
    )
    maxmemory = size_bytes(settings["maxmemory"])
    # Full, a write fails loudly: no stream entry or rate-limit counter is evicted in silence.
    assert settings["maxmemory-policy"] == "noeviction"

    redis = of_kind(manifests, "Deployment")["redis"]["spec"]["template"]["spec"]
    (container,) = redis["containers"]
    limits = {
        "compose": size_bytes(local["services"]["redis"]["mem_limit"]),
        "kubernetes": size_bytes(container["resources"]["limits"]["memory"]),
    }
    for where, limit in limits.items():
        # Room beyond maxmemory for the append-only file's rewrite and the clients' buffers.
        assert maxmemory <= 0.7 * limit, (where, maxmemory, limit)

    # Every stream at its length (neither compose nor the overlay sets another) of its largest
    # events, and its dead letters, leave a quarter for the counters and Redis itself. A large
    # entry takes the allocator's next size class (10 KiB: 12 KiB); small ones are packed
    # many to a node, counted twice over.
    tasks = TodoSettings.model_fields["events_stream_maxlen"].default
    users = AuthSettings.model_fields["events_stream_maxlen"].default
    streams = (tasks + DEAD_LETTER_MAXLEN) * TASK_EVENT_MAX_BYTES * 1.25 + (
        users + DEAD_LETTER_MAXLEN
    ) * USER_EVENT_MAX_BYTES * 2
    assert streams <= 0.75 * maxmemory, (streams, maxmemory)
