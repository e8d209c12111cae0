"""HTTP routes of the todo service (``/api/tasks``). Thin: parse, call the service, shape.

Every task response carries ``ETag: "<version>"`` (a strong tag: ``If-Match`` compares
strongly, RFC 9110). ``Location`` and ``Link`` are relative references.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypedDict
from urllib.parse import parse_qsl

from fastapi import Depends, Header, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shared.clock import Clock
from shared.db import Database, Session
from shared.deps import CurrentPrincipal, DatabaseDep, SessionDep, row_id
from shared.errors import BadRequest, error_responses
from shared.openapi import location_header
from shared.pagination import PAGE_HEADERS
from todo_service import service
from todo_service.models import IDEMPOTENCY_KEY_MAX
from todo_service.routing import ClockDep, UserId, api_router, json_response, page_response
from todo_service.schemas import (
    CompleteIn,
    TaskCreate,
    TaskPatch,
    TaskPublic,
    TaskQuery,
    TaskReplace,
)
from todo_service.settings import TodoSettings

router = api_router("/api/tasks", "tasks")
# The statuses of the routes that name one task, and of those that also write it.
_NO_TASK = {404: "No such task, or not the current user's (`task_not_found`)"}
_ONE_TASK = error_responses(404, descriptions=_NO_TASK)
_WRITE_ONE_TASK = error_responses(404, 412, descriptions=_NO_TASK)
# A write that may complete a recurring task: its next occurrence is a new task.
_CHANGE_ONE_TASK = error_responses(
    404,
    409,
    412,
    descriptions={
        **_NO_TASK,
        409: "Completing a recurring task would pass the user's task limit (`task_limit_reached`)",
    },
)
# A patch may clear the due date that offset reminders kept.
_PATCH_ONE_TASK = {
    **_CHANGE_ONE_TASK,
    **error_responses(
        422,
        descriptions={
            422: "Invalid body, or reminders before the due date left without one "
            "(`reminder_needs_due_date`)"
        },
    ),
}
# What every answer carrying a task sends with it (``_task_response``).
ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": 'The task\'s `version` as a strong entity tag, `"<version>"`: send it '
        "back in `If-Match` to write only that version, or in `If-None-Match` for a 304 "
        "while it is current",
        "schema": {"type": "string"},
        "required": True,
    }
}
_TASK_ANSWER: dict[int | str, dict[str, Any]] = {200: {"headers": ETAG_HEADER}}
_PATCH_SCHEMA = "#/components/schemas/TaskPatch"


def _idempotency_ttl(request: Request) -> timedelta:
    settings: TodoSettings = request.app.state.settings
    return timedelta(hours=settings.idempotency_ttl_hours)


TaskId = Annotated[int, row_id("task")]
# What the entity-tag parser below accepts, published (not enforced: a malformed header is
# the parser's 400 ``invalid_if_match``, not a generic 422).
_ETAG = r'(W/)?"[\x21\x23-\x2b\x2d-\x7e]*"'
ENTITY_TAGS_PATTERN = rf"^[ \t]*(\*|{_ETAG}([ \t]*,[ \t]*{_ETAG})*)[ \t]*$"
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='ETags (`"<version>"`) the write is conditional on; stale: 412',
        json_schema_extra={"pattern": ENTITY_TAGS_PATTERN},
    ),
]

# One entity tag of an If-Match / If-None-Match list: "opaque" or W/"opaque".
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*')
# A version as its ETag writes it: no leading zero, so "01" is another tag (strong comparison).
_VERSION = re.compile(r"0|[1-9][0-9]{0,17}")


def etag(task: TaskPublic) -> str:
    return f'"{task.version}"'


def _entity_tags(value: str, header: str) -> list[tuple[bool, str]]:
    tags = []
    for part in value.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            raise BadRequest(
                f"{header} must be * or a list of entity tags",
                code="invalid_" + header.lower().replace("-", "_"),
            )
        tags.append((match.group(1) is not None, match.group(2)))
    return tags


def parse_if_match(value: str | None) -> Collection[int] | None:
    """The versions an ``If-Match`` accepts; None when there is no precondition (or ``*``:
    the task exists, which the lookup checks anyway). Weak tags never match (RFC 9110)."""
    if value is None or value.strip() == "*":
        return None
    return {
        int(opaque)
        for weak, opaque in _entity_tags(value, "If-Match")
        if not weak and _VERSION.fullmatch(opaque)
    }


def _not_modified(value: str | None, task: TaskPublic) -> bool:
    """``If-None-Match`` uses the weak comparison: any tag naming the version matches."""
    if value is None:
        return False
    if value.strip() == "*":
        return True
    return any(opaque == str(task.version) for _, opaque in _entity_tags(value, "If-None-Match"))


def _task_response(task: TaskPublic, *, status_code: int = 200, location: bool = False) -> Response:
    headers = {"ETag": etag(task)}
    if location:
        headers["Location"] = f"/api/tasks/{task.id}"
    return json_response(task.model_dump_json(), status_code=status_code, headers=headers)


_QUERY_FIELDS = frozenset(TaskQuery.model_fields)


def parse_task_query(raw: bytes) -> TaskQuery:
    """The list's query parameters, validated in one pass (FastAPI's per-parameter model
    handling costs more than the page's SQL). Unknown parameters are ignored; a repeated
    one counts once, its last value (``tag`` is the list of all of them)."""
    # Starlette's QueryParams, without its multi-dict: the same decoding, the same values.
    data: dict[str, Any] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name == "tag":
            data.setdefault("tag", []).append(value)
        elif name in _QUERY_FIELDS:
            data[name] = value
    try:
        return TaskQuery.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        ) from exc


async def _task_query(request: Request) -> TaskQuery:
    return parse_task_query(request.scope["query_string"])


TaskQueryDep = Annotated[TaskQuery, Depends(_task_query)]


def _query_parameters() -> list[dict[str, Any]]:
    """TaskQuery as OpenAPI query parameters, its enums inlined."""
    schema = TaskQuery.model_json_schema()
    definitions = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": field.get("description", ""),
            "schema": inline(field),
        }
        for name, field in schema["properties"].items()
    ]


@router.get(
    "",
    response_model=list[TaskPublic],
    responses={
        200: {"headers": PAGE_HEADERS},
        **error_responses(
            400, descriptions={400: "A cursor this listing did not issue, or a malformed header"}
        ),
    },
    # The query is parsed by one dependency (see parse_task_query): its parameters are
    # documented from TaskQuery here.
    openapi_extra={"parameters": _query_parameters()},
    summary="List the user's tasks",
    description=(
        "A JSON array; `X-Total-Count` is the total for the filters, and "
        '`Link: <...>; rel="next"` the next page (absent on the last).'
    ),
)
async def list_tasks(
    request: Request, principal: CurrentPrincipal, query: TaskQueryDep
) -> Response:
    # The hottest route keeps its dependencies to the two that can refuse the request (each
    # costs about as much as a tenth of the page); the rest is read from the app's state. A
    # page is one read-only statement: it needs the database, not a unit of work.
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    page = await service.list_tasks_json(db, principal.sub, query=query, clock=clock)
    return page_response(request, page)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses={
        201: {
            "headers": {
                **ETAG_HEADER,
                **location_header("The task's URL, `/api/tasks/{id}`"),
            }
        },
        **error_responses(
            409,
            422,
            descriptions={
                409: "A create with this Idempotency-Key is still in progress "
                "(`idempotent_request_in_progress`), or the task would pass the user's task "
                "limit (`task_limit_reached`)",
                422: "Invalid body, or an Idempotency-Key reused with another body "
                "(`idempotency_key_reused`)",
            },
        ),
    },
    summary="Create a task",
)
async def create_task(
    body: TaskCreate,
    request: Request,
    db: DatabaseDep,
    user_id: UserId,
    clock: ClockDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=rf"^[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}$",
            description="Repeat a create safely: the same key and body within 24 h replays "
            "the first answer",
        ),
    ] = None,
) -> Response:
    task = await service.add_task(
        db,
        user_id,
        data=body,
        idempotency_key=idempotency_key,
        idempotency_ttl=_idempotency_ttl(request),
        clock=clock,
    )
    return _task_response(task, status_code=status.HTTP_201_CREATED, location=True)


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    responses={
        **_TASK_ANSWER,
        **_ONE_TASK,
        304: {
            "description": "`If-None-Match` names the current version: nothing sent",
            "headers": ETAG_HEADER,
        },
    },
    summary="One task",
)
async def read_task(
    task_id: TaskId,
    db: DatabaseDep,
    user_id: UserId,
    if_none_match: Annotated[
        str | None,
        Header(alias="If-None-Match", json_schema_extra={"pattern": ENTITY_TAGS_PATTERN}),
    ] = None,
) -> Response:
    task = await service.get_task(db, user_id, task_id=task_id)
    if _not_modified(if_none_match, task):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task)})
    return _task_response(task)


class _Target(TypedDict):
    """The task a write names, the versions it accepts and its clock, as the service's write
    functions take them."""

    task_id: int
    if_match: Collection[int] | None
    clock: Clock


@dataclass(frozen=True)
class TaskWrite:
    """A write to one of the user's tasks in the request's unit of work, conditional on the
    request's ``If-Match`` header (none: the last write wins)."""

    session: Session
    user_id: str
    task_id: int
    clock: Clock
    if_match: str | None

    @property
    def target(self) -> _Target:
        """Read by the route once its body is valid: a malformed ``If-Match`` is a 400 only
        for a request that is otherwise well formed."""
        return _Target(
            task_id=self.task_id, if_match=parse_if_match(self.if_match), clock=self.clock
        )


async def _task_write(
    task_id: TaskId,
    session: SessionDep,
    user_id: UserId,
    clock: ClockDep,
    if_match: IfMatchHeader = None,
) -> TaskWrite:
    return TaskWrite(session, user_id, task_id, clock, if_match)


TaskWriteDep = Annotated[TaskWrite, Depends(_task_write)]


@router.put(
    "/{task_id}",
    response_model=TaskPublic,
    responses={**_TASK_ANSWER, **_CHANGE_ONE_TASK},
    summary="Replace a task",
)
async def replace_task(body: TaskReplace, write: TaskWriteDep) -> Response:
    task = await service.update_task(write.session, write.user_id, changes=body, **write.target)
    return _task_response(task)


@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses={**_TASK_ANSWER, **_PATCH_ONE_TASK},
    summary="Change some fields (JSON merge patch)",
    description="`application/merge-patch+json` or `application/json`: an absent field is "
    "unchanged; `null` clears description or due_at, empties tags or reminders, and sets "
    "time_zone back to UTC.",
    # FastAPI reads any JSON type (`+json` too) but documents only application/json.
    openapi_extra={
        "requestBody": {
            "content": {"application/merge-patch+json": {"schema": {"$ref": _PATCH_SCHEMA}}}
        }
    },
)
async def patch_task(body: TaskPatch, write: TaskWriteDep) -> Response:
    task = await service.update_task(write.session, write.user_id, changes=body, **write.target)
    return _task_response(task)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses={**_TASK_ANSWER, **_CHANGE_ONE_TASK},
    summary='Toggle completion, or set it with {"completed": true|false}',
)
async def complete_task(write: TaskWriteDep, body: CompleteIn | None = None) -> Response:
    completed = body.completed if body is not None else None
    task = await service.set_completed(
        write.session, write.user_id, completed=completed, **write.target
    )
    return _task_response(task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_WRITE_ONE_TASK,
    summary="Delete a task",
)
async def delete_task(write: TaskWriteDep) -> Response:
    await service.delete_task(write.session, write.user_id, **write.target)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
