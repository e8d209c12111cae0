"""HTTP routes of the chat service. Thin: parse, call the turn or the service, shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from chat_service import service, sse
from chat_service.models import IDEMPOTENCY_KEY_MAX, Conversation, Message
from chat_service.schemas import (
    ChatIn,
    ChatOut,
    ConversationDetail,
    ConversationPublic,
    MessagePublic,
    ToolCallPublic,
)
from chat_service.turn import ChatContext, Emit, Replay, TurnRequest, begin_turn, run_turn
from shared.deps import CurrentPrincipal, SessionDep, bearer_scheme, row_id
from shared.errors import ERROR_DESCRIPTIONS, WATCHED_401, error_responses
from shared.pagination import PAGE_HEADERS, page_headers
from shared.streams import EventStreamResponse

router = APIRouter(
    prefix="/api",
    tags=["chat"],
    responses=error_responses(400, 401, 413, 422, 503, descriptions={401: WATCHED_401}),
)
_NO_CONVERSATION = "No such conversation, or not the current user's (`conversation_not_found`)"
_ONE_CONVERSATION = error_responses(404, descriptions={404: _NO_CONVERSATION})

MAX_PAGE = 100
UTC = ZoneInfo("UTC")


# A coroutine, as every dependency is: FastAPI would run a plain function in a worker thread.
async def get_context(request: Request) -> ChatContext:
    ctx: ChatContext = request.app.state.chat
    return ctx


Context = Annotated[ChatContext, Depends(get_context)]
# Already checked by CurrentPrincipal; forwarded as is so the todo service sees the user.
BearerToken = Annotated[str | None, Depends(bearer_scheme)]
Cursor = Annotated[str | None, Query(max_length=512, description="From the previous page's Link")]
# Unknown, foreign and impossible ids are all simply "not found".
ConversationId = Annotated[int, row_id("conversation")]


Limit = Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="Page size")]


@dataclass(frozen=True)
class PageQuery:
    limit: int
    cursor: str | None


async def _page_query(request: Request, limit: Limit = None, cursor: Cursor = None) -> PageQuery:
    """The page asked for; without ``limit``, the service's page size."""
    ctx: ChatContext = request.app.state.chat
    return PageQuery(limit if limit is not None else ctx.settings.page_size, cursor)


PageQueryDep = Annotated[PageQuery, Depends(_page_query)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=rf"^[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}$",
        description="Retry a turn safely: the same key and body within 24 h replays the first "
        "answer instead of running the turn again (a failed first attempt is run again on "
        "the same stored message)",
    ),
]

_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": (
                    'event: tool_call\ndata: {"name":"add_task","arguments":{"title":"Buy milk"},'
                    '"result":{"task_id":5,"status":"created","title":"Buy milk"}}\n\n'
                    'event: message\ndata: {"response":"Done! I added “Buy milk”..."}\n\n'
                    'event: done\ndata: {"conversation_id":1}\n\n'
                ),
            }
        },
        "description": "The reply; or, with `Accept: text/event-stream`, the turn as events",
    }
}


def _accepts_event_stream(accept: str) -> bool:
    """Whether ``Accept`` lists ``text/event-stream`` with a weight above 0 (media types are
    case-insensitive; ``q=0`` means not acceptable, RFC 9110 12.4.2)."""
    for media_range in accept.split(","):
        media_type, *parameters = media_range.split(";")
        if media_type.strip().lower() != "text/event-stream":
            continue
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value.strip()) > 0
                except ValueError:
                    return False
        return True
    return False


@router.post(
    "/chat",
    response_model=ChatOut,
    summary="Send a message to the assistant",
    responses={
        **_SSE_RESPONSE,
        **error_responses(
            404,
            409,
            422,
            502,
            503,
            504,
            descriptions={
                404: "`conversation_id` is not one of the user's conversations "
                "(`conversation_not_found`)",
                409: "A turn with this Idempotency-Key is still running "
                "(`idempotent_request_in_progress`, see Retry-After), or the conversation is "
                "full (`conversation_full`: start a new one)",
                422: "Invalid body, or an Idempotency-Key reused with another body "
                "(`idempotency_key_reused`)",
                502: "The model or the todo service answered badly",
                503: "The todo service is unavailable (`todo_unavailable`); or "
                + ERROR_DESCRIPTIONS[503],
                504: "The turn took longer than allowed",
            },
        ),
    },
)
async def chat(
    body: ChatIn,
    request: Request,
    principal: CurrentPrincipal,
    token: BearerToken,
    ctx: Context,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """One stateless chat turn. With ``Accept: text/event-stream`` it streams as it happens."""
    assert token is not None  # CurrentPrincipal refused the request otherwise
    turn_request = TurnRequest(
        user_id=principal.sub,
        token=token,
        message=body.message,
        conversation_id=body.conversation_id,
        tz=ZoneInfo(body.timezone) if body.timezone else UTC,
        idempotency_key=idempotency_key,
        request_hash=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
    )
    turn = await begin_turn(ctx, turn_request)
    streaming = _accepts_event_stream(request.headers.get("accept", ""))

    if isinstance(turn, Replay):
        if streaming:
            return EventStreamResponse(sse.replay(turn.answer))
        return JSONResponse(turn.answer)

    if streaming:

        async def run(emit: Emit) -> int:
            result = await run_turn(ctx, turn_request, turn, emit)
            return result.conversation_id

        tasks: set[Any] = request.app.state.chat_tasks
        return EventStreamResponse(sse.stream_turn(run, tasks=tasks))

    result = await run_turn(ctx, turn_request, turn)
    return ChatOut(
        conversation_id=result.conversation_id,
        response=result.reply,
        tool_calls=[ToolCallPublic(**call.record()) for call in result.tool_calls],
    )


@router.get(
    "/conversations",
    responses={200: {"headers": PAGE_HEADERS}},
    summary="The user's conversations",
)
async def list_conversations(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: PageQueryDep,
) -> list[ConversationPublic]:
    """The user's conversations, most recently active first; more pages via ``Link``."""
    page = await service.list_conversations(
        session, principal.sub, limit=query.limit, cursor=query.cursor
    )
    response.headers.update(page_headers(request, total=page.total, next_cursor=page.next_cursor))
    return [_conversation(c) for c in page.items]


@router.get(
    "/conversations/{conversation_id}",
    responses={200: {"headers": PAGE_HEADERS}, **_ONE_CONVERSATION},
    summary="One conversation with its messages",
)
async def read_conversation(
    conversation_id: ConversationId,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: PageQueryDep,
    order: Annotated[
        Literal["asc", "desc"],
        Query(
            description="asc: oldest first, the next page later messages (the default); desc: "
            "newest first, the next page earlier ones (a chat view opening at the latest)"
        ),
    ] = "asc",
) -> ConversationDetail:
    """A conversation with one page of its messages, oldest first unless ``order=desc``; more
    pages via ``Link``, the number of messages in ``X-Total-Count``."""
    conversation = await service.get_conversation(
        session, principal.sub, conversation_id=conversation_id
    )
    page = await service.list_messages(
        session,
        principal.sub,
        conversation_id=conversation_id,
        limit=query.limit,
        cursor=query.cursor,
        newest_first=order == "desc",
    )
    response.headers.update(page_headers(request, total=page.total, next_cursor=page.next_cursor))
    return ConversationDetail(
        **_conversation(conversation).model_dump(), messages=[_message(m) for m in page.items]
    )


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ONE_CONVERSATION,
    summary="Delete a conversation and its messages",
)
async def delete_conversation(
    conversation_id: ConversationId, session: SessionDep, principal: CurrentPrincipal
) -> None:
    await service.delete_conversation(session, principal.sub, conversation_id=conversation_id)


def _conversation(conversation: Conversation) -> ConversationPublic:
    assert conversation.id is not None
    return ConversationPublic(
        id=conversation.id,
        title=conversation.title,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
    )


def _message(message: Message) -> MessagePublic:
    assert message.id is not None
    calls = None
    if message.tool_calls is not None:
        calls = [ToolCallPublic(**record) for record in message.tool_calls]
    return MessagePublic(
        id=message.id,
        role="assistant" if message.role == "assistant" else "user",
        content=message.content,
        tool_calls=calls,
        created_at=message.created_at,
    )
