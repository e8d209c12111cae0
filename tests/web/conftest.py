"""The web client against the real platform: auth, todo, chat and the gateway as live
servers on loopback ports (started once for the package), and the web app in process.

Every service commits for real (the web app's sessions and its refresh lock are about
concurrent requests), so the service schemas are emptied after each test.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.app import create_app as create_auth_app
from auth_service.keys import generate_pem
from auth_service.settings import AuthSettings
from chat_service.app import create_app as create_chat_app
from chat_service.settings import ChatSettings
from gateway.app import create_app as create_gateway_app
from gateway.server import CoalescingHttpToolsProtocol
from gateway.settings import GatewaySettings
from shared.db import Database
from shared.server import HttpLimits, http_protocol
from tests.support.database import empty_service_schemas
from tests.support.serving import live_server, serve
from todo_service.app import create_app as create_todo_app
from todo_service.settings import TodoSettings
from web_service.app import create_app
from web_service.crypto import TokenBox
from web_service.settings import WebSettings

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Platform:
    gateway_url: str
    auth_url: str
    todo_url: str
    chat_url: str
    jwks_url: str
    db: Database


@pytest.fixture(scope="session")
async def platform(engine: AsyncEngine, migrated_url: str) -> AsyncIterator[Platform]:
    """auth, todo, chat and the gateway, served on 127.0.0.1 for the whole test session."""
    db = Database(engine)
    async with AsyncExitStack() as stack:
        auth_settings = AuthSettings(
            _env_file=None,
            environment="test",
            database_url=migrated_url,
            signing_keys=SecretStr(generate_pem()),
        )
        auth_url = await stack.enter_async_context(
            live_server(create_auth_app(auth_settings, db=db))
        )
        jwks = f"{auth_url}/api/auth/jwks"
        todo_settings = TodoSettings(
            _env_file=None, environment="test", database_url=migrated_url, auth_jwks_url=jwks
        )
        todo_url = await stack.enter_async_context(
            live_server(create_todo_app(todo_settings, db=db))
        )
        chat_settings = ChatSettings(
            _env_file=None,
            environment="test",
            database_url=migrated_url,
            auth_jwks_url=jwks,
            todo_mcp_url=f"{todo_url}/api/mcp",
        )
        chat_url = await stack.enter_async_context(
            live_server(create_chat_app(chat_settings, db=db))
        )
        gateway_settings = GatewaySettings(
            _env_file=None,
            environment="test",
            auth_url=auth_url,
            todo_url=todo_url,
            chat_url=chat_url,
            auth_jwks_url=jwks,
            rate_limit_user="",
            rate_limit_chat_turn="",
            rate_limit_auth_ip="",
            trusted_forwarders=["127.0.0.1"],
        )
        protocol = http_protocol(HttpLimits.of(gateway_settings), CoalescingHttpToolsProtocol)
        gateway_url = await stack.enter_async_context(
            live_server(create_gateway_app(gateway_settings), http=protocol, proxy_headers=False)
        )
        yield Platform(
            gateway_url=gateway_url,
            auth_url=auth_url,
            todo_url=todo_url,
            chat_url=chat_url,
            jwks_url=jwks,
            db=db,
        )


@pytest.fixture
async def clean(platform: Platform, engine: AsyncEngine) -> AsyncIterator[Platform]:
    yield platform
    await empty_service_schemas(engine, restart_identity=True)


@pytest.fixture(scope="session")
def box_key() -> bytes:
    """The web client's key in the tests (a test may seal what the service would have)."""
    return Fernet.generate_key()


@pytest.fixture(scope="session")
def box(box_key: bytes) -> TokenBox:
    return TokenBox([box_key])


WebAppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_web_app(clean: Platform, migrated_url: str, box: TokenBox) -> WebAppFactory:
    def build(**overrides: Any) -> FastAPI:
        clock = overrides.pop("clock", None)
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": migrated_url,
            "gateway_url": clean.gateway_url,
            **overrides,
        }
        extra = {"clock": clock} if clock is not None else {}
        return create_app(WebSettings(_env_file=None, **values), db=clean.db, box=box, **extra)

    return build


@pytest.fixture
async def browser(make_web_app: WebAppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on the web app: it keeps cookies and sends same-origin fetch metadata."""
    async with serve(make_web_app()) as client:
        client.headers["Sec-Fetch-Site"] = "same-origin"
        yield client


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


# A refused form's page: the address of the form's page naming the refusal it shows again.
FORM_AGAIN = re.compile(r"^/[^?]*\?(?:.*&)?form=[A-Za-z0-9_-]{22}$")


async def shown_again(client: httpx.AsyncClient, answer: httpx.Response) -> httpx.Response:
    """The page a refused form came back to: the form's POST is answered, as a form that
    succeeded is, with a 303 (never an answer Back or Forward would send again), here to the
    form's page naming the refusal (``web_service.form_states``), which shows it again
    answered as the refusal was: its 4xx (or the API's 5xx), its Retry-After."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert FORM_AGAIN.match(location), location
    page = await client.get(location)
    assert page.status_code >= 400, page.text
    return page


# The first item of a page's error summary (a link to its field, or the form's own problem).
FIRST_PROBLEM = re.compile(
    r'data-testid="error-summary">.*?<li>(?:<a href="[^"]*">)?([^<]*)<', re.DOTALL
)


def refusal_of(page: str) -> str:
    """The first problem the error summary of ``page`` names, as a person reads it."""
    found = FIRST_PROBLEM.search(page)
    assert found is not None, "no error summary in the page"
    return html.unescape(found.group(1))


# The page's banner: the problem of the refused form its address names.
PROBLEM = re.compile(r'data-testid="problem"><p>([^<]*)</p>')


def problem_of(page: str) -> str:
    """The problem ``page`` says above its content, as a person reads it."""
    found = PROBLEM.search(page)
    assert found is not None, "no problem shown on the page"
    return html.unescape(found.group(1))


def credentials(
    page: httpx.Response, password: str, email: str = "ann@example.com"
) -> dict[str, str]:
    """The sign-in form of ``page``, filled in."""
    return {"csrf_token": csrf_of(page.text), "email": email, "password": password}


async def register(platform: Platform, email: str, name: str = "Ann") -> None:
    """An account made through the public API, as any client makes one."""
    async with httpx.AsyncClient(base_url=platform.gateway_url) as api:
        answer = await api.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert answer.status_code == 201, answer.text


async def sign_in(
    client: httpx.AsyncClient, email: str = "ann@example.com", *, next_path: str | None = None
) -> httpx.Response:
    page = await client.get("/signin")
    target = "/signin" if next_path is None else f"/signin?next={next_path}"
    answer = await client.post(
        target, data={"csrf_token": csrf_of(page.text), "email": email, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    return answer


@pytest.fixture
async def ann(clean: Platform, browser: httpx.AsyncClient) -> httpx.AsyncClient:
    """The browser, signed in as Ann (registered through the API)."""
    await register(clean, "ann@example.com")
    await sign_in(browser)
    return browser


async def page_csrf(client: httpx.AsyncClient, path: str = "/tasks") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def api_token(platform: Platform, email: str = "ann@example.com") -> dict[str, Any]:
    """A login through the public API (another device of the same user)."""
    async with httpx.AsyncClient(base_url=platform.gateway_url) as api:
        answer = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def api_create(platform: Platform, token: str, **task: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.gateway_url) as api:
        answer = await api.post(
            "/api/tasks", json=task, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def api_task(platform: Platform, token: str, task_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.gateway_url) as api:
        answer = await api.get(
            f"/api/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def idempotency_key_of(html: str) -> str:
    match = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert match is not None, "no Idempotency-Key in the form"
    return match.group(1)


async def create_form(client: httpx.AsyncClient, **fields: str | list[str]) -> httpx.Response:
    """The create form as rendered, filled in and sent."""
    page = await client.get("/tasks")
    data = {
        "csrf_token": csrf_of(page.text),
        "idempotency_key": idempotency_key_of(page.text),
        "priority": "medium",
        "recurrence": "none",
        **fields,
    }
    return await client.post("/tasks", data=data)


async def count(platform: Platform, sql: str, *args: Any) -> int:
    row = await platform.db.fetch_row(sql, *args)
    assert row is not None
    return int(row[0])
