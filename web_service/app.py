"""The web service's application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from shared.app import create_service_app, database, database_ready
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.errors import error_response
from shared.streams import StreamSlots
from shared.tasks import stop_tasks
from web_service import account, chat, notifications, overview, tasks
from web_service.context import CsrfRefused, Ctx, SignInRequired, WebState, request_ctx
from web_service.crypto import TokenBox, load_token_box
from web_service.form_states import FORM_PARAM, FormStates
from web_service.gateway_client import ApiError, GatewayClient
from web_service.responses import Refused, back_with_problem, json_problem, signin_address
from web_service.security import (
    UNSAFE_METHODS,
    AuthPostLimiter,
    CookieNames,
    SecurityHeadersMiddleware,
    page_before,
    safe_next,
    same_origin,
)
from web_service.sessions import SessionStore
from web_service.settings import WebSettings, get_settings
from web_service.views import ENV, STATIC, friendly

logger = logging.getLogger(__name__)

# Ended sessions, expired form states and old sign-in counters are deleted this often, in
# batches.
PURGE_INTERVAL_SECONDS = 600.0


def create_app(
    settings: WebSettings | None = None,
    *,
    db: Database | None = None,
    clock: Clock = utcnow,
    box: TokenBox | None = None,
) -> FastAPI:
    """The app; ``db``, ``clock`` and ``box`` replace the real ones in tests."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        token_box = box or load_token_box(settings)
        gateway = GatewayClient(settings)
        await gateway.start()
        try:
            async with database(app, settings, name="web", db=db) as database_:
                store = SessionStore(database_, token_box, gateway, settings, clock)
                forms = FormStates(database_, token_box, clock)
                limiter = AuthPostLimiter(database_, settings)
                app.state.web = WebState(
                    settings=settings,
                    gateway=gateway,
                    store=store,
                    forms=forms,
                    box=token_box,
                    limiter=limiter,
                    clock=clock,
                    cookies=CookieNames.of(settings),
                    streams=StreamSlots(
                        per_user=settings.notification_streams_per_user,
                        total=settings.notification_streams_max,
                    ),
                    chat_turns=StreamSlots(
                        per_user=settings.chat_turns_per_user, total=settings.chat_turns_max
                    ),
                )
                janitor = asyncio.create_task(_purge_forever(store, forms, limiter, clock))
                try:
                    yield
                finally:
                    await stop_tasks([janitor])
        finally:
            await gateway.close()

    app = create_service_app(
        name="web",
        title="Web client",
        settings=settings,
        lifespan=lifespan,
        readiness={"database": database_ready},
        openapi_url=None,
        error_pages=True,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(account.router)
    app.include_router(tasks.router)
    app.include_router(chat.router)
    app.include_router(overview.router)
    app.include_router(notifications.router)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


async def _purge_forever(
    store: SessionStore, forms: FormStates, limiter: AuthPostLimiter, clock: Clock
) -> None:
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
        try:
            await store.purge()
            await forms.purge()
            await limiter.purge(clock())
        except Exception:
            logger.warning(
                "purging ended sessions, expired form states or old sign-in counters failed; "
                "trying again later",
                exc_info=True,
            )


def _ctx(request: Request) -> Ctx | None:
    ctx = getattr(request.state, "ctx", None)
    return ctx if isinstance(ctx, Ctx) else None


def _wants_json(request: Request) -> bool:
    """A request of the page's scripts: a fetch asking for JSON, a stream, or a fragment of a
    page (which a script inserts into the page it is on: never a sign-in page or a redirect
    to one)."""
    return (
        "application/json" in request.headers.get("accept", "")
        or request.url.path.endswith("/stream")
        or "fragment" in request.query_params
    )


async def _page(
    request: Request, status: int, heading: str, message: str, back: str = "/"
) -> Response:
    """The error page, saying also the refused form its address names (``form_again``): a
    form's way back may lead to a page that is not there."""
    ctx = _ctx(request)
    if ctx is None and FORM_PARAM in request.query_params and request.method not in UNSAFE_METHODS:
        # No route ran (no page at this address): its Ctx, only to recall the refused form.
        ctx = await request_ctx(request)
    recalled = await ctx.recalled_form() if ctx is not None else None
    problem = recalled.get("problem") if recalled else None
    values = {
        "unread": None,
        "csrf_token": "",
        "session": ctx.session if ctx else None,
        "user_tz": ctx.session.timezone if ctx and ctx.session else "UTC",
        "path": request.url.path,
        "notice": None,
        "problem": problem if isinstance(problem, str) else None,
        "heading": heading,
        "message": message,
        "back": back,
    }
    if ctx is not None and ctx.session is not None:
        values["csrf_token"] = ctx.session.csrf_token
    return HTMLResponse(ENV.get_template("error.html").render(values), status_code=status)


async def _sign_in(request: Request, exc: Exception) -> Response:
    web: WebState = request.app.state.web
    if _wants_json(request):
        response: Response = error_response(
            Refused(401, "signed_out", "Your session has ended. Please sign in again.")
        )
    elif request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(signin_address(safe_next(target)), status_code=303)
    else:
        # A form sent from a page whose session has ended: signed in again, the person is
        # back on that page (what the form changed is not sent again).
        before = page_before(request, web.settings)
        address = signin_address(before, notice="session_ended")
        response = RedirectResponse(address, status_code=303)
    if request.cookies.get(web.cookies.session):
        response.delete_cookie(web.cookies.session, path="/", secure=web.settings.cookies_secure)
    return response


# A form refused for its CSRF token, in fixed words: the state kept for it holds nothing else.
CSRF_REFUSED = (
    "This form has expired or did not come from this site, so nothing was changed. "
    "Reload the page and try again."
)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    if _wants_json(request):
        return error_response(Refused(403, "csrf_refused", CSRF_REFUSED))
    settings = request.app.state.web.settings
    ctx = _ctx(request)
    # Sent from one of this site's pages with a token gone stale (a page left open, another
    # tab's sign-in or password change): back to that page, which says so. A form from
    # another site (or a sibling one) keeps no state: it could otherwise push the session's
    # own refused forms out (``form_states.PER_SESSION``) or have a page show its words.
    if ctx is not None and request.method in UNSAFE_METHODS and same_origin(request, settings):
        again = await back_with_problem(ctx, CSRF_REFUSED, status=403)
        if again is not None:
            return again
    # Back to the page the form was on: the path it was sent to may take no GET at all.
    back = page_before(request, settings) or "/"
    return await _page(request, 403, "Nothing was changed", CSRF_REFUSED, back=back)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if _wants_json(request):
        return json_problem(exc)
    ctx = _ctx(request)
    if ctx is not None and request.method in UNSAFE_METHODS:
        # A form's POST the API refused or could not answer: back to the form's page.
        again = await back_with_problem(ctx, friendly(exc), error=exc)
        if again is not None:
            return again
    response = await _page(
        request, exc.status, "Something went wrong", friendly(exc), back="/tasks"
    )
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return await _page(request, 404, "Page not found", "There is no page at this address.")
    if exc.status_code == 405:
        return await _page(request, 405, "Not allowed", "This page cannot be used that way.")
    return await _page(request, exc.status_code, "Something went wrong", str(exc.detail))
