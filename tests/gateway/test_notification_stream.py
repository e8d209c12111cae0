"""The notification stream through the gateway, to the real todo service: events arrive as
the service sends them, and the service's keepalives keep a quiet stream open past the
gateway's read timeout of the todo upstream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db import Database
from tests.support.serving import live_server
from todo_service.app import create_app as create_todo
from todo_service.scheduler import fire_due
from todo_service.settings import TodoSettings


async def test_a_quiet_stream_outlives_the_read_timeout_and_delivers_through_the_gateway(
    start_gateway: Any, issuer: Any, migrated_url: str, committed_database: Database
) -> None:
    settings = TodoSettings(
        _env_file=None,
        environment="test",
        database_url=migrated_url,
        notifications_poll_seconds=0.05,
        notifications_keepalive_seconds=0.3,
    )
    todo = create_todo(settings, db=committed_database, verifier=issuer.verifier())
    headers = issuer.auth("ann")
    async with (
        live_server(todo) as todo_url,
        start_gateway(todo_url=todo_url, todo_read_timeout=2.0) as (_, client),
        client.stream("GET", "/api/notifications/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        await asyncio.sleep(4.5)  # quiet for more than twice the gateway's read timeout
        due = datetime.now(UTC)
        created = await client.post(
            "/api/tasks",
            json={"title": "through", "reminders": [{"at": due.isoformat()}]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert await fire_due(committed_database, now=due + timedelta(seconds=1), batch=5) == 1
        seen: list[str] = []
        async with asyncio.timeout(5):
            async for line in lines:
                seen.append(line)
                if line.startswith("data: "):
                    break
    assert ": keepalive" in seen
    assert "event: notification" in seen
    notification = json.loads(seen[-1].removeprefix("data: "))
    assert notification["task_title"] == "through"

    # Resumed through the gateway: Last-Event-ID reaches the service.
    resumed = {**headers, "Last-Event-ID": str(notification["id"] - 1)}
    again = create_todo(settings, db=committed_database, verifier=issuer.verifier())
    async with (
        live_server(again) as todo_url,
        start_gateway(todo_url=todo_url) as (_, client),
        client.stream("GET", "/api/notifications/stream", headers=resumed) as response,
    ):
        async with asyncio.timeout(5):
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    assert line == f"id: {notification['id']}"
                    break
