"""The gateway's merged OpenAPI document, fuzzed through the real processes (a Stack).

The same checks as the in-process fuzzing, through the gateway's hot path: authentication,
header handling, forwarding and streaming. After each operation every process must still be
running and must have logged no unhandled error.
"""

from __future__ import annotations

import httpx
from schemathesis import Case

from tests.e2e.stack import Stack
from tests.fuzz.conftest import FuzzUser, aim_at, fuzz_schema, merged_document, with_known_zones

DOCUMENT = merged_document()
gateway = fuzz_schema(with_known_zones(DOCUMENT))


def test_the_fuzzed_document_is_the_one_the_gateway_serves(stack: Stack) -> None:
    served = httpx.get(f"{stack.url('gateway')}/api/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@gateway.parametrize()
def test_gateway(case: Case, stack: Stack, gateway_user: FuzzUser, processes_survive: None) -> None:
    aim_at(case, "task_id", gateway_user.task_ids)
    aim_at(case, "conversation_id", gateway_user.conversation_ids)
    case.call_and_validate(base_url=stack.url("gateway"), headers=gateway_user.headers)
