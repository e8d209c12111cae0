"""What each service's OpenAPI document promises about errors, checked on every operation.

Generated from the documents, so a new route that forgets to document its refusals fails
here at once (the fuzzers would find it too, more slowly): every error status an operation
lists is the envelope, every user route lists its 401 with the Bearer challenge, and no
parameter is documented as nullable (a parameter is absent or has a value).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tests.security.routes import TABLE, Route, service_apps

DOCUMENTS = {name: app.openapi() for name, app in service_apps().items()}
OPERATIONS = [
    (service, method.upper(), path, operation)
    for service, document in DOCUMENTS.items()
    for path, item in document["paths"].items()
    for method, operation in item.items()
]
IDS = [f"{service} {method} {path}" for service, method, path, _ in OPERATIONS]
ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_error_status_is_documented_as_the_envelope(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    for status, response in operation["responses"].items():
        if int(status) >= 400:
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            assert schema == ENVELOPE, f"{status}: {response}"
    assert "422" in operation["responses"]


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_user_route_documents_its_401(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    route = Route(service, method, path)
    guard = TABLE[route]
    if guard.public:
        return
    refusal = operation["responses"].get("401")
    assert refusal is not None
    assert "WWW-Authenticate" in refusal["headers"]


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_no_parameter_is_documented_as_nullable(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    for parameter in operation.get("parameters", []):
        options = parameter["schema"].get("anyOf", [])
        assert {"type": "null"} not in options, parameter


def test_a_patch_documents_null_only_where_it_clears_a_field() -> None:
    patch = DOCUMENTS["todo"]["components"]["schemas"]["TaskPatch"]["properties"]
    nullable = {name for name, field in patch.items() if {"type": "null"} in field.get("anyOf", [])}
    assert nullable == {"description", "tags", "due_at", "reminders", "time_zone"}


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_taking_a_json_body_documents_its_415(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    if "application/json" not in operation.get("requestBody", {}).get("content", {}):
        return
    refusal = operation["responses"].get("415")
    assert refusal is not None
    assert refusal["content"]["application/json"]["schema"] == ENVELOPE


PAGE = {"X-Total-Count", "Link"}
# The headers a client reads on a success, by operation and status: what the routes send.
SUCCESS_HEADERS = {
    ("auth", "POST", "/api/auth/register", "201"): {"Location"},
    ("todo", "GET", "/api/tasks", "200"): PAGE,
    ("todo", "POST", "/api/tasks", "201"): {"ETag", "Location"},
    ("todo", "GET", "/api/tasks/{task_id}", "200"): {"ETag"},
    ("todo", "GET", "/api/tasks/{task_id}", "304"): {"ETag"},
    ("todo", "PUT", "/api/tasks/{task_id}", "200"): {"ETag"},
    ("todo", "PATCH", "/api/tasks/{task_id}", "200"): {"ETag"},
    ("todo", "PATCH", "/api/tasks/{task_id}/complete", "200"): {"ETag"},
    ("todo", "GET", "/api/notifications", "200"): PAGE,
    ("todo", "POST", "/api/webhooks", "201"): {"Location"},
    ("todo", "GET", "/api/webhooks/{webhook_id}/deliveries", "200"): PAGE,
    ("chat", "GET", "/api/conversations", "200"): PAGE,
    ("chat", "GET", "/api/conversations/{conversation_id}", "200"): PAGE,
}


@pytest.mark.parametrize(
    ("service", "method", "path", "status"), SUCCESS_HEADERS, ids=map(" ".join, SUCCESS_HEADERS)
)
def test_the_headers_a_success_carries_are_documented(
    service: str, method: str, path: str, status: str
) -> None:
    response = DOCUMENTS[service]["paths"][path][method.lower()]["responses"][status]
    headers = response.get("headers", {})
    assert set(headers) >= SUCCESS_HEADERS[service, method, path, status], response
    assert all(header.get("description") for header in headers.values()), headers


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_documents_the_503_a_client_must_branch_on(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    # A lost database connection during a write is `outcome_unknown` (no Retry-After: read
    # it back, or retry with the same Idempotency-Key); any route may meet the database down.
    description = operation["responses"]["503"]["description"]
    assert "`database_unavailable`" in description
    assert "`outcome_unknown`" in description


def test_a_patch_documents_both_json_types_and_what_null_clears() -> None:
    # The route reads any JSON type (FastAPI parses `+json` too); RFC 7396's is the merge
    # patch's own, and generated clients send only what the document lists.
    operation = DOCUMENTS["todo"]["paths"]["/api/tasks/{task_id}"]["patch"]
    content = operation["requestBody"]["content"]
    patch = {"$ref": "#/components/schemas/TaskPatch"}
    assert content["application/merge-patch+json"]["schema"] == patch
    assert content["application/json"]["schema"] == patch
    for field in ("description", "due_at", "tags", "reminders", "time_zone"):
        assert field in operation["description"], field


# The codes a client branches on, by operation and status: what the routes raise.
ERROR_CODES = {
    ("auth", "POST", "/api/auth/register", "400"): {"weak_password"},
    ("auth", "POST", "/api/auth/register", "409"): {"email_taken"},
    ("auth", "POST", "/api/auth/login", "401"): {"invalid_credentials"},
    ("auth", "POST", "/api/auth/login", "429"): {"login_locked"},
    ("auth", "POST", "/api/auth/refresh", "401"): {"invalid_refresh_token", "refresh_token_reused"},
    ("auth", "POST", "/api/auth/password", "400"): {"wrong_password", "weak_password"},
    ("auth", "DELETE", "/api/auth/me", "403"): {"wrong_password"},
    ("todo", "POST", "/api/tasks", "409"): {"task_limit_reached", "idempotent_request_in_progress"},
    ("todo", "POST", "/api/tasks", "422"): {"idempotency_key_reused"},
    ("todo", "PUT", "/api/tasks/{task_id}", "409"): {"task_limit_reached"},
    ("todo", "PATCH", "/api/tasks/{task_id}", "409"): {"task_limit_reached"},
    ("todo", "PATCH", "/api/tasks/{task_id}", "422"): {"reminder_needs_due_date"},
    ("todo", "PATCH", "/api/tasks/{task_id}/complete", "409"): {"task_limit_reached"},
    ("todo", "POST", "/api/webhooks", "409"): {"webhook_limit_reached"},
    ("chat", "POST", "/api/chat", "404"): {"conversation_not_found"},
    ("chat", "POST", "/api/chat", "409"): {"idempotent_request_in_progress", "conversation_full"},
    ("chat", "POST", "/api/chat", "422"): {"idempotency_key_reused"},
}
NOT_FOUND = {
    "/api/tasks/": "task_not_found",
    "/api/notifications/": "notification_not_found",
    "/api/webhooks/": "webhook_not_found",
    "/api/conversations/": "conversation_not_found",
    "/api/chat": "conversation_not_found",
}


@pytest.mark.parametrize(
    ("service", "method", "path", "status"), ERROR_CODES, ids=map(" ".join, ERROR_CODES)
)
def test_the_codes_a_refusal_may_carry_are_named(
    service: str, method: str, path: str, status: str
) -> None:
    description = DOCUMENTS[service]["paths"][path][method.lower()]["responses"][status][
        "description"
    ]
    for code in ERROR_CODES[service, method, path, status]:
        assert f"`{code}`" in description, description


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_a_404_and_a_token_refusal_name_their_codes(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    if "404" in responses:
        codes = [code for prefix, code in NOT_FOUND.items() if path.startswith(prefix)]
        assert codes, path
        assert f"`{codes[0]}`" in responses["404"]["description"]
    if not TABLE[Route(service, method, path)].public:
        description = responses["401"]["description"]
        assert "`invalid_token`" in description
        # todo and chat watch deleted accounts (shared.tombstones); auth no longer finds one.
        assert ("`account_deleted`" in description) == (service != "auth"), description


def _timestamps(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: field
        for name, field in schema.get("properties", {}).items()
        if name.endswith("_at") or name == "at"
    }


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_every_timestamp_is_documented_as_a_date_time(service: str) -> None:
    # Rendered as text (UTC, microseconds, "Z") by Python or PostgreSQL, still an instant.
    schemas = DOCUMENTS[service]["components"]["schemas"]
    found = {
        f"{model}.{name}": field
        for model, schema in schemas.items()
        for name, field in _timestamps(schema).items()
    }
    assert found
    for where, field in found.items():
        options = field.get("anyOf", [field])
        dated = [option for option in options if option.get("format") == "date-time"]
        assert [option.get("type") for option in dated] == ["string"], (where, field)


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_answer_documents_its_request_id(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    # The request middleware (and the gateway, the HTTP server below the app) sends it on
    # every answer: the id a client quotes and the logs are searched by.
    for status, response in operation["responses"].items():
        header = response.get("headers", {}).get("X-Request-ID")
        assert header is not None, status
        assert header["required"] is True
        assert header["description"]


# FastAPI's summary when a route gives none: the handler's name in title case ("Read Me").
GENERATED_SUMMARIES = {
    (service, route.path_format, method): route.name.replace("_", " ").title()
    for service, app in service_apps().items()
    for route in iter_route_contexts(app.routes)
    for method in route.methods or ()
}
# Where a client starts: what each does is not obvious from its name alone.
DESCRIBED = ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]


@pytest.mark.parametrize(("service", "method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_has_a_written_summary(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    assert operation["summary"] != GENERATED_SUMMARIES[service, path, method]
    if path in DESCRIBED:
        assert operation.get("description"), operation
