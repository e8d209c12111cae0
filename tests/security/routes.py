"""The platform's route table, read from the apps themselves, and how each route is guarded.

Every route of every service app (``app.routes``, documented or not) and every route the
gateway answers must be classified in ``TABLE`` (``test_route_table.py`` fails otherwise),
and the security tests are generated from the enumeration, so a new route is attacked as
soon as it exists. A route is ``PUBLIC`` or needs a user's token (``USER``); a user route
that names a resource (a path parameter, or a placeholder in its sample body) is also
attacked with another user's ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from auth_service.app import create_app as create_auth_app
from auth_service.keys import generate_pem
from auth_service.settings import AuthSettings
from chat_service.app import create_app as create_chat_app
from chat_service.settings import ChatSettings
from gateway import routes as gateway_routes
from gateway.app import create_app as create_gateway_app
from gateway.routes import upstreams_from
from gateway.settings import GatewaySettings
from shared.docs import asset_paths
from todo_service.app import create_app as create_todo_app
from todo_service.settings import TodoSettings
from web_service.app import create_app as create_web_app
from web_service.settings import WebSettings

SERVICES = ("auth", "todo", "chat")


@dataclass(frozen=True, order=True)
class Route:
    service: str
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


@dataclass(frozen=True)
class Guard:
    """``public``, or a user route with a body that is valid for it (so that what refuses a
    request is the guard, not validation). ``{task_id}`` and ``{conversation_id}`` in a body
    stand for the resource owner's ids, as in a path."""

    public: bool
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # The answer to the user's own valid token with this body, when it is a refusal that is
    # not the token guard's (a wrong password re-entered): anything but a 401.
    answer: int | None = None
    # An event stream: open until the token expires, so a test reads its head, not its end.
    stream: bool = False


PUBLIC = Guard(public=True)
USER = Guard(public=False)


def user(body: Any, *, answer: int | None = None, **headers: str) -> Guard:
    return Guard(public=False, body=body, headers=headers, answer=answer)


# Resource kinds a route can name, by placeholder.
RESOURCE_PARAMS = {
    "task_id": "task",
    "conversation_id": "conversation",
    "notification_id": "notification",
    "webhook_id": "webhook",
}

MCP_LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
NEW_PASSWORD = "a brand new passphrase"
WEBHOOK_URL = "https://93.184.216.34/hook"


def _probes_and_docs(service: str, prefix: str) -> dict[Route, Guard]:
    """Every service's probes and its own documents, on its own port (the gateway asks for a
    token before it forwards a request under the service's prefix)."""
    get_head = ("GET", "HEAD")
    paths = {
        "/healthz": ("GET",),
        "/readyz": ("GET",),
        f"{prefix}/openapi.json": get_head,
        f"{prefix}/docs": get_head,
        **dict.fromkeys(asset_paths(f"{prefix}/docs"), get_head),
    }
    return {
        Route(service, method, path): PUBLIC
        for path, methods in paths.items()
        for method in methods
    }


TABLE: dict[Route, Guard] = {
    **_probes_and_docs("auth", "/api/auth"),
    **_probes_and_docs("todo", "/api/tasks"),
    **_probes_and_docs("chat", "/api/chat"),
    # auth
    Route("auth", "POST", "/api/auth/register"): PUBLIC,
    Route("auth", "POST", "/api/auth/login"): PUBLIC,
    Route("auth", "POST", "/api/auth/refresh"): PUBLIC,
    Route("auth", "POST", "/api/auth/logout"): PUBLIC,
    Route("auth", "GET", "/api/auth/jwks"): PUBLIC,
    Route("auth", "GET", "/api/auth/me"): USER,
    Route("auth", "PATCH", "/api/auth/me"): user({"name": "Mallory", "timezone": "Asia/Tokyo"}),
    Route("auth", "POST", "/api/auth/logout-all"): USER,
    # A wrong current password: with a valid token the answer is a 400, never a change.
    Route("auth", "POST", "/api/auth/password"): user(
        {"current_password": "not the password", "new_password": NEW_PASSWORD}
    ),
    # A wrong password re-entered: with a valid token the answer is a 403, never a deletion.
    Route("auth", "DELETE", "/api/auth/me"): user({"password": "not the password"}, answer=403),
    # todo
    Route("todo", "GET", "/api/tasks"): USER,
    Route("todo", "GET", "/api/tasks/stats"): USER,
    Route("todo", "POST", "/api/tasks"): user({"title": "planted"}),
    Route("todo", "GET", "/api/tasks/{task_id}"): USER,
    Route("todo", "PUT", "/api/tasks/{task_id}"): user({"title": "replaced"}),
    Route("todo", "PATCH", "/api/tasks/{task_id}"): user({"title": "renamed", "completed": True}),
    Route("todo", "PATCH", "/api/tasks/{task_id}/complete"): user({"completed": True}),
    Route("todo", "DELETE", "/api/tasks/{task_id}"): USER,
    Route("todo", "POST", "/api/mcp"): user(MCP_LIST_TOOLS, **MCP_HEADERS),
    # A public literal address: registering it resolves nothing and sends nothing.
    Route("todo", "POST", "/api/webhooks"): user({"url": WEBHOOK_URL}),
    Route("todo", "GET", "/api/webhooks"): USER,
    Route("todo", "GET", "/api/webhooks/{webhook_id}"): USER,
    Route("todo", "DELETE", "/api/webhooks/{webhook_id}"): USER,
    Route("todo", "GET", "/api/webhooks/{webhook_id}/deliveries"): USER,
    Route("todo", "GET", "/api/notifications"): USER,
    Route("todo", "GET", "/api/notifications/stream"): Guard(public=False, stream=True),
    Route("todo", "POST", "/api/notifications/{notification_id}/read"): USER,
    Route("todo", "POST", "/api/notifications/{notification_id}/snooze"): user({"minutes": 5}),
    # chat
    Route("chat", "POST", "/api/chat"): user(
        {"message": "add a task to buy milk", "conversation_id": "{conversation_id}"}
    ),
    Route("chat", "GET", "/api/conversations"): USER,
    Route("chat", "GET", "/api/conversations/{conversation_id}"): USER,
    Route("chat", "DELETE", "/api/conversations/{conversation_id}"): USER,
    # The gateway's own routes: probes, the platform's health, the merged document and its UI.
    Route("gateway", "GET", "/healthz"): PUBLIC,
    Route("gateway", "GET", "/readyz"): PUBLIC,
    Route("gateway", "GET", "/api/health"): PUBLIC,
    Route("gateway", "GET", "/api/openapi.json"): PUBLIC,
    **{
        Route("gateway", method, path): PUBLIC
        for path in ("/api/docs", *asset_paths("/api/docs"))
        for method in ("GET", "HEAD")
    },
}

# What the gateway lets through without a token: the auth service's public routes only.
GATEWAY_PUBLIC = {
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/jwks"),
    ("HEAD", "/api/auth/jwks"),
}


def _settings() -> dict[str, Any]:
    return {"_env_file": None, "environment": "test"}


def service_apps() -> dict[str, FastAPI]:
    """Each service's app, as ``python -m <service>`` builds it (nothing connects until its
    lifespan starts, so no database is needed to read its routes)."""
    return {
        "auth": create_auth_app(
            AuthSettings(**_settings(), signing_keys=SecretStr(generate_pem()))
        ),
        "todo": create_todo_app(TodoSettings(**_settings())),
        "chat": create_chat_app(ChatSettings(**_settings())),
    }


def gateway_app() -> FastAPI:
    return create_gateway_app(GatewaySettings(**_settings()))


def web_app() -> FastAPI:
    """The web client (pages, not API routes: it has no place in the route table)."""
    return create_web_app(WebSettings(**_settings()))


def app_routes(service: str, app: FastAPI) -> set[Route]:
    """Every method and path the app serves, included routers and undocumented routes too."""
    found = set()
    for context in iter_route_contexts(app.routes):
        assert context.path is not None, f"{service}: a route without a path: {context}"
        # A route that names no methods serves every one (as /api/mcp once did, the MCP
        # SDK's GET stream included): each route says which it serves.
        assert context.methods, f"{service}: {context.path} serves every method"
        for method in context.methods:
            found.add(Route(service, method, context.path))
    return found


def all_service_routes() -> set[Route]:
    return {route for name, app in service_apps().items() for route in app_routes(name, app)}


def gateway_prefixes() -> dict[str, tuple[str, ...]]:
    """The path prefixes the gateway forwards to each service."""
    upstreams = upstreams_from(GatewaySettings(**_settings()))
    return {name: upstream.prefixes for name, upstream in upstreams.items()}


def through_gateway(route: Route) -> bool:
    prefixes = gateway_prefixes().get(route.service, ())
    return any(route.path == p or route.path.startswith(p + "/") for p in prefixes)


def gateway_public() -> set[tuple[str, str]]:
    return {(method, path.decode()) for method, path in gateway_routes.PUBLIC}


def gateway_own() -> set[str]:
    return {path.decode() for path in gateway_routes.OWN}


def compatibility_routes(routes: set[Route]) -> set[Route]:
    """The Phase II/III routes the gateway also accepts: ``/api/{user_id}/tasks...`` for every
    task route and ``/api/{user_id}/chat``, answered by the same service route."""
    compat = set()
    for route in routes:
        if route.path == "/api/tasks" or route.path.startswith("/api/tasks/"):
            compat.add(Route(route.service, route.method, "/api/{user_id}" + route.path[4:]))
        elif route.path == "/api/chat":
            compat.add(Route(route.service, route.method, "/api/{user_id}/chat"))
    return compat


def canonical(route: Route) -> Route:
    """The service route a compatibility route is forwarded to."""
    return Route(route.service, route.method, route.path.replace("/api/{user_id}", "/api", 1))


PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def placeholders(route: Route) -> set[str]:
    """The resource ids a route names: in its path and in its sample body."""
    names = set(PLACEHOLDER.findall(route.path)) - {"user_id"}
    body = TABLE[canonical(route)].body
    if isinstance(body, dict):
        names |= {m for value in body.values() for m in PLACEHOLDER.findall(str(value))}
    return names


def fill(template: Any, values: dict[str, Any]) -> Any:
    """A path or body with its placeholders replaced (a whole-value placeholder keeps the
    value's type: ``"{task_id}"`` becomes the integer id)."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole is not None and whole.group(1) in values:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    return template
