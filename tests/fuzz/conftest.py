"""Fuzzing fixtures: every service's own OpenAPI document, and the gateway's merged one.

In-process, each test (one per operation) gets a fresh app with its own engine on the
session's PostgreSQL: Schemathesis runs the app's lifespan in its own event-loop thread and
ends it after every test, and the MCP session manager of the todo app runs once per app.
Writes are committed for real; the service schemas are emptied when the package is done.
Through the gateway, the services are real processes (``tests/e2e/stack.py``).

The documents fuzzed are built the way the apps build them (``app.openapi()``), with no
server running, because Schemathesis collects one test per operation at import time.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import time
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import schemathesis
import uvicorn
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import SecretStr
from schemathesis import BaseSchema, Case, Config, HookContext, Response
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import RejectedPositiveData
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from auth_service.app import create_app as create_auth_app
from auth_service.keys import generate_pem
from auth_service.settings import AuthSettings
from chat_service.app import create_app as create_chat_app
from chat_service.settings import ChatSettings
from gateway import openapi
from gateway.app import create_app as create_gateway_app
from gateway.routes import upstreams_from
from gateway.settings import GatewaySettings
from scripts.processes import free_port
from shared.timezones import NOT_ZONES
from tests.e2e.stack import Stack, running_stack
from tests.support.database import empty_service_schemas
from tests.support.tokens import TestIssuer
from todo_service.api import ENTITY_TAGS_PATTERN
from todo_service.app import create_app as create_todo_app
from todo_service.settings import TodoSettings

# Examples per operation and the seed: fixed, so that CI runs the same requests every time.
# Raise FUZZ_MAX_EXAMPLES for a longer hunt (FUZZ_SEED picks other requests).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
SEED = int(os.environ.get("FUZZ_SEED", "20261127"))

PASSWORD = "correct horse battery staple"

# Answers to schema-valid requests that are right all the same: a stale If-Match (412),
# besides what Schemathesis accepts by default.
ACCEPTED = ["2XX", "3XX", "401", "403", "404", "409", "412", "429"]
# Refusals of schema-valid requests that are right: what depends on state (a cursor the
# listing did not issue, an Idempotency-Key already used with another body, a wrong current
# password), and text with U+0000, which PostgreSQL cannot store (the fuzzer sends it on
# purpose: it must be a 422, never a 500).
RIGHTFUL_CODES = frozenset(
    {
        "invalid_cursor",
        "idempotency_key_reused",
        "wrong_password",
        "invalid_character",
        "reminder_needs_due_date",
    }
)
MAX_ID = 2**63 - 1


# Event streams stay open until the token expires: their own tests read them
# (tests/todo/test_notification_stream.py, tests/gateway/test_notification_stream.py).
STREAMS = ("/api/notifications/stream",)


def fuzz_schema(document: dict[str, Any]) -> BaseSchema:
    schema = schemathesis.openapi.from_dict(document, config=fuzz_config())
    for path in STREAMS:
        schema = schema.exclude(path=path)
    schema.hook("filter_failure")(_not_a_rightful_refusal)
    return schema


def fuzz_config() -> Config:
    """Schemathesis' default checks (no 5xx; documented status codes, headers, content types
    and bodies; invalid data refused, valid data accepted), seeded and bounded."""
    return Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        }
    )


def _not_a_rightful_refusal(
    context: HookContext, failure: Failure, case: Case, response: Response
) -> bool:
    """Keep every failure but "valid data refused" where the server is right to refuse."""
    if not isinstance(failure, RejectedPositiveData):
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and _rightful_refusal(case, body))


def _rightful_refusal(case: Case, body: dict[str, Any]) -> bool:
    code = body.get("code")
    if code in RIGHTFUL_CODES:
        return True
    if isinstance(code, str) and code.startswith("webhook_url_"):
        # A webhook URL must be https and name a public address once resolved (docs/webhooks.md):
        # a policy beyond `format: uri`, which the generator's URLs rarely meet.
        return True
    if code in ("invalid_if_match", "invalid_if_none_match"):
        # Schemathesis' coverage phase sends an empty value as a valid one, ignoring the
        # header's pattern; a value that matches the pattern must be accepted.
        header = "If-Match" if code == "invalid_if_match" else "If-None-Match"
        value = (case.headers or {}).get(header)
        return not isinstance(value, str) or re.fullmatch(ENTITY_TAGS_PATTERN, value) is None
    detail = body.get("detail")
    if code == "validation_error" and isinstance(detail, list) and detail:
        return all(_beyond_the_schema(issue) for issue in detail)
    return False


def _beyond_the_schema(issue: dict[str, Any]) -> bool:
    # email-validator refuses special-use domains (.test, .invalid, .localhost): a policy
    # beyond the syntax that `format: email` promises.
    if issue.get("loc") == ["body", "email"] and "special-use" in str(issue.get("msg")):
        return True
    # A task's reminders: exactly one of at or before_due_minutes, no duplicate, an offset
    # only with a due date (rules across fields, which the schema does not express).
    loc = issue.get("loc") or []
    if issue.get("type") == "value_error" and (
        loc[:2] == ["body", "reminders"]
        or (loc == ["body"] and "before_due_minutes" in str(issue.get("msg")))
    ):
        return True
    # A timestamp's UTC form must fall strictly inside the years 1-9999 (todo_service.schemas
    # ._to_utc): a range `format: date-time` cannot state, whose ends the generator favours.
    if issue.get("type") == "value_error" and "timestamp is out of range" in str(issue.get("msg")):
        return True
    # At most 10 distinct tags: counted after normalising (the schema bounds the raw list).
    if loc == ["body", "tags"] and "distinct tags" in str(issue.get("msg")):
        return True
    # The generator takes bounds near 2**63 through floats, so an id it calls valid can be
    # just above the documented maximum, which the server rightly refuses.
    ctx = issue.get("ctx") or {}
    return issue.get("type") == "less_than_equal" and ctx.get("le") == str(MAX_ID)


def with_known_zones(document: dict[str, Any]) -> dict[str, Any]:
    """The fuzzer's copy of a document, told what the published one leaves to prose: a time
    zone (a chat turn's, a user's, a task's, the overview's ``tz``) is a name the zone
    database knows (listing ~600 names would bloat every client generated from the
    document)."""
    document = copy.deepcopy(document)
    zones = sorted(zoneinfo.available_timezones() - NOT_ZONES)

    def known(schema: dict[str, Any]) -> None:
        for option in [schema, *schema.get("anyOf", [])]:
            if option.get("type") == "string":
                option["enum"] = zones

    for schema in document.get("components", {}).get("schemas", {}).values():
        for name in ("timezone", "time_zone"):  # a user's; a task's recurrence's
            zone = schema.get("properties", {}).get(name)
            if zone is not None:
                known(zone)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "tz":
                    known(parameter["schema"])
    return document


# --- the documents, as each app serves them ---------------------------------------------------


def todo_settings(database_url: str | None = None) -> TodoSettings:
    return TodoSettings(_env_file=None, environment="test", database_url=database_url)


def chat_settings(database_url: str | None = None, todo_mcp_url: str = "") -> ChatSettings:
    values: dict[str, Any] = {"environment": "test", "database_url": database_url}
    if todo_mcp_url:
        values["todo_mcp_url"] = todo_mcp_url
    return ChatSettings(_env_file=None, **values)


SIGNING_PEM = generate_pem()


def auth_settings(database_url: str | None = None) -> AuthSettings:
    return AuthSettings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        signing_keys=SecretStr(SIGNING_PEM),
    )


def service_documents() -> dict[str, dict[str, Any]]:
    return {
        "auth": create_auth_app(auth_settings()).openapi(),
        "todo": create_todo_app(todo_settings()).openapi(),
        "chat": create_chat_app(chat_settings()).openapi(),
    }


def merged_document() -> dict[str, Any]:
    """The gateway's merged document, merged here as the gateway merges what it fetches."""
    settings = GatewaySettings(_env_file=None, environment="test")
    gateway = create_gateway_app(settings)
    own = get_openapi(title=gateway.title, version=gateway.version, routes=gateway.routes)
    upstreams = upstreams_from(settings)
    return openapi.merge(
        {**service_documents(), "gateway": own},
        prefixes={
            **{name: upstream.prefixes for name, upstream in upstreams.items()},
            "gateway": ("/api/health",),
        },
        own="gateway",
    )


# --- aiming generated ids at rows that exist ---------------------------------------------------


def aim_at(case: Case, parameter: str, ids: list[int]) -> None:
    """Send every other in-range generated id to one of the user's own rows instead, so the
    routes that change a row are fuzzed on rows, not only on 404s. Out-of-range and
    malformed ids (the negative cases) go as generated."""
    value = (case.path_parameters or {}).get(parameter)
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if ids and in_range and value % 2 == 0:
        case.path_parameters[parameter] = ids[value % len(ids)]


# --- in-process services ------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzUser:
    headers: dict[str, str]
    task_ids: list[int]
    conversation_ids: list[int]


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="package")
def fuzz_sub() -> str:
    return f"fuzz-{uuid.uuid4().hex[:12]}"


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1 in a thread of its own: the fuzz tests block the
    test's event loop, and chat's MCP client needs a todo service that keeps answering."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fuzz-todo", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the todo service did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="package")
def todo_mcp_url(migrated_url: str, issuer: TestIssuer) -> Iterator[str]:
    app = create_todo_app(todo_settings(migrated_url), verifier=issuer.verifier())
    with serve_in_thread(app) as base:
        yield f"{base}/api/mcp"


@pytest.fixture(scope="package")
def service_user(
    migrated_url: str, issuer: TestIssuer, fuzz_sub: str, todo_mcp_url: str
) -> FuzzUser:
    """The todo and chat fuzz user, with a few tasks and a conversation to aim ids at."""
    headers = issuer.auth(fuzz_sub)
    todo = create_todo_app(todo_settings(migrated_url), verifier=issuer.verifier())
    with TestClient(todo) as client:
        task_ids = [
            client.post("/api/tasks", json={"title": f"seed {n}"}, headers=headers).json()["id"]
            for n in range(4)
        ]
    chat = create_chat_app(chat_settings(migrated_url, todo_mcp_url), verifier=issuer.verifier())
    with TestClient(chat) as client:
        reply = client.post("/api/chat", json={"message": "show my tasks"}, headers=headers)
        assert reply.status_code == 200, reply.text
    return FuzzUser(headers, task_ids, [reply.json()["conversation_id"]])


@pytest.fixture
def todo_app(migrated_url: str, issuer: TestIssuer) -> FastAPI:
    return create_todo_app(todo_settings(migrated_url), verifier=issuer.verifier())


@pytest.fixture
def chat_app(migrated_url: str, issuer: TestIssuer, todo_mcp_url: str) -> FastAPI:
    return create_chat_app(chat_settings(migrated_url, todo_mcp_url), verifier=issuer.verifier())


@pytest.fixture
def auth_app(migrated_url: str) -> FastAPI:
    return create_auth_app(auth_settings(migrated_url))


@pytest.fixture(scope="package")
def auth_user(migrated_url: str) -> FuzzUser:
    """A registered, logged-in account of the auth service under fuzz."""
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    with TestClient(create_auth_app(auth_settings(migrated_url))) as client:
        registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return FuzzUser({"Authorization": f"Bearer {token}"}, [], [])


@pytest_asyncio.fixture(scope="package", loop_scope="session", autouse=True)
async def _empty_schemas_after(engine: AsyncEngine) -> AsyncIterator[None]:
    """What the fuzzers wrote is real data: gone when the package is done."""
    yield
    await empty_service_schemas(engine)


# --- through the gateway --------------------------------------------------------------------


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def stack(migrated_url: str, engine: AsyncEngine) -> AsyncIterator[Stack]:
    """Every service of this checkout running, the gateway in front: one stack for this
    package (``tests/e2e/stack.py``)."""
    async with running_stack(migrated_url, engine) as running:
        yield running


@pytest.fixture(scope="package")
def gateway_user(stack: Stack) -> FuzzUser:
    """A user registered through the gateway, with a few tasks and a conversation."""
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as client:
        registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        task_ids = [
            client.post("/api/tasks", json={"title": f"seed {n}"}, headers=headers).json()["id"]
            for n in range(4)
        ]
        reply = client.post("/api/chat", json={"message": "show my tasks"}, headers=headers)
        assert reply.status_code == 200, reply.text
    return FuzzUser(headers, task_ids, [reply.json()["conversation_id"]])


@pytest.fixture
def processes_survive(stack: Stack) -> Iterator[None]:
    """After each operation's examples: every process still runs and logged no traceback."""
    before = {name: len(stack.log(name)) for name in ("auth", "todo", "chat", "gateway")}
    yield
    for name, offset in before.items():
        assert stack.running(name), f"{name} died:\n{stack.log(name)[-3000:]}"
        written = stack.log(name)[offset:]
        assert "Traceback" not in written, f"{name} logged an unhandled error:\n{written[-3000:]}"
