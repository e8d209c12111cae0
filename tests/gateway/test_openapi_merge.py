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


def test_a_service_documented_answer_is_kept_as_the_service_wrote_it() -> None:
    merged = merge({"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]})

    assert merged["paths"]["/api/tasks"]["post"]["responses"]["429"]["description"] == (
        "the service's own"
    )


def test_the_gateways_own_routes_are_left_as_they_are() -> None:
    own = {"/api/health": {"get": {"responses": {"200": {"description": "ready"}}}}}
    merged = merge(
        {"todo": _service_document()}, prefixes={"todo": ["/api/tasks"]}, extra_paths=own
    )

    assert set(merged["paths"]["/api/health"]["get"]["responses"]) == {"200"}
