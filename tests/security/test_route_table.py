"""Every route is classified: a route nobody decided about fails here before it ships.

The attacks in this package are generated from the same enumeration, so a new route is
attacked as soon as it exists; these tests make sure someone also said whether it is
public and which resources it names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from tests.security.routes import (
    GATEWAY_PUBLIC,
    RESOURCE_PARAMS,
    SERVICES,
    TABLE,
    Route,
    all_service_routes,
    app_routes,
    compatibility_routes,
    gateway_app,
    gateway_own,
    gateway_prefixes,
    gateway_public,
    placeholders,
    service_apps,
    through_gateway,
)


def _difference(found: set[Route], classified: set[Route]) -> str:
    unclassified = "\n  ".join(map(str, sorted(found - classified)))
    stale = "\n  ".join(map(str, sorted(classified - found)))
    return f"not in TABLE:\n  {unclassified}\nin TABLE but gone:\n  {stale}"


def test_every_service_route_is_classified() -> None:
    found = all_service_routes()
    classified = {route for route in TABLE if route.service in SERVICES}
    assert found == classified, _difference(found, classified)


def test_every_gateway_route_is_classified() -> None:
    found = app_routes("gateway", gateway_app())
    classified = {route for route in TABLE if route.service == "gateway"}
    assert found == classified, _difference(found, classified)
    # The hot path's own table sends exactly these paths to the gateway's app.
    assert gateway_own() == {route.path for route in classified}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _is_async(call: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    if inspect.isclass(call) or inspect.isfunction(call):
        return False
    # A callable instance (a security scheme): its __call__ decides.
    return inspect.iscoroutinefunction(type(call).__call__)


def test_every_route_and_dependency_is_async() -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency in a worker thread, a hop through
    the thread pool on every request; every app's are coroutines."""
    apps = {**service_apps(), "gateway": gateway_app()}
    sync = [
        f"{name} {context.path}: {call.__module__}.{call.__qualname__}"
        for name, app in apps.items()
        for context in iter_route_contexts(app.routes)
        if hasattr(context, "dependant")
        for call in _calls(context.dependant)
        if not _is_async(call)
    ]
    assert not sync, "\n".join(sorted(set(sync)))


def test_the_gateway_lets_only_the_public_auth_routes_through_without_a_token() -> None:
    assert gateway_public() == GATEWAY_PUBLIC
    for method, path in GATEWAY_PUBLIC:
        # HEAD is GET without the body: the service's GET route answers it.
        route = Route("auth", "GET" if method == "HEAD" else method, path)
        assert TABLE[route].public, route


def test_every_service_route_under_a_gateway_prefix_is_that_services() -> None:
    prefixes = gateway_prefixes()
    for route in all_service_routes():
        owners = {
            service
            for service, owned in prefixes.items()
            if any(route.path == p or route.path.startswith(p + "/") for p in owned)
        }
        assert owners <= {route.service}, f"{route} is under another service's prefix"


def test_the_gateway_reaches_every_user_route() -> None:
    unreachable = [
        route
        for route in all_service_routes()
        if not TABLE[route].public and not through_gateway(route)
    ]
    assert unreachable == []


def test_every_resource_a_route_names_is_a_known_kind() -> None:
    routes = all_service_routes() | compatibility_routes(all_service_routes())
    for route in routes:
        unknown = placeholders(route) - set(RESOURCE_PARAMS)
        assert not unknown, f"{route} names {unknown}: add it to RESOURCE_PARAMS and its fixture"
