"""The worker's delivery loop: due deliveries are claimed, POSTed, and recorded.

A round keeps up to ``webhook_batch`` attempts running, at most
``webhook_attempts_per_user`` of them one user's: it claims due pending deliveries into free
slots with ``FOR UPDATE SKIP LOCKED`` and leases them (their next attempt moved past the
longest attempt), so replicas never attempt one delivery concurrently and a replica that
dies mid-attempt only delays it until the lease ends (at least once: receivers drop a
repeated ``webhook-id``). Each attempt is recorded when it ends and its slot claimed again,
so one user's slow receivers or long backlog delay only that user's deliveries. Each attempt
checks the target again (shared rules in ``targets``), connects to the checked address, POSTs
the envelope signed, and follows no redirect: a 2xx is delivered, anything else (a 3xx, a
timeout, a refusal) is retried after an exponential, jittered pause until the retry window
after the event ends, then the delivery is failed.

An attempt that fails, or succeeds only after ``webhook_slow_seconds``, also holds its webhook
back: its pending deliveries due before the hold ends (those not locked at the time) wait out
the same kind of pause, growing with the webhook's failures in a row, and the next prompt
success ends the series. A receiver that stalls thus gets its share of attempts once per
pause, not for every attempt its backlog has due, however many accounts send to such
receivers; a delivery whose retry window would end during the pause is failed.

Finished deliveries and fanned-out event ids are deleted after ``webhook_retention_seconds``
by the worker's own ``webhooks-retention`` loop (``forget_finished``), however busy delivery is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from shared.clock import Clock, utcnow
from shared.db import Database
from shared.http import system_trust
from shared.sealing import InvalidToken, SecretBox
from shared.tasks import stop_tasks
from todo_service.models import DELIVERY_ERROR_MAX
from todo_service.settings import TodoSettings
from todo_service.webhooks.keys import WebhookKeys
from todo_service.webhooks.signing import signed_headers
from todo_service.webhooks.targets import (
    Resolver,
    TargetRefused,
    check_target,
    parse_target,
    system_resolver,
)

logger = logging.getLogger(__name__)

USER_AGENT = "todo-platform-webhooks/1"

# Claims the oldest due deliveries, at most ``room`` more per user (its attempts already
# running here count against the per-user bound): the oldest ``scan`` due ones of the users
# not yet at the bound are read first, then locked, so a user with a long backlog is skipped
# in the index walk instead of filling the batch.
_CLAIM = text(
    """
    WITH oldest AS (
        SELECT id, user_id, next_attempt_at,
               row_number() OVER (PARTITION BY user_id ORDER BY next_attempt_at, id) AS nth
        FROM (
            SELECT id, user_id, next_attempt_at FROM todo.webhook_deliveries
            WHERE status = 'pending' AND next_attempt_at <= :now
              AND user_id <> ALL(CAST(:full AS text[]))
            ORDER BY next_attempt_at, id
            LIMIT :scan
        ) AS due
    ), busy AS (
        SELECT * FROM unnest(CAST(:users AS text[]), CAST(:room AS int[])) AS b(user_id, room)
    ), chosen AS (
        SELECT d.id FROM todo.webhook_deliveries AS d
        JOIN oldest ON oldest.id = d.id
        LEFT JOIN busy ON busy.user_id = oldest.user_id
        WHERE oldest.nth <= coalesce(busy.room, :per_user)
          AND d.status = 'pending' AND d.next_attempt_at <= :now
        ORDER BY oldest.next_attempt_at, oldest.id
        LIMIT :batch
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE todo.webhook_deliveries AS d
    SET attempts = d.attempts + 1, next_attempt_at = :lease_until
    FROM chosen, todo.webhooks AS w
    WHERE d.id = chosen.id AND w.id = d.webhook_id AND w.user_id = d.user_id
    RETURNING d.id, d.user_id, d.webhook_id, d.event_id, d.payload, d.attempts, d.created_at,
              w.url, w.secret_sealed, w.failures AS webhook_failures
    """
)
# Due deliveries read per claim, per free slot, before the per-user bound picks among them.
_SCAN_PER_SLOT = 10
# While attempts run, how often newly due deliveries are claimed into the free slots.
CLAIM_POLL_SECONDS = 0.5
# A success is recorded over a failure too: an attempt still running when its webhook's hold
# failed the delivery (below) did deliver it.
_DELIVERED = text(
    """
    UPDATE todo.webhook_deliveries
    SET status = 'delivered', delivered_at = :now, finished_at = :now, next_attempt_at = NULL,
        last_status_code = :code, last_error = NULL
    WHERE id = :id AND status <> 'delivered'
    """
)
# A failed attempt is recorded only while its lease is the delivery's last (``attempts`` as
# the claim left it): an attempt that outlasted its lease leaves the next replica's lease,
# and that replica's outcome, alone. A success is recorded whichever attempt made it.
_RETRY = text(
    """
    UPDATE todo.webhook_deliveries
    SET next_attempt_at = :next, last_status_code = :code, last_error = :error
    WHERE id = :id AND status = 'pending' AND attempts = :attempts
    """
)
_FAILED = text(
    """
    UPDATE todo.webhook_deliveries
    SET status = 'failed', finished_at = :now, next_attempt_at = NULL,
        last_status_code = :code, last_error = :error
    WHERE id = :id AND status = 'pending' AND attempts = :attempts
    """
)
# After an attempt that failed or was slow, its webhook is held until ``until``: its failures
# in a row counted, and its other pending deliveries due before then moved to then, or failed
# when their retry window ends first. Recording an outcome waits only for the delivery's own
# row, locked first (as before the hold): the webhook's row and its other deliveries are
# skipped while locked (a deletion, the account's purge, a claim or another hold has them),
# so the hold never waits in a lock order that the purge (deliveries, then webhooks) or a
# webhook's deletion (the webhook, then its deliveries) takes the other way round.
_HOLD_WEBHOOK = text(
    """
    UPDATE todo.webhooks
    SET failures = failures + 1, held_until = greatest(held_until, CAST(:until AS timestamptz))
    WHERE id = (SELECT id FROM todo.webhooks WHERE id = :webhook_id FOR NO KEY UPDATE SKIP LOCKED)
    """
)
_HOLD_DELIVERIES = text(
    """
    WITH held AS (
        SELECT id,
               created_at + CAST(:window AS interval) < CAST(:until AS timestamptz) AS expired
        FROM todo.webhook_deliveries
        WHERE webhook_id = :webhook_id AND id <> :id
          AND status = 'pending' AND next_attempt_at < :until
        FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE todo.webhook_deliveries AS d
    SET status = CASE WHEN held.expired THEN 'failed' ELSE 'pending' END,
        next_attempt_at = CASE WHEN held.expired THEN NULL
                               ELSE CAST(:until AS timestamptz) END,
        finished_at = CASE WHEN held.expired THEN CAST(:now AS timestamptz) END,
        last_error = CASE WHEN held.expired THEN CAST(:held_error AS text) ELSE d.last_error END
    FROM held
    WHERE d.id = held.id
    """
)
# A prompt success ends the series.
_RELEASE = text(
    """
    UPDATE todo.webhooks SET failures = 0, held_until = NULL
    WHERE id = (
        SELECT id FROM todo.webhooks WHERE id = :webhook_id AND failures > 0
        FOR NO KEY UPDATE SKIP LOCKED
    )
    """
)
HELD_ERROR = "failed: its webhook was held past the retry window after failures"
_FORGET_DELIVERIES = text(
    """
    DELETE FROM todo.webhook_deliveries WHERE id IN (
        SELECT id FROM todo.webhook_deliveries WHERE finished_at < :before
        ORDER BY finished_at LIMIT :batch)
    """
)
_FORGET_EVENTS = text(
    """
    DELETE FROM todo.webhook_events WHERE event_id IN (
        SELECT event_id FROM todo.webhook_events WHERE processed_at < :before
        ORDER BY processed_at LIMIT :batch)
    """
)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    seconds: float = 0.0  # how long the attempt took

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(eq=False)
class WebhookDeliverer:
    """Attempts due deliveries; ``clock``, ``resolver`` and ``jitter`` (a number in [0, 1))
    are injectable so that tests move time instead of waiting, and ``trust`` (the system's
    certificate authorities by default) so that they can serve HTTPS themselves."""

    db: Database
    keys: WebhookKeys
    settings: TodoSettings
    _: KW_ONLY
    clock: Clock = utcnow
    resolver: Resolver = system_resolver
    jitter: Callable[[], float] = random.random
    trust: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        settings = self.settings
        self._timeout = httpx.Timeout(
            connect=settings.webhook_connect_timeout,
            read=settings.webhook_read_timeout,
            write=settings.webhook_read_timeout,
            pool=settings.webhook_connect_timeout,
        )
        # An attempt never outlives its lease: another replica may take the delivery after.
        self._lease = timedelta(seconds=2 * settings.webhook_attempt_timeout + 5)

    def retry_delay(self, attempts: int) -> timedelta:
        """The pause after the ``attempts``-th failure: exponential, capped, jittered."""
        settings = self.settings
        ceiling = min(
            settings.webhook_retry_base_seconds * 2 ** min(attempts - 1, 40),
            settings.webhook_retry_max_seconds,
        )
        return timedelta(seconds=ceiling * (0.5 + 0.5 * self.jitter()))

    async def deliver_once(self) -> int:
        """One round: the number of deliveries attempted (none without keys: a production
        without ``TODO_WEBHOOK_KEYS`` has no webhooks, so nothing is due either).

        Up to ``webhook_batch`` attempts run at once, at most ``webhook_attempts_per_user``
        of them one user's; a slot is filled again as soon as its attempt ends, so a slow
        receiver holds its own slot, not the round. New claims stop after
        ``webhook_attempt_timeout``; the round returns once its attempts have ended.

        A claim or a record that fails (the database away) stops the claims and is the
        round's failure once the attempts running have ended and been recorded: cancelling
        them would only send them again, late, after their leases."""
        running: dict[asyncio.Task[None], str] = {}
        attempted = 0
        stop_claiming = time.monotonic() + self.settings.webhook_attempt_timeout
        failure: BaseException | None = None
        box: SecretBox | None = None
        client: httpx.AsyncClient | None = None
        try:
            while True:
                free = self.settings.webhook_batch - len(running)
                claimed = []
                if failure is None and free > 0 and time.monotonic() < stop_claiming:
                    try:
                        claimed = await self._claim(free, Counter(running.values()))
                    except Exception as exc:
                        failure = exc
                if claimed and client is None:
                    box = await self.keys.box()
                    # No connection is reused: each attempt is its own, to the address it
                    # checked.
                    client = httpx.AsyncClient(
                        timeout=self._timeout,
                        follow_redirects=False,
                        trust_env=False,
                        verify=self.trust if self.trust is not None else system_trust(),
                        limits=httpx.Limits(
                            max_connections=self.settings.webhook_batch,
                            max_keepalive_connections=0,
                        ),
                    )
                for row in claimed:
                    assert client is not None
                    task = asyncio.create_task(self._deliver(client, box, row))
                    running[task] = row.user_id
                attempted += len(claimed)
                if not running:
                    break
                done, _ = await asyncio.wait(
                    running, timeout=CLAIM_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    del running[task]
                    if (error := task.exception()) is not None and failure is None:
                        failure = error
        finally:
            await stop_tasks(running)
            if client is not None:
                await client.aclose()
        if failure is not None:
            raise failure
        return attempted

    async def _claim(self, free: int, running: Counter[str]) -> list[Any]:
        """Lease up to ``free`` due deliveries, within the per-user bound given what is
        ``running`` (attempts per user)."""
        now = self.clock()
        per_user = self.settings.webhook_attempts_per_user
        busy = [(user, per_user - n) for user, n in running.items()]
        async with self.db.unit_of_work() as session:
            connection = await session.connection()
            return list(
                (
                    await connection.execute(
                        _CLAIM,
                        {
                            "now": now,
                            "batch": free,
                            "scan": free * _SCAN_PER_SLOT,
                            "per_user": per_user,
                            "full": [user for user, room in busy if room <= 0],
                            "users": [user for user, _ in busy],
                            "room": [max(room, 0) for _, room in busy],
                            "lease_until": now + self._lease,
                        },
                    )
                ).all()
            )

    async def _deliver(self, client: httpx.AsyncClient, box: SecretBox | None, row: Any) -> None:
        """One attempt, and its outcome recorded at once."""
        started = time.monotonic()
        outcome = replace(await self._attempt(client, box, row), seconds=time.monotonic() - started)
        async with self.db.unit_of_work() as session:
            connection = await session.connection()
            await self._record(connection, row, outcome, self.clock())

    async def _attempt(self, client: httpx.AsyncClient, box: SecretBox | None, row: Any) -> Outcome:
        settings = self.settings
        if box is None:
            return Outcome(None, "webhook keys are not configured")
        try:
            secret = box.open(bytes(row.secret_sealed))
        except InvalidToken:
            logger.error("delivery %s: the webhook's secret opens with no configured key", row.id)
            return Outcome(None, "the signing secret cannot be opened (a key was removed)")
        try:
            target = parse_target(row.url, allow_loopback=settings.webhooks_allow_loopback)
            checked = await check_target(
                target,
                resolver=self.resolver,
                ports=settings.webhook_ports,
                allow_loopback=settings.webhooks_allow_loopback,
            )
        except TargetRefused as refused:
            return Outcome(None, f"refused: {refused.message}")
        body = row.payload.encode()
        timestamp = int(self.clock().timestamp())
        headers = {
            **signed_headers(secret, row.event_id, timestamp, body),
            "Host": checked.host_header(),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            async with asyncio.timeout(settings.webhook_attempt_timeout):
                async with client.stream(
                    "POST",
                    checked.request_url(),
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": target.host},
                ) as response:
                    await self._drain(response)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(None, "timed out")
        except httpx.HTTPError as exc:
            return Outcome(None, f"connection failed: {type(exc).__name__}")
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(code, None)
        if 300 <= code < 400:
            return Outcome(code, f"HTTP {code}: redirects are not followed")
        return Outcome(code, f"HTTP {code}")

    async def _drain(self, response: httpx.Response) -> None:
        """Read at most ``webhook_response_bytes`` of the answer; the rest is dropped."""
        limit = self.settings.webhook_response_bytes
        seen = 0
        async for chunk in response.aiter_raw():
            seen += len(chunk)
            if seen >= limit:
                return

    async def _record(self, connection: Any, row: Any, outcome: Outcome, now: datetime) -> None:
        """The delivery's outcome, then its webhook held after a failure or a slow success
        (none of the webhook's deliveries due before the hold ends, this one's included) or
        released after a prompt one. The pause counts the webhook's failures in a row as the
        claim read them: attempts failing together each count, and each holds at least as
        long as the pause they read."""
        settings = self.settings
        window = timedelta(seconds=settings.webhook_retry_window_seconds)
        healthy = outcome.delivered and outcome.seconds <= settings.webhook_slow_seconds
        held_until = None if healthy else now + self.retry_delay(row.webhook_failures + 1)
        if outcome.delivered:
            await connection.execute(
                _DELIVERED, {"id": row.id, "now": now, "code": outcome.status_code}
            )
        else:
            error = outcome.error[:DELIVERY_ERROR_MAX] if outcome.error else None
            next_attempt = max(now + self.retry_delay(row.attempts), held_until or now)
            failure = {"id": row.id, "attempts": row.attempts, "code": outcome.status_code}
            if next_attempt > row.created_at + window:
                await connection.execute(_FAILED, {**failure, "now": now, "error": error})
            else:
                await connection.execute(_RETRY, {**failure, "next": next_attempt, "error": error})
        if held_until is None:
            await connection.execute(_RELEASE, {"webhook_id": row.webhook_id})
            return
        await connection.execute(_HOLD_WEBHOOK, {"webhook_id": row.webhook_id, "until": held_until})
        await connection.execute(
            _HOLD_DELIVERIES,
            {
                "webhook_id": row.webhook_id,
                "id": row.id,
                "now": now,
                "until": held_until,
                "window": window,
                "held_error": HELD_ERROR,
            },
        )

    async def forget_finished(self, *, batch: int) -> int:
        """Delete at most ``batch`` deliveries finished, and ``batch`` fanned-out event ids
        recorded, longer than the retention ago, oldest first; how many rows went. The
        worker's ``webhooks-retention`` loop runs it on its own schedule: run after a round
        that attempted nothing, it never ran while some attempt was always running."""
        before = self.clock() - timedelta(seconds=self.settings.webhook_retention_seconds)
        async with self.db.unit_of_work() as session:
            connection = await session.connection()
            parameters = {"before": before, "batch": batch}
            deliveries = await connection.execute(_FORGET_DELIVERIES, parameters)
            events = await connection.execute(_FORGET_EVENTS, parameters)
            return int(deliveries.rowcount) + int(events.rowcount)
