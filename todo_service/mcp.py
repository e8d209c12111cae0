"""The todo service's MCP server: task operations as tools for agents, at ``/api/mcp``.

Built with the official MCP SDK (2.x ``MCPServer``), streamable HTTP, stateless with JSON
responses: no session lives in this process, so any replica answers any request. Every request
carries the user's bearer JWT, checked by the SDK's ``token_verifier`` hook with the app's own
``shared.tokens.TokenVerifier``; each tool reads the user from the SDK's auth context (the
token's subject), never from its arguments. A ``user_id`` argument is accepted only for
compatibility with the Phase III tool spec, and must then be the token's subject.

The tools run the same service functions as the REST routes, each call in one unit of work:
same validation, same ownership checks (another user's task is "not found"), same recurrence.

Tool errors are the tool's answer, so an agent can read and explain them; the HTTP status
stays 200. Each one is ``isError`` with a plain message as its text (such as "Task 7 not
found") and, beside it, the same message with a machine-readable code as structured content:
``{"error": {"code": "not_found", "message": "Task 7 not found", "task_ids": [7]}}``. The
codes are the ``ErrorCode`` values below, documented in docs/todo.md.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import UnionType
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    CallToolResult,
    InputRequiredResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError
from pydantic_core import ErrorDetails
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.clock import Clock
from shared.db import Database, Session, is_transaction_conflict
from shared.deps import bearer_scheme, get_principal
from shared.errors import (
    AppError,
    BadRequest,
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    TransactionConflict,
    ValidationFailed,
    database_refusal,
)
from shared.tokens import InvalidToken, TokenVerifier
from todo_service import notifications, service
from todo_service.models import (
    DESCRIPTION_MAX,
    REMINDER_OFFSET_MAX_MINUTES,
    REMINDERS_MAX,
    SNOOZE_MAX_MINUTES,
    TITLE_MAX,
)
from todo_service.schemas import (
    JSON_INTEGER,
    PAGE_MAX,
    Description,
    NotificationPublic,
    NotificationQuery,
    Reminders,
    Tag,
    Tags,
    TaskCreate,
    TaskPatch,
    TaskPublic,
    TaskQuery,
    Title,
)
from todo_service.settings import TodoSettings

logger = logging.getLogger(__name__)

PATH = "/api/mcp"
LIST_LIMIT = PAGE_MAX
# The most ids one bulk call takes: a confirmed bulk action is one call, and one transaction
# holds at most this many row locks.
BULK_MAX = 100

Status = Literal["all", "pending", "completed"]
PriorityName = Literal["low", "medium", "high"]
RecurrenceName = Literal["none", "daily", "weekly", "monthly"]
SortName = Literal["created", "updated", "due", "priority", "title"]  # schemas.SortField
Clearable = Literal["description", "due_at", "reminders", "time_zone"]
NOTIFICATIONS_LIMIT = 50

TaskId = Annotated[int, Field(description="The task's id, as list_tasks shows it"), JSON_INTEGER]
UserId = Annotated[
    str | None,
    Field(description="Optional, for older clients: must be the authenticated user if given"),
]
Timestamp = Annotated[
    str | None,
    Field(description="ISO 8601 date and time with a UTC offset, e.g. 2026-12-03T09:00:00+01:00"),
]
TimeZone = Annotated[
    str | None,
    Field(
        description="IANA time zone, e.g. Europe/Paris: a recurring task's next occurrence "
        "keeps its local time of day there (default UTC)",
    ),
]
CompletedFlag = Annotated[
    StrictBool,
    Field(
        description="true (the default): mark as done. false: reopen, i.e. mark as not done "
        "(undo a completion)"
    ),
]


def _distinct(task_ids: list[int]) -> list[int]:
    repeated = sorted(task_id for task_id, n in Counter(task_ids).items() if n > 1)
    if repeated:
        raise ValueError(f"each id at most once; repeated: {', '.join(map(str, repeated))}")
    return task_ids


TaskIds = Annotated[
    list[Annotated[int, JSON_INTEGER]],
    Field(
        min_length=1,
        max_length=BULK_MAX,
        description=f"The tasks' ids, as list_tasks shows them: 1 to {BULK_MAX} distinct ids",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_distinct),
]
ReminderList = Annotated[
    Reminders | None,
    Field(
        description=f"At most {REMINDERS_MAX} reminders, each exactly one of "
        '{"at": "<ISO 8601 with an offset>"} or {"before_due_minutes": '
        f"<0-{REMINDER_OFFSET_MAX_MINUTES}>}} (needs a due date)",
    ),
]
NotificationId = Annotated[
    int,
    Field(description="The notification's id, as list_notifications shows it"),
    JSON_INTEGER,
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Optional: repeat this add safely. The same key with the same arguments "
        "within the key's lifetime answers the first call's task instead of adding another "
        "(as the Idempotency-Key header of POST /api/tasks)",
        pattern=r"^[\x21-\x7e]{1,255}$",
    ),
]


class TaskResult(BaseModel):
    """What add, complete, update and delete answer (the Phase III shape)."""

    task_id: int
    status: str
    title: str


class CompletionResult(TaskResult):
    """What complete_task answers: the Phase III shape plus the task's new state."""

    status: Literal["completed", "reopened"]
    completed: bool
    next_occurrence_id: int | None = Field(
        description="A recurring task's next occurrence, created when it was first completed "
        "(reopening keeps it; completing again creates no second one)"
    )


class CompletionResults(BaseModel):
    """What complete_tasks answers: one result per id, in the order given."""

    count: int
    results: list[CompletionResult]


class DeletionResults(BaseModel):
    """What delete_tasks answers: one result per id, in the order given."""

    count: int
    results: list[TaskResult]


class TaskSummary(BaseModel):
    """One task in a list_tasks answer."""

    id: int
    title: str
    completed: bool
    description: str | None
    priority: str
    tags: list[str]
    due_at: str | None
    recurrence: str
    time_zone: str | None
    completed_at: str | None


class TaskList(BaseModel):
    """What list_tasks answers as structured content. The list itself (``result``, also the
    whole text content) is the Phase III shape; ``total`` is beside it."""

    result: list[TaskSummary]
    total: int = Field(
        description="How many tasks match the filters; more than the list holds when the "
        "limit cut it"
    )


# The keys of a task (as the service renders it) that a list item carries.
_SUMMARY_FIELDS = tuple(TaskSummary.model_fields)


class NotificationList(BaseModel):
    """What list_notifications answers as structured content: the list and the total."""

    result: list[NotificationPublic]
    total: int = Field(description="How many match (unread ones with unread_only)")


@dataclass(frozen=True)
class _Listing:
    items: list[dict[str, Any]]
    total: int


Answer = BaseModel | _Listing

ErrorCode = Literal[
    "not_found",  # an id that names no task (or notification) of the user's
    "invalid",  # arguments that fail validation; the message names the field
    "too_many",  # more ids than a bulk tool takes
    "stale",  # the task changed since the version the caller named
    "conflict",  # an idempotency key reused with other arguments, or still in use
    "forbidden",  # a user_id argument that is not the authenticated user
    "unauthenticated",  # no user in the token
    "outcome_unknown",  # the connection was lost during COMMIT: it may have been saved
    "unavailable",  # the database is unavailable, or aborted the call for a concurrent one:
    # nothing was saved, retry later
]


class ToolRefused(Exception):
    """A tool's own refusal: becomes an ``isError`` result with this code and message."""

    def __init__(self, message: str, *, code: ErrorCode = "invalid") -> None:
        super().__init__(message)
        self.code: ErrorCode = code


class BearerVerifier:
    """The SDK's ``TokenVerifier`` protocol over the app's own verifier (built at startup)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    async def verify_token(self, token: str) -> AccessToken | None:
        verifier: TokenVerifier = self._app.state.verifier
        try:
            principal = await verifier.verify(token)
        except InvalidToken:
            return None
        return AccessToken(
            token=token,
            client_id=str(principal.claims.get("azp") or principal.sub),
            scopes=[],
            # None: the app's verifier has judged the expiry, with the leeway every verifier of
            # the platform gives it and on the app's clock; the SDK's own check (no leeway, the
            # wall clock) would refuse a token the REST routes take, in OAuth's format.
            expires_at=None,
            subject=principal.sub,
            claims={"iss": principal.issuer},
        )


def mount_mcp(app: FastAPI, settings: TodoSettings) -> MCPServer:
    """Serve the MCP endpoint at ``/api/mcp`` of ``app`` and run its manager with the app."""
    server = build_server(app, settings)
    endpoint = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        max_request_body_size=settings.max_body_bytes,
        # DNS-rebinding protection checks Host/Origin, which behind the gateway are the
        # gateway's and the web app's. It guards servers that trust ambient credentials; this
        # one demands a bearer token on every request, which a rebinding page cannot supply.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    # One exact route (not a mount): the app's middleware, request id and error envelope stay
    # in front of it, and no other path falls into the MCP app. POST only: a stateless JSON
    # server has no use for the transport's GET (a server-to-client event stream, which the
    # SDK would hold open with pings, outside every bound on the platform's streams) or its
    # DELETE (ending a session): both are 405.
    app.router.routes.append(Route(PATH, endpoint=_PlatformRefusals(endpoint), methods=["POST"]))

    app_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
        async with app_lifespan(running) as state, _in_own_task(server.session_manager):
            yield state

    app.router.lifespan_context = lifespan
    return server


class _PlatformRefusals:
    """A missing or bad token gets the platform's 401 (the error envelope, as from every other
    route and from the gateway) before the SDK's own check would answer in OAuth's format.

    A class, not a function: Starlette serves a plain function as a request handler, an
    object as the ASGI app it is.
    """

    def __init__(self, endpoint: ASGIApp) -> None:
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        # A refusal (InvalidToken) goes to the app's error handler like any route's.
        await get_principal(request, await bearer_scheme(request))
        await self._endpoint(scope, receive, send)


@asynccontextmanager
async def _in_own_task(manager: StreamableHTTPSessionManager) -> AsyncIterator[None]:
    """Run the session manager (an anyio task group) in a task of its own.

    A cancel scope must be left by the task that entered it, but an app's startup and
    shutdown may run in different tasks (test runners do exactly that), so the manager gets
    one task for its whole life and the lifespan only starts and stops it.
    """
    started = asyncio.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with manager.run():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run(), name="mcp-session-manager")
    ready = asyncio.create_task(started.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # it failed to start: raise why
        raise RuntimeError("the MCP session manager stopped while starting")
    try:
        yield
    finally:
        stop.set()
        await task


class _TodoServer(MCPServer[Any]):
    """``MCPServer`` whose argument refusals carry an error code like every other tool error.

    The SDK validates a call's arguments against the tool's signature before the tool runs
    and answers a failure with text only; here it gets the code ``invalid`` (``too_many`` for
    a bulk tool's overlong id list) and the same message format as the tools' own checks.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                return _error("invalid", str(exc))  # an unknown tool
            problems = exc.__cause__.errors()
            logger.info(
                "Tool %r rejected arguments: %r",
                name,
                sorted({".".join(str(part) for part in e["loc"]) for e in problems}),
            )
            if any(e["type"] == "too_long" and e["loc"] == ("task_ids",) for e in problems):
                return _error(
                    "too_many", f"At most {BULK_MAX} task ids in one call; split the list"
                )
            return _error("invalid", _invalid_arguments(problems))


def build_server(app: FastAPI, settings: TodoSettings) -> MCPServer[Any]:
    jwks = urlsplit(settings.auth_jwks_url)
    tools = _Tools(app)
    server = _TodoServer(
        "todo",
        title="Todo tasks",
        instructions=(
            "Manage the authenticated user's tasks. Find a task's id with list_tasks, and "
            "read one task by its id with get_task; dates are ISO 8601 with an offset. A "
            "failed call answers isError with a message and structured content "
            '{"error": {"code", "message"}}; the code is '
            "not_found, invalid, too_many, stale, conflict, forbidden, unauthenticated, "
            "outcome_unknown or unavailable."
        ),
        token_verifier=BearerVerifier(app),
        # Metadata the SDK requires; the token's issuer and audience are checked by our
        # verifier, not by a resource indicator.
        auth=AuthSettings(
            issuer_url=f"{jwks.scheme}://{jwks.netloc}",
            resource_server_url=None,
        ),
        # The tool listing is the same for every user: clients may cache and share it.
        cache_hints={"tools/list": CacheHint(ttl_ms=300_000, scope="public")},
        # No ``subscriptions/listen``: the tool list never changes while the server runs, and
        # the SDK would hold each listen POST open as an event stream with pings, outside
        # every bound on the platform's streams (as the transport's GET, refused below).
        subscriptions=False,
        tools=[tool.model_copy(update={"fn": getattr(tools, tool.name)}) for tool in _tool_specs()],
    )
    return server


@functools.cache
def _tool_specs() -> tuple[Tool, ...]:
    """The tools' names, descriptions, annotations and argument schemas, made once per process
    from ``_Tools``' signatures (pydantic builds a model and a JSON schema for each, ~4 ms a
    tool); each server copies them with its own app's methods."""
    blank = _Tools(FastAPI())  # only the methods' signatures and docstrings are read
    write = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
    read = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
    completion = ToolAnnotations(read_only_hint=False, idempotent_hint=True)
    deletion = ToolAnnotations(read_only_hint=False, destructive_hint=True)
    return tuple(
        # The docstring is what an agent's model reads: without the code's indentation.
        _closed(
            Tool.from_function(
                tool, name=tool.__name__, description=inspect.getdoc(tool), annotations=hints
            )
        )
        for tool, hints in (
            (blank.add_task, write),
            (blank.list_tasks, read),
            (blank.get_task, read),
            (blank.complete_task, completion),
            (blank.delete_task, deletion),
            (blank.update_task, write),
            (blank.complete_tasks, completion),
            (blank.delete_tasks, deletion),
            (blank.list_notifications, read),
            (blank.snooze_notification, write),
            (blank.dismiss_notification, completion),
        )
    )


def _closed(tool: Tool) -> Tool:
    """``tool`` refusing arguments it does not name, as the REST bodies refuse unknown fields
    (a misspelt ``descripton`` is the error ``invalid``, not a task without its description);
    its schema says so with ``additionalProperties: false``. Text arguments stay text
    (``_Arguments``)."""
    meta = tool.fn_metadata
    base = meta.arg_model
    closed = type(base.__name__, (base,), {"model_config": ConfigDict(extra="forbid")})
    model = cast("type[ArgModelBase]", closed)
    arguments = _Arguments(
        arg_model=model,
        output_schema=meta.output_schema,
        output_model=meta.output_model,
        wrap_output=meta.wrap_output,
    )
    return tool.model_copy(
        update={"fn_metadata": arguments, "parameters": model.model_json_schema(by_alias=True)}
    )


class _Arguments(FuncMetadata):
    """The SDK's argument handling, which reads a string as JSON where a parameter is not
    plainly ``str`` (clients that send a list as a JSON string), except for parameters that
    take text: a description '["milk", "eggs"]' is that text, not a list refused as one."""

    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = self.arg_model.model_fields
        texts = {name for name in data if name in fields and _takes_text(fields[name].annotation)}
        others = super().pre_parse_json({k: v for k, v in data.items() if k not in texts})
        return {name: data[name] if name in texts else others[name] for name in data}


def _takes_text(annotation: Any) -> bool:
    """Whether a parameter of this type takes a string as a string (``str``, an optional or
    constrained one, or a choice of words)."""
    if get_origin(annotation) in (Annotated, Union, UnionType):
        return any(_takes_text(inner) for inner in get_args(annotation))
    if get_origin(annotation) is Literal:
        return all(isinstance(word, str) for word in get_args(annotation))
    return annotation is str


class _Tools:
    """The tools. Each reads the user from the token and runs one unit of work."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    async def add_task(
        self,
        title: Annotated[Title, Field(description=f"What to do, 1-{TITLE_MAX} characters")],
        description: Annotated[
            Description | None, Field(description=f"Details, up to {DESCRIPTION_MAX} characters")
        ] = None,
        priority: PriorityName | None = None,
        tags: Annotated[Tags | None, Field(description="Labels such as work")] = None,
        due_at: Timestamp = None,
        recurrence: RecurrenceName | None = None,
        time_zone: TimeZone = None,
        reminders: ReminderList = None,
        user_id: UserId = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, TaskResult]:
        """Add one task for the user, optionally with reminders (a time, or minutes before
        the due date). A recurring task repeats at the same local time in `time_zone`.
        Returns {task_id, status: "created", title}."""
        fields = {
            "title": title,
            "description": description,
            **_given(
                priority=priority,
                tags=tags,
                due_at=due_at,
                recurrence=recurrence,
                time_zone=time_zone,
                reminders=reminders,
            ),
        }

        async def run(session: AsyncSession, user: str) -> TaskResult:
            data = _validated(TaskCreate, fields)
            task = await service.add_task(
                session,
                user,
                data=data,
                idempotency_key=idempotency_key,
                idempotency_ttl=self._idempotency_ttl,
                clock=self._clock,
            )
            return _result(task, "created")

        return await self._run(user_id, run)

    async def list_tasks(
        self,
        status: Status = "all",
        priority: PriorityName | None = None,
        tag: Annotated[Tag | None, Field(description="Only tasks with this tag")] = None,
        q: Annotated[str | None, Field(description="Words in the title or description")] = None,
        due_before: Annotated[
            str | None,
            Field(
                description="Only tasks due before this time (exclusive), ISO 8601 with an offset"
            ),
        ] = None,
        due_after: Annotated[
            str | None,
            Field(description="Only tasks due at or after this time, ISO 8601 with an offset"),
        ] = None,
        completed_after: Annotated[
            str | None,
            Field(
                description="Only tasks completed at or after this time, ISO 8601 with an "
                "offset (e.g. the start of today or of this week): what was done since then"
            ),
        ] = None,
        completed_before: Annotated[
            str | None,
            Field(
                description="Only tasks completed before this time (exclusive), ISO 8601 "
                "with an offset"
            ),
        ] = None,
        limit: Annotated[
            int,
            Field(
                ge=1,
                le=LIST_LIMIT,
                description=f"At most this many tasks in the list (1-{LIST_LIMIT}); the total "
                "is counted anyway, so limit 1 answers 'how many' cheaply",
            ),
            JSON_INTEGER,
        ] = LIST_LIMIT,
        sort: Annotated[
            SortName,
            Field(
                description="created: newest first (the default); due: soonest due first, "
                "tasks without a due date last; priority: most urgent first; updated: most "
                "recently changed first; title: A to Z"
            ),
        ] = "created",
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskList]:
        """List the user's tasks, newest first unless `sort` says otherwise, optionally
        filtered (every filter narrows). Returns the matching tasks as a JSON list (at most
        `limit` of them) and, in the structured result {result, total}, `total`: how many
        tasks match in all. For "what is due this week" sort by due; for "what did I finish
        today/this week" use completed_after; for "how many" read `total`."""
        fields: dict[str, Any] = {
            "status": status,
            "limit": limit,
            "sort": sort,
            **_given(
                priority=priority,
                q=q,
                due_before=due_before,
                due_after=due_after,
                completed_after=completed_after,
                completed_before=completed_before,
            ),
        }
        if tag is not None:
            fields["tag"] = [tag]

        async def run(session: AsyncSession, user: str) -> _Listing:
            # A page is one statement of its own: the unit of work's session stays unused.
            query = _validated(TaskQuery, fields)
            page = await service.list_tasks_json(self._db, user, query=query, clock=self._clock)
            # The service's rendering (REST's bytes), cut to the summary's keys: no model.
            items = [
                {name: task[name] for name in _SUMMARY_FIELDS}
                for task in json.loads(page.items_json)
            ]
            return _Listing(items, page.total)

        return await self._run(user_id, run)

    async def get_task(
        self, task_id: TaskId, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskSummary]:
        """Read one of the user's tasks by its id, however old: list_tasks answers only the
        newest tasks (at most `limit`), so a task the user names by its number is read here.
        Returns the task as list_tasks lists it: {id, title, completed, description,
        priority, tags, due_at, recurrence, time_zone, completed_at}."""

        async def run(session: AsyncSession, user: str) -> TaskSummary:
            # One statement of its own, as a page is: the unit of work's session stays unused.
            task = await service.get_task(self._db, user, task_id=task_id)
            return _summary(task)

        return await self._run(user_id, run, task_id=task_id)

    async def complete_task(
        self, task_id: TaskId, completed: CompletedFlag = True, user_id: UserId = None
    ) -> Annotated[CallToolResult, CompletionResult]:
        """Mark a task as done, or with completed=false reopen it (mark it not done). Sets,
        never toggles: completing a done task keeps it done. Completing a recurring task
        creates its next occurrence (`next_occurrence_id`); reopening keeps that occurrence.
        Returns {task_id, status: "completed" | "reopened", title, completed,
        next_occurrence_id}."""

        async def run(session: AsyncSession, user: str) -> CompletionResult:
            task = await service.set_completed(
                session, user, task_id=task_id, completed=completed, clock=self._clock
            )
            return _completion(task)

        return await self._run(user_id, run, task_id=task_id)

    async def complete_tasks(
        self, task_ids: TaskIds, completed: CompletedFlag = True, user_id: UserId = None
    ) -> Annotated[CallToolResult, CompletionResults]:
        """Mark several tasks as done (or, with completed=false, reopen them) in one step,
        all or none: if any id is not one of the user's tasks, nothing changes and the error
        (code not_found) lists those ids. Use it for a bulk action the user has confirmed.
        Returns {count, results: [{task_id, status, title, completed, next_occurrence_id}]}
        in the order of task_ids."""

        async def run(session: AsyncSession, user: str) -> CompletionResults:
            tasks = await service.set_completed_many(
                session, user, task_ids=task_ids, completed=completed, clock=self._clock
            )
            return CompletionResults(count=len(tasks), results=[_completion(t) for t in tasks])

        return await self._run(user_id, run)

    async def delete_tasks(
        self, task_ids: TaskIds, user_id: UserId = None
    ) -> Annotated[CallToolResult, DeletionResults]:
        """Delete several tasks for good in one step, all or none: if any id is not one of
        the user's tasks, nothing is deleted and the error (code not_found) lists those ids.
        Use it for a bulk action the user has confirmed. Returns {count, results: [{task_id,
        status: "deleted", title}]} in the order of task_ids."""

        async def run(session: AsyncSession, user: str) -> DeletionResults:
            tasks = await service.delete_many(session, user, task_ids=task_ids, clock=self._clock)
            return DeletionResults(count=len(tasks), results=[_result(t, "deleted") for t in tasks])

        return await self._run(user_id, run)

    async def delete_task(
        self, task_id: TaskId, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskResult]:
        """Delete one task for good. Returns {task_id, status: "deleted", title}."""

        async def run(session: AsyncSession, user: str) -> TaskResult:
            task = await service.delete_task(session, user, task_id=task_id, clock=self._clock)
            return _result(task, "deleted")

        return await self._run(user_id, run, task_id=task_id)

    async def update_task(
        self,
        task_id: TaskId,
        title: Annotated[
            Title | None, Field(description=f"New title, 1-{TITLE_MAX} characters")
        ] = None,
        description: Annotated[
            Description | None, Field(description=f"New details, up to {DESCRIPTION_MAX}")
        ] = None,
        priority: PriorityName | None = None,
        tags: Annotated[Tags | None, Field(description="The new full set of tags")] = None,
        due_at: Timestamp = None,
        time_zone: TimeZone = None,
        reminders: ReminderList = None,
        clear: Annotated[
            list[Clearable] | None,
            Field(description='Fields to remove from the task, e.g. ["due_at"]'),
        ] = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskResult]:
        """Change a task's title, description, priority, tags, due date, time zone or
        reminders (only those given; `reminders` replaces the whole list), or remove its
        description, due date, time zone (back to UTC) or reminders (`clear`). To mark it
        done or not done use complete_task. Returns {task_id, status: "updated", title}."""
        fields = _given(
            title=title,
            description=description,
            priority=priority,
            tags=tags,
            due_at=due_at,
            time_zone=time_zone,
            reminders=reminders,
        )
        cleared = set(clear or ())

        async def run(session: AsyncSession, user: str) -> TaskResult:
            if cleared & fields.keys():
                raise ToolRefused(
                    f"Both set and cleared: {', '.join(sorted(cleared & fields.keys()))}"
                )
            if not fields and not cleared:
                raise ToolRefused(
                    "Nothing to update: give a title, description, priority, tags, due_at,"
                    " time_zone or reminders, or fields to clear"
                )
            # A null in a merge patch removes the field, exactly as PATCH /api/tasks/{id} does.
            fields.update(dict.fromkeys(cleared))
            changes = _validated(TaskPatch, fields)
            task = await service.update_task(
                session, user, task_id=task_id, changes=changes, clock=self._clock
            )
            return _result(task, "updated")

        return await self._run(user_id, run, task_id=task_id)

    async def list_notifications(
        self,
        unread_only: Annotated[
            StrictBool, Field(description="true (the default): only those not yet read")
        ] = True,
        limit: Annotated[
            int,
            Field(
                ge=1,
                le=NOTIFICATIONS_LIMIT,
                description=f"At most this many (1-{NOTIFICATIONS_LIMIT})",
            ),
            JSON_INTEGER,
        ] = 20,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, NotificationList]:
        """The user's notifications (reminders that fell due), newest first: each names its
        task (task_id, task_title), when it was due and read. Returns {result, total}."""

        async def run(session: AsyncSession, user: str) -> _Listing:
            # A page is one statement of its own, rendered by PostgreSQL as REST sends it.
            query = NotificationQuery(limit=limit, unread=unread_only)
            page = await notifications.list_notifications_json(self._db, user, query=query)
            return _Listing(json.loads(page.items_json), page.total)

        return await self._run(user_id, run)

    async def snooze_notification(
        self,
        notification_id: NotificationId,
        minutes: Annotated[
            int,
            Field(
                ge=1,
                le=SNOOZE_MAX_MINUTES,
                description=f"Remind again in this many minutes (1-{SNOOZE_MAX_MINUTES})",
            ),
            JSON_INTEGER,
        ],
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, NotificationPublic]:
        """Snooze a notification: mark it read and remind about its task again in `minutes`.
        Returns the notification."""

        async def run(session: AsyncSession, user: str) -> NotificationPublic:
            assert isinstance(session, Session)
            body = await notifications.snooze(
                session, user, notification_id=notification_id, minutes=minutes, clock=self._clock
            )
            return notifications.parse(body)

        return await self._run(user_id, run, notification_id=notification_id)

    async def dismiss_notification(
        self, notification_id: NotificationId, user_id: UserId = None
    ) -> Annotated[CallToolResult, NotificationPublic]:
        """Dismiss a notification (mark it read; again changes nothing). Returns it."""

        async def run(session: AsyncSession, user: str) -> NotificationPublic:
            assert isinstance(session, Session)
            body = await notifications.mark_read(
                session, user, notification_id=notification_id, clock=self._clock
            )
            return notifications.parse(body)

        return await self._run(user_id, run, notification_id=notification_id)

    @property
    def _idempotency_ttl(self) -> timedelta:
        settings: TodoSettings = self._app.state.settings
        return timedelta(hours=settings.idempotency_ttl_hours)

    @property
    def _db(self) -> Database:
        db: Database = self._app.state.db
        return db

    @property
    def _clock(self) -> Clock:
        clock: Clock = self._app.state.clock
        return clock

    async def _run(
        self,
        user_id: str | None,
        work: Callable[[AsyncSession, str], Awaitable[Answer]],
        *,
        task_id: int | None = None,
        notification_id: int | None = None,
    ) -> CallToolResult:
        """Authorise from the token, run ``work`` in one unit of work, shape the answer."""
        token = get_access_token()
        if token is None or not token.subject:
            return _error("unauthenticated", "Not authenticated")
        if user_id is not None and user_id != token.subject:
            return _error("forbidden", "user_id does not match the authenticated user")
        try:
            async with self._db.unit_of_work() as session:
                value = await work(session, token.subject)
        except service.TasksNotFound as exc:
            return _error("not_found", exc.message, task_ids=exc.task_ids)
        except service.TaskNotFound:
            return _error("not_found", f"Task {task_id} not found", task_ids=[task_id])
        except notifications.NotificationNotFound:
            return _error("not_found", f"Notification {notification_id} not found")
        except ToolRefused as exc:
            return _error(exc.code, str(exc))
        except AppError as exc:
            return _error(_code(exc), exc.message)
        except Exception as exc:
            # Input the database refuses (U+0000 in a text) is the caller's error, answered
            # as the REST routes answer it.
            refusal = database_refusal(exc)
            if refusal is not None:
                return _error(_code(refusal), refusal.message)
            # PostgreSQL aborted it for a concurrent transaction: nothing was saved, and the
            # same call again goes through (REST's 503 transaction_conflict).
            if is_transaction_conflict(exc):
                return _error("unavailable", TransactionConflict.message)
            # Not the tool's answer but the service failing (its database down, a bug): a
            # protocol error, so clients report an outage instead of reading it as a refusal.
            logger.exception("MCP tool failed")
            raise MCPError(code=INTERNAL_ERROR, message="Internal error") from None
        return _ok(value)


def _given(**values: Any) -> dict[str, Any]:
    """The arguments a caller gave (an absent optional argument is None)."""
    return {name: value for name, value in values.items() if value is not None}


def _validated(model: type[Any], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise ToolRefused(_invalid_arguments(exc.errors())) from None


def _invalid_arguments(problems: Sequence[ErrorDetails]) -> str:
    listed = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in problems
    )
    return f"Invalid arguments: {listed}"


def _code(exc: AppError) -> ErrorCode | str:
    """A service error's tool code; one the tools do not name keeps its REST code."""
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, PreconditionFailed):
        return "stale"
    if isinstance(exc, IdempotencyKeyReused | Conflict):
        return "conflict"
    if isinstance(exc, ValidationFailed | BadRequest):
        return "invalid"
    if exc.code == "database_unavailable":
        return "unavailable"
    return exc.code


def _result(task: TaskPublic, status: str) -> TaskResult:
    return TaskResult(task_id=task.id, status=status, title=task.title)


def _summary(task: TaskPublic) -> TaskSummary:
    """The task as a list_tasks item: its fields as the API writes them (times as text)."""
    return TaskSummary.model_validate(task.model_dump(mode="json", include=set(_SUMMARY_FIELDS)))


def _completion(task: TaskPublic) -> CompletionResult:
    return CompletionResult(
        task_id=task.id,
        status="completed" if task.completed else "reopened",
        title=task.title,
        completed=task.completed,
        next_occurrence_id=task.next_occurrence_id,
    )


def _ok(value: Answer) -> CallToolResult:
    # The text is the plain JSON value, for clients that read text only: for a list, the
    # list itself (the Phase III shape); the structured content wraps it ({"result": [...]},
    # as the SDK's output schema for a list says) with the total beside it.
    if isinstance(value, BaseModel):
        plain: Any = value.model_dump(mode="json")
        structured = plain
    else:
        plain = value.items
        structured = {"result": value.items, "total": value.total}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(plain, ensure_ascii=False))],
        structured_content=structured,
    )


def _error(code: ErrorCode | str, message: str, **details: Any) -> CallToolResult:
    """A tool error: the message as text, and ``{"error": {code, message, ...details}}``."""
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={"error": {"code": code, "message": message, **details}},
        is_error=True,
    )
