"""Every route of every app (services and gateway) runs on the event loop, dependencies too.

FastAPI awaits a coroutine function and enters an async generator on the loop; anything else
(a plain function, a class, an object whose ``__call__`` is plain) it runs in the worker
thread pool, a hop per request and a pool of 40 threads that a burst of requests queues on.
A plain ``def`` dependency slipped into any route fails here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from tests.security.routes import gateway_app, service_apps, web_app


def runs_on_event_loop(call: Callable[..., Any]) -> bool:
    """What FastAPI (and Starlette, for a plain route) decides before calling ``call``."""
    if inspect.isclass(call):
        return False  # instantiated in a worker thread
    target: Any = call if inspect.isroutine(call) else type(call).__call__
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """The endpoint and every dependency below it, the app's and routers' own included."""
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def test_every_route_and_dependency_of_every_app_is_a_coroutine() -> None:
    dependencies = 0
    threaded: list[str] = []
    apps = {**service_apps(), "gateway": gateway_app(), "web": web_app()}
    for service, app in apps.items():
        for context in iter_route_contexts(app.routes):
            dependant = getattr(context, "dependant", None)
            if dependant is not None:
                route_calls = list(calls(dependant))
                dependencies += len(route_calls) - 1
            elif inspect.isroutine(context.endpoint):
                route_calls = [context.endpoint]  # a plain Starlette route (docs pages)
            else:
                continue  # a mounted ASGI app (the MCP endpoint) is called, never threaded
            threaded.extend(
                f"{service} {context.path}: {getattr(call, '__qualname__', call)}"
                for call in route_calls
                if not runs_on_event_loop(call)
            )

    assert not threaded, "runs in the thread pool:\n  " + "\n  ".join(sorted(set(threaded)))
    assert dependencies > 0  # the walk reached the dependencies, not only the endpoints
