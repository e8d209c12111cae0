"""The merged document lists what the gateway itself may answer on proxied operations."""

from __future__ import annotations

from typing import Any

from gateway.openapi import GATEWAY_ANSWERS, merge

ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


def _service_document() -> dict[str, Any]:
    envelope = {"content": {"application/json": {"schema": {"$ref": ENVELOPE_REF}}}}
    return {
        "openapi": "3.1.0",
        "paths": {
            "/api/tasks": {
                "get": {"responses": {"200": {"description": "ok"}}},
                "post": {
                    "responses": {
                        "201": {"description": "created"},
                        "429": {"description": "the service's own", **envelope},
                    }
                },
            }
        },
        "components": {"schemas": {"ErrorEnvelope": {"type": "object"}}},
    }


def test_proxied_operations_document_the_gateways_own_error_answers() -> None:
    merged = merge({"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]})

    listing = merged["paths"]["/api/tasks"]["get"]["responses"]
    for status in ("429", "502", "503", "504"):
        assert listing[status]["content"]["application/json"]["schema"]["$ref"] == ENVELOPE_REF
        assert listing[status]["description"] == GATEWAY_ANSWERS[status]


def test_a_service_documented_answer_keeps_its_text_and_adds_the_gateways() -> None:
    merged = merge({"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]})

    refusal = merged["paths"]["/api/tasks"]["post"]["responses"]["429"]
    assert refusal["description"].startswith("the service's own")
    assert GATEWAY_ANSWERS["429"] in refusal["description"]
    assert refusal["content"]["application/json"]["schema"]["$ref"] == ENVELOPE_REF


def test_the_gateways_rate_limit_documents_its_retry_after() -> None:
    merged = merge({"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]})

    for method in ("get", "post"):
        headers = merged["paths"]["/api/tasks"][method]["responses"]["429"]["headers"]
        assert headers["Retry-After"]["required"] is True


def test_the_gateways_own_routes_are_left_as_they_are() -> None:
    own = {"/api/health": {"get": {"responses": {"200": {"description": "ready"}}}}}
    merged = merge(
        {"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]}, extra_paths=own
    )

    assert set(merged["paths"]["/api/health"]["get"]["responses"]) == {"200"}


def test_the_gateways_own_document_gets_no_proxy_answers() -> None:
    own = {
        "openapi": "3.1.0",
        "paths": {"/api/health": {"get": {"responses": {"200": {"description": "ready"}}}}},
        "components": {"schemas": {"ErrorEnvelope": {"type": "object"}}},
    }
    merged = merge(
        {"todo": _service_document(), "gateway": own},
        prefixes={"todo": ["/api/tasks"], "gateway": ["/api/health"]},
        own="gateway",
    )

    assert set(merged["paths"]["/api/health"]["get"]["responses"]) == {"200"}
    assert "503" in merged["paths"]["/api/tasks"]["get"]["responses"]


def test_the_gateways_health_documents_its_503_as_the_envelope() -> None:
    from tests.security.routes import gateway_app

    document = gateway_app().openapi()
    refusal = document["paths"]["/api/health"]["get"]["responses"]["503"]
    assert refusal["content"]["application/json"]["schema"]["$ref"] == ENVELOPE_REF


def test_the_gateways_answers_document_their_request_id() -> None:
    merged = merge({"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]})

    for status in ("502", "503", "504"):
        response = merged["paths"]["/api/tasks"]["get"]["responses"][status]
        assert response["headers"]["X-Request-ID"]["required"] is True
