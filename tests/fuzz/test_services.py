"""Each service's own OpenAPI document, fuzzed in-process with a real user's token.

One test per operation (Schemathesis' examples, coverage and fuzzing phases, a bounded and
seeded number of requests each): no 5xx, every answer documented (status, content type,
headers, body schema), invalid requests refused and valid ones accepted.
"""

from __future__ import annotations

from fastapi import FastAPI
from schemathesis import Case

from tests.fuzz.conftest import FuzzUser, aim_at, fuzz_schema, service_documents, with_known_zones

DOCUMENTS = service_documents()
auth = fuzz_schema(with_known_zones(DOCUMENTS["auth"]))
todo = fuzz_schema(with_known_zones(DOCUMENTS["todo"]))
chat = fuzz_schema(with_known_zones(DOCUMENTS["chat"]))


@auth.parametrize()
def test_auth_service(case: Case, auth_app: FastAPI, auth_user: FuzzUser) -> None:
    case.call_and_validate(app=auth_app, headers=auth_user.headers)


@todo.parametrize()
def test_todo_service(case: Case, todo_app: FastAPI, service_user: FuzzUser) -> None:
    aim_at(case, "task_id", service_user.task_ids)
    case.call_and_validate(app=todo_app, headers=service_user.headers)


@chat.parametrize()
def test_chat_service(case: Case, chat_app: FastAPI, service_user: FuzzUser) -> None:
    aim_at(case, "conversation_id", service_user.conversation_ids)
    case.call_and_validate(app=chat_app, headers=service_user.headers)
