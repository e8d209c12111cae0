"""Corrections to the OpenAPI documents FastAPI generates, applied by every service's app.

An optional query parameter or header (``str | None = None``) comes out as ``anyOf: [string,
null]``. A parameter cannot be null on the wire: when a client has no value it leaves the
parameter out, and a literal ``null`` would arrive as the text "null". The published
parameter schemas keep only the real type, so that clients, and the fuzzer, read the same
rules the server applies.

Every answer carries ``X-Request-ID`` (``shared.middleware``, ``shared.server`` and the
gateway add it); FastAPI has no place to say so once, so it is added to every response here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from shared.errors import ERROR_DESCRIPTIONS

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

REQUEST_ID_HEADER: dict[str, Any] = {
    "description": "The request's id: the client's own `X-Request-ID` when it is 1-128 "
    "characters of `A-Za-z0-9._:-`, else a new one; also `request_id` in an error's body",
    "schema": {"type": "string"},
    "required": True,
}


def location_header(names: str) -> dict[str, Any]:
    """A 201's ``Location`` as an OpenAPI response header; ``names`` says what it names."""
    return {"Location": {"description": names, "schema": {"type": "string"}, "required": True}}


def parameters_without_null(document: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``null`` alternative from every parameter's schema (in place; returned)."""
    for item in document.get("paths", {}).values():
        operations = [item] + [op for method, op in item.items() if method in _METHODS]
        for operation in operations:
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema")
                if isinstance(schema, dict):
                    _drop_null(schema)
    return document


def _drop_null(schema: dict[str, Any]) -> None:
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return
    kept = [option for option in options if option != {"type": "null"}]
    if len(kept) == len(options):
        return
    del schema["anyOf"]
    if len(kept) == 1:
        schema.update({key: value for key, value in kept[0].items() if key not in schema})
    else:
        schema["anyOf"] = kept
    if "default" in schema and schema["default"] is None:
        del schema["default"]


def json_bodies_refuse_other_types(document: dict[str, Any]) -> dict[str, Any]:
    """Document the 415 of every operation that takes a JSON body: one sent as another type
    (or none) is refused in the envelope (``shared.errors.UnsupportedMediaType``). In place;
    returned."""
    refusal = {
        "description": ERROR_DESCRIPTIONS[415],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            body = operation.get("requestBody", {}) if method in _METHODS else {}
            if "application/json" in body.get("content", {}):
                operation.setdefault("responses", {}).setdefault("415", refusal)
    return document


def answers_carry_request_id(document: dict[str, Any]) -> dict[str, Any]:
    """Document ``X-Request-ID`` on every response of every operation. In place; returned."""
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in _METHODS:
                for response in operation.get("responses", {}).values():
                    response.setdefault("headers", {}).setdefault("X-Request-ID", REQUEST_ID_HEADER)
    return document


def install_openapi_corrections(app: FastAPI) -> None:
    """Apply :func:`parameters_without_null`, :func:`json_bodies_refuse_other_types` and
    :func:`answers_carry_request_id` to the app's document, once, when first built."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = json_bodies_refuse_other_types(parameters_without_null(generate()))
            app.openapi_schema = answers_carry_request_id(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
