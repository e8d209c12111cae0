"""The chat pages: the conversation list, a conversation's history, and turns.

Without JavaScript a turn is a form POST answered when the turn is done (then a redirect to
the conversation). With it, ``/chat/stream`` relays the API's server-sent events as they
happen (tool calls, then the answer), and the task list beside the chat refreshes after a
tool call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from shared.errors import error_event
from shared.request_context import current_request_id
from shared.streams import EventStreamResponse, SlotStreamingResponse
from web_service.context import Ctx, CtxDep
from web_service.gateway_client import ApiError, ApiResponse, next_cursor, page_cursor
from web_service.responses import Refused, form_again, not_found, redirect, resource_id
from web_service.tasks import form_key, new_chat_form, request_key
from web_service.views import friendly, render

router = APIRouter(include_in_schema=False)

MESSAGE_MAX = 4000
# A turn refused because the user's turns at once are at their bound
# (``WEB_CHAT_TURNS_PER_USER``) or the process's (``WEB_CHAT_TURNS_MAX``).
TURNS_BUSY = (
    "Other messages are still being answered. Wait for their answers, then send this one again."
)


def _page_params(ctx: Ctx, name: str = "cursor") -> list[tuple[str, str]]:
    """A page of the list or of a conversation's messages: the page's cursor (the query
    parameter ``name`` of this page's address) passed on."""
    params = [("limit", str(ctx.settings.chat_page_size))]
    cursor = page_cursor(ctx.request.query_params, name)
    if cursor:
        params.append(("cursor", cursor))
    return params


async def _conversation_api(
    ctx: Ctx, raw_id: str, method: str, **kwargs: Any
) -> tuple[int, ApiResponse] | None:
    """``method /api/conversations/{id}`` for the conversation ``raw_id`` names, with its id;
    None when the id is malformed or the API has no such conversation of this user."""
    conversation_id = resource_id(raw_id)
    if conversation_id is None:
        return None
    answer = await ctx.api(method, f"/api/conversations/{conversation_id}", **kwargs)
    return None if answer.status == 404 else (conversation_id, answer)


async def _conversations(ctx: Ctx) -> dict[str, Any] | None:
    """The page's conversation list (``?cursor=``); None when its cursor is none of the
    list's (mistyped, or an old address's page of messages)."""
    try:
        answer = await ctx.expect("GET", "/api/conversations", params=_page_params(ctx))
    except ApiError as error:
        if error.code == "invalid_cursor":
            return None
        raise
    more = next_cursor(answer.headers.get("Link"))
    return {
        "conversations": answer.json(),
        "conversations_total": int(answer.headers.get("X-Total-Count", 0)),
        "conversations_more": f"/chat?cursor={more}" if more else None,
    }


@router.get("/chat")
async def chat_page(ctx: CtxDep) -> Response:
    ctx.require_session()
    listing = await _conversations(ctx)
    if listing is None:
        return redirect("/chat")
    refused = await ctx.recalled_form()
    return await render(
        ctx,
        "chat.html",
        conversation=None,
        messages=[],
        messages_earlier=None,
        **_chat_form(refused, None),
        **listing,
    )


def _chat_form(refused: dict[str, Any] | None, conversation_id: int | None) -> dict[str, Any]:
    """The page's message form: a new one, or the turn this page's address names as refused
    (``send_message``, ``refused``), with its message, its key and why (its error at the
    message box)."""
    form = new_chat_form(conversation_id)
    if refused is None:
        return {"chat_form": form, "chat_error": None}
    form.update(
        message=refused.get("message", ""),
        idempotency_key=refused.get("idempotency_key", form["idempotency_key"]),
    )
    errors = refused.get("errors")
    error = errors.get("message") if isinstance(errors, dict) else None
    return {"chat_form": form, "chat_error": error if isinstance(error, str) else None}


@router.get("/chat/{raw_id}")
async def conversation_page(ctx: CtxDep, raw_id: str) -> Response:
    ctx.require_session()
    # The conversation opens at its latest messages, above the form that continues it; the
    # earlier ones are a page back each (``earlier``: the conversation list keeps ``cursor``).
    params = [*_page_params(ctx, "earlier"), ("order", "desc")]
    found = await _conversation_api(ctx, raw_id, "GET", params=params)
    if found is None:
        return await _missing(ctx)
    conversation_id, answer = found
    if answer.status == 400:
        return redirect(f"/chat/{conversation_id}")
    conversation = answer.expected().json()
    earlier = next_cursor(answer.headers.get("Link"))
    listing = await _conversations(ctx)
    if listing is None:
        return redirect(f"/chat/{conversation_id}")
    refused = await ctx.recalled_form()
    return await render(
        ctx,
        "chat.html",
        conversation=conversation,
        messages=conversation["messages"][::-1],
        messages_earlier=f"/chat/{conversation_id}?earlier={earlier}" if earlier else None,
        **_chat_form(refused, conversation_id),
        **listing,
    )


async def _missing(ctx: Ctx) -> Response:
    return await not_found(ctx, "conversation", "/chat")


async def _turn_input(ctx: Ctx) -> tuple[dict[str, Any], str, str | None]:
    form = await ctx.form()
    message = form.get("message")
    text = message.strip() if isinstance(message, str) else ""
    key = form_key(form)
    conversation = form.get("conversation_id")
    body: dict[str, Any] = {"message": text[:MESSAGE_MAX]}
    conversation_id = resource_id(conversation if isinstance(conversation, str) else None)
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    session = ctx.require_session()
    body["timezone"] = session.timezone
    problem = None
    if not text:
        problem = "Write a message first"
    elif len(text) > MESSAGE_MAX:
        problem = f"A message can be at most {MESSAGE_MAX} characters"
    return body, key, problem


@router.post("/chat")
async def send_message(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    body, key, problem = await _turn_input(ctx)
    status, refusal = 422, None
    if problem is None and not ctx.web.chat_turns.acquire(session.user_id):
        problem, status = TURNS_BUSY, 429
    elif problem is None:
        try:
            answer = await ctx.expect(
                "POST",
                "/api/chat",
                json_body=body,
                headers={"Idempotency-Key": request_key(key, body)},
            )
            return redirect(f"/chat/{answer.json()['conversation_id']}")
        except ApiError as error:
            problem, refusal = friendly(error), error
        finally:
            ctx.web.chat_turns.release(session.user_id)
    # Back to the conversation, its message in the box with the turn's key: sent again
    # unchanged, it is a retry of this turn.
    conversation_id = body.get("conversation_id")
    page = f"/chat/{conversation_id}" if conversation_id else "/chat"
    typed = (await ctx.form()).get("message")
    message = typed[: 2 * MESSAGE_MAX] if isinstance(typed, str) else ""
    state = {"errors": {"message": problem}, "message": message, "idempotency_key": key}
    if refusal is not None:
        return await form_again(ctx, page, state, error=refusal)
    return await form_again(ctx, page, state, status=status)


def _refusal(refused: Refused) -> bytes:
    """A turn refused or failed, as the stream's one ``error`` event."""
    return error_event(refused, current_request_id())


@router.post("/chat/stream")
async def stream_message(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    body, key, problem = await _turn_input(ctx)
    if problem is not None:
        return EventStreamResponse([_refusal(Refused(422, "validation_error", problem))])
    token = await ctx.token()
    if not ctx.web.chat_turns.acquire(session.user_id):
        return EventStreamResponse([_refusal(Refused(429, "chat_turns_busy", TURNS_BUSY))])
    gateway, client_ip = ctx.web.gateway, ctx.client_ip

    async def relay() -> AsyncIterator[bytes]:
        try:
            async with gateway.stream(
                "POST",
                "/api/chat",
                token=token,
                client_ip=client_ip,
                json_body=body,
                headers={"Idempotency-Key": request_key(key, body), "Accept": "text/event-stream"},
            ) as upstream:
                if upstream.status != 200:
                    error = ApiError.from_response(
                        ApiResponse(upstream.status, upstream.headers, await upstream.read())
                    )
                    yield _refusal(Refused.of(error))
                    return
                async for chunk in upstream.content.iter_any():
                    yield chunk
        except ApiError as error:
            yield _refusal(Refused.of(error))

    # The response gives the turn's slot back however the relay ends.
    return SlotStreamingResponse(
        relay(),
        slots=ctx.web.chat_turns,
        user_id=session.user_id,
    )


@router.get("/chat/{raw_id}/delete")
async def delete_conversation_page(ctx: CtxDep, raw_id: str) -> Response:
    """The question before a conversation goes for good: its title, Delete, and "Keep it"
    back to it (nothing of a conversation can be brought back after its delete)."""
    ctx.require_session()
    found = await _conversation_api(ctx, raw_id, "GET", params=[("limit", "1")])
    if found is None:
        return await _missing(ctx)
    conversation_id, answer = found
    conversation = answer.expected().json()
    return await render(
        ctx, "conversation_delete.html", conversation=conversation, conversation_id=conversation_id
    )


@router.post("/chat/{raw_id}/delete")
async def delete_conversation(ctx: CtxDep, raw_id: str) -> Response:
    ctx.require_session()
    found = await _conversation_api(ctx, raw_id, "DELETE")
    if found is None:
        return await _missing(ctx)
    _, answer = found
    answer.expected((204,))
    return redirect("/chat?notice=conversation_deleted")
