"""The todo app's own shape: probes, API description, unknown routes in the error envelope."""

from __future__ import annotations

import httpx

from tests.support.errors import assert_error
from tests.todo.conftest import User


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True}}


async def test_the_openapi_document_describes_every_route_and_list_parameter(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/api/tasks/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/api/tasks"]) == {"get", "post"}
    assert set(paths["/api/tasks/{task_id}"]) == {"get", "put", "patch", "delete"}
    assert set(paths["/api/tasks/{task_id}/complete"]) == {"patch"}
    parameters = {p["name"]: p for p in paths["/api/tasks"]["get"]["parameters"]}
    assert set(parameters) >= {
        "status", "priority", "tag", "q", "due_before", "due_after", "overdue", "sort",
        "order", "limit", "cursor",
    }  # fmt: skip
    assert parameters["status"]["schema"]["enum"] == ["all", "pending", "completed"]
    assert (await client.get("/api/tasks/docs")).status_code == 200


async def test_unknown_routes_and_methods_answer_in_the_envelope(
    client: httpx.AsyncClient, alice: User
) -> None:
    assert_error(await client.get("/api/nothing", headers=alice.headers), 404, "not_found")
    assert_error(
        await client.post("/api/tasks/1", json={}, headers=alice.headers),
        405,
        "method_not_allowed",
    )
