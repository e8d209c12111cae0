"""What a page handler answers besides a page of its own: a redirect, a refused form (a
redirect to its page, which shows it again), a 404 for what is not (or not the user's), a
refusal of the API for a form or for the page's scripts; and the ids the pages' paths and
forms carry.

Every refused form is answered one way, ``form_again``: a redirect to the page the form is
on, which shows the refusal (``views.render``). ``refused`` is that for a refusal of the API,
``not_found`` for a thing gone, and ``back_with_problem`` for a POST refused before its own
handler could answer (a CSRF refusal, the API unreachable).

A refusal for the page's scripts is the platform's error envelope (``shared.errors``), its
``detail`` the words a person reads and its ``code`` what the scripts act on."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.responses import RedirectResponse, Response

from shared.columns import MAX_ID
from shared.db import is_database_outage, is_statement_cancelled, is_transaction_conflict
from shared.errors import HTTP_CODES, AppError, OutcomeUnknown, error_response
from web_service.context import Ctx
from web_service.form_states import FORM_PARAM, KEEP_SECONDS, with_form
from web_service.gateway_client import ApiError
from web_service.security import UNSAFE_METHODS, cookie_kwargs, page_before, safe_next
from web_service.views import friendly, render

logger = logging.getLogger(__name__)

# An id of the API's (task, conversation, notification) in a page's path or form: a positive
# BIGINT, written without a sign or leading zeros.
RESOURCE_ID = re.compile(r"[1-9][0-9]{0,18}")
# The note of a page's last action (``?notice=created``, and the instant it says): said once,
# not again on the way back.
NOTE_PARAMS = frozenset({"notice", "at"})
# Left out of a way back too: the refused form a page showed again (``form_again``) is over
# once the person has gone on from it.
NOT_CARRIED_BACK = NOTE_PARAMS | {FORM_PARAM}


class Refused(AppError):
    """A refusal of the web client, of any status: ``message`` is what a person reads."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        self.status_code = status
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        super().__init__(message, code=code, headers=headers)

    @classmethod
    def of(cls, error: ApiError) -> Refused:
        """A refusal of the API, in the words ``friendly`` gives it."""
        return cls(error.status, error.code, friendly(error), retry_after=error.retry_after)


def resource_id(raw: str | None) -> int | None:
    """The id ``raw`` writes, or None for anything else (the page is then a 404, no call made)."""
    if raw and RESOURCE_ID.fullmatch(raw) and int(raw) <= MAX_ID:
        return int(raw)
    return None


def redirect(location: str) -> RedirectResponse:
    """See other: the POST-redirect-GET of every form."""
    return RedirectResponse(location, status_code=303)


def signin_address(next_path: str | None, *, notice: str | None = None) -> str:
    """The sign-in form's address, leading back to ``next_path`` once signed in (left out
    for the list, where signing in leads anyway)."""
    query = {"notice": notice} if notice else {}
    if next_path and next_path != "/tasks":
        query["next"] = next_path
    return "/signin" + (f"?{urlencode(query, quote_via=quote)}" if query else "")


def without_notes(path: str) -> str:
    """``path`` (a path of this site, perhaps with a query) without the note of its page's
    last action or the refused form it showed (``NOT_CARRIED_BACK``)."""
    path, _, query = path.partition("?")
    kept = [
        (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in NOT_CARRIED_BACK
    ]
    return f"{path}?{urlencode(kept)}" if kept else path


def _problems(state: dict[str, Any]) -> str:
    """What a refused form's ``state`` names as wrong, as a person reads it: the form's
    problem and each field's, one sentence after another."""
    found = [state["problem"]] if isinstance(state.get("problem"), str) else []
    for key, errors in state.items():
        if key.endswith("errors") and isinstance(errors, dict):
            found.extend(str(message) for message in errors.values())
    sentences = [text if text.endswith((".", "?", "!")) else f"{text}." for text in found]
    return " ".join(sentences) or "The form was refused. Nothing was changed."


async def form_again(
    ctx: Ctx,
    location: str,
    state: dict[str, Any],
    *,
    error: ApiError | None = None,
    status: int | None = None,
    retry_after: int | None = None,
) -> Response:
    """A refused form's answer: a 303 to ``location`` (the page the form is on, with its own
    query) naming ``state`` (its errors and what was typed, never a password; a ``problem``
    the page shows above its content), which that page shows again (``Ctx.recalled_form``)
    answered as the refusal was (``views.render``): the browser's history holds no answer to
    a POST for Back or Forward to send again (``web_service.form_states``). The page's
    scripts (``ctx.wants_json``) get the refusal itself: the error envelope, its ``detail``
    every problem named.

    The refusal is the API's ``error`` (its status, its wait and its code), or the form's
    own checks': their ``status`` and ``retry_after`` (the code is the platform's for the
    status)."""
    if error is not None:
        assert status is None, "the API's refusal says its status"
        assert retry_after is None, "the API's refusal says its wait"
        status, retry_after, code = error.status, error.retry_after, error.code
    else:
        assert status is not None, "a refusal of the form's own checks says its status"
        code = HTTP_CODES.get(status, "refused")
    if ctx.wants_json:
        # A fetch follows no form's page: the refusal itself, its problems in its words.
        return error_response(Refused(status, code, _problems(state), retry_after=retry_after))
    state = {**state, "status": status}
    if retry_after:
        # The instant the wait ends: the page shown again later asks for what is left of it.
        state["retry_at"] = (ctx.web.clock() + timedelta(seconds=retry_after)).isoformat()
    page = location.partition("?")[0]
    forms = ctx.web.forms
    if ctx.session is not None:
        return redirect(with_form(location, await forms.keep(ctx.session.id_hash, page, state)))
    # Before sign-in: the form's CSRF token was checked against the anonymous cookie.
    cookie = ctx.web.cookies.form(page)
    assert ctx.anon is not None
    assert cookie is not None  # only the sign-in and sign-up forms are sent before sign-in
    form_id, sealed = forms.seal(ctx.anon, page, state)
    response = redirect(with_form(location, form_id))
    response.set_cookie(
        cookie,
        sealed,
        max_age=KEEP_SECONDS,
        **cookie_kwargs(ctx.settings),  # type: ignore[arg-type]
    )
    return response


def _can_keep(ctx: Ctx, page: str) -> bool:
    """Whether a state can be kept for ``page``: in the session's rows, or before sign-in in
    the sealed cookie of a form of before sign-in, bound to the anonymous cookie."""
    if ctx.session is not None:
        return True
    return ctx.anon is not None and ctx.web.cookies.form(page.partition("?")[0]) is not None


async def not_found(ctx: Ctx, thing: str, back: str, *, code: str = "not_found") -> Response:
    """A ``thing`` that no longer exists (or never was the user's): the 404 page with a link
    ``back``, or for the page's scripts (``ctx.wants_json``) its message and ``code``. A
    form's POST about it goes ``back`` (the page it was listed on: the thing's own page is a
    404 now), which shows the message (``form_again``)."""
    message = f"That {thing} no longer exists. Nothing was changed."
    if ctx.wants_json:
        return error_response(Refused(404, code, message))
    if ctx.request.method in UNSAFE_METHODS and _can_keep(ctx, back):
        return await form_again(ctx, back, {"problem": message}, status=404)
    return await render(
        ctx,
        "error.html",
        status_code=404,
        heading=f"{thing.capitalize()} not found",
        message=message,
        back=back,
    )


def json_problem(error: ApiError) -> Response:
    """A refusal of the API as the page's scripts read it: its words, its code, and when to
    try again."""
    return error_response(Refused.of(error))


async def refused(ctx: Ctx, error: ApiError, back: str) -> Response:
    """A refused action: the page ``back`` (``form_again``) saying the refusal in
    ``friendly``'s words, answered with its status and wait; for the page's scripts, the
    refusal with the API's code (as ``json_problem`` says it)."""
    return await form_again(ctx, back, {"problem": friendly(error)}, error=error)


async def back_with_problem(
    ctx: Ctx, problem: str, *, error: ApiError | None = None, status: int | None = None
) -> Response | None:
    """A plain form's POST refused before its own handler could answer (a CSRF refusal, the
    API's ``error``): the page the form was sent from (its same-origin ``Referer``), saying
    ``problem`` (``form_again``) and keeping nothing the request sent; None when that page is
    not known or nothing can be kept for it, the database failing included (the caller, an
    exception handler, answers with a page of its own)."""
    sent_from = page_before(ctx.request, ctx.settings)
    # Re-encoded without its notes, an address may grow past what ``safe_next`` takes: no
    # page to go back to then, rather than another one (whose redirect would drop ``?form=``).
    page = safe_next(without_notes(sent_from), "") if sent_from else ""
    if not page or not _can_keep(ctx, page):
        return None
    try:
        return await form_again(ctx, page, {"problem": problem}, error=error, status=status)
    except Exception as exc:
        if not _database_failed(exc):
            raise
        logger.warning("a refused form's state was not kept: the database failed", exc_info=True)
        return None


def _database_failed(exc: Exception) -> bool:
    """The database could not do it just now (down, too slow, a write's outcome lost, a
    concurrent transaction's conflict): not a bug of this request."""
    return (
        isinstance(exc, OutcomeUnknown)
        or is_database_outage(exc)
        or is_statement_cancelled(exc)
        or is_transaction_conflict(exc)
    )
