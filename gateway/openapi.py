"""One OpenAPI document for the whole platform, merged from the services' own.

Each service serves its document (the gateway fetches it from the service directly, see
``GATEWAY_<SERVICE>_OPENAPI_PATH``). Paths are kept as the client sees them through the
gateway: only those the gateway routes to that service are taken. Components with the same
name and the same content are shared; a name that two services use for different things is
prefixed with the service's name, and that service's references are rewritten to match.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from shared.openapi import REQUEST_ID_HEADER

OPENAPI_VERSION = "3.1.0"
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def merge(
    documents: Mapping[str, dict[str, Any]],
    *,
    prefixes: Mapping[str, Iterable[str]],
    unavailable: Iterable[str] = (),
    title: str = "Todo platform API",
    version: str = "1.0.0",
    extra_paths: Mapping[str, Any] | None = None,
    own: str | None = None,
) -> dict[str, Any]:
    """Merge the services' documents (by service name) into one. ``own`` names the gateway's
    own document among them: it answers those paths itself, so the proxy's refusals are not
    added to them."""
    merged: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": _description(unavailable)},
        "paths": {},
        "components": {},
    }
    tags: dict[str, dict[str, Any]] = {}
    proxied: list[dict[str, Any]] = []
    for service, original in documents.items():
        document = copy.deepcopy(original)
        renames = _merge_components(merged["components"], document.get("components", {}), service)
        if renames:
            document = _rewrite_refs(document, renames)
        owned = tuple(prefixes.get(service, ()))
        for path, item in document.get("paths", {}).items():
            if _routed(path, owned) and path not in merged["paths"]:
                merged["paths"][path] = item
                if service != own:
                    proxied.append(item)
        for tag in document.get("tags", []):
            if isinstance(tag, dict) and "name" in tag:
                tags.setdefault(tag["name"], tag)
    if "ErrorEnvelope" in merged["components"].get("schemas", {}):
        for item in proxied:
            _add_gateway_answers(item)
    for path, item in (extra_paths or {}).items():
        merged["paths"].setdefault(path, item)
    if tags:
        merged["tags"] = list(tags.values())
    if not merged["components"]:
        del merged["components"]
    return merged


# What the gateway itself may answer on any proxied operation, besides the service's own.
GATEWAY_ANSWERS = {
    "429": "Rate limited by the gateway; `Retry-After` says when to try again",
    "502": "The service reset the connection or answered something that is not HTTP",
    "503": "The service is not running or refused the connection",
    "504": "The service did not answer in time",
}
_GATEWAY_HEADERS: dict[str, dict[str, Any]] = {
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    }
}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def _add_gateway_answers(path_item: dict[str, Any]) -> None:
    """Document the gateway's own error answers on each proxied operation. Where the service
    documents the same status, its text comes first and the gateway's follows: a client
    meets both."""
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for method, operation in path_item.items():
        if method not in _HTTP_METHODS or not isinstance(operation, dict):
            continue
        responses = operation.setdefault("responses", {})
        for status, description in GATEWAY_ANSWERS.items():
            answer = responses.get(status)
            if answer is None:
                answer = responses[status] = {"description": description, "content": envelope}
            elif description not in answer.get("description", ""):
                answer["description"] = (
                    f"{answer.get('description', '')}\n\nFrom the gateway: {description}"
                )
            headers = {**_GATEWAY_HEADERS.get(status, {}), "X-Request-ID": REQUEST_ID_HEADER}
            for name, header in headers.items():
                answer.setdefault("headers", {}).setdefault(name, header)


def _description(unavailable: Iterable[str]) -> str:
    text = (
        "Every route of the platform, through the gateway. Log in with **Authorize** "
        "(your email as the username); the access token then goes with each request.\n\n"
        "The Phase II/III compatibility routes `/api/{user_id}/tasks...` and "
        "`/api/{user_id}/chat` take the same requests as `/api/tasks...` and `/api/chat`."
    )
    missing = sorted(unavailable)
    if missing:
        text += (
            f"\n\n**Unavailable when this document was built: {', '.join(missing)}** "
            "(their routes are missing here)."
        )
    return text


def _routed(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def _merge_components(
    target: dict[str, Any], components: Mapping[str, Any], service: str
) -> dict[str, str]:
    """Add one service's components; returns the references that had to be renamed.

    A component that refers to a renamed one differs too, even if its text is equal, so
    renaming repeats until nothing new collides (at most once per component).
    """
    sections = {
        section: entries for section, entries in components.items() if isinstance(entries, dict)
    }
    renames: dict[str, str] = {}
    rewritten: dict[str, Any] = sections
    for _ in range(sum(len(entries) for entries in sections.values()) + 1):
        rewritten = _rewrite_refs(sections, renames)
        collisions = {
            f"#/components/{section}/{name}": f"#/components/{section}/{service}_{name}"
            for section, entries in rewritten.items()
            for name, value in entries.items()
            if f"#/components/{section}/{name}" not in renames
            and name in target.get(section, {})
            and target[section][name] != value
        }
        if not collisions:
            break
        renames.update(collisions)
    for section, entries in rewritten.items():
        into = target.setdefault(section, {})
        for name, value in entries.items():
            ref = f"#/components/{section}/{name}"
            into.setdefault(renames.get(ref, ref).rsplit("/", 1)[1], value)
    return renames


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: renames.get(value, value)
            if key == "$ref" and isinstance(value, str)
            else _rewrite_refs(value, renames)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every (METHOD, path) of a document: what tests and readers compare."""
    return {
        (method.upper(), path)
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in _METHODS
    }
