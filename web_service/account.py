"""Sign up, sign in, sign out (here and everywhere), and the account page."""

from __future__ import annotations

import contextlib
import unicodedata
import zoneinfo
from datetime import timedelta
from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from shared.timezones import NOT_ZONES, iana_zone
from web_service.context import Ctx, CtxDep
from web_service.gateway_client import ApiError, ApiResponse
from web_service.responses import form_again, redirect, signin_address
from web_service.security import safe_next
from web_service.sessions import Tokens
from web_service.views import friendly, parse_utc, plural, render

router = APIRouter(include_in_schema=False)

AUTH_ERROR_FIELDS = {"email", "password", "name", "timezone", "current_password", "new_password"}
# The account deletion form's page and fields (ids on the page).
DELETE_PAGE = "/account/delete"
DELETE_PASSWORD, DELETE_CONFIRM = "delete_password", "delete_confirm"
# The auth service reads at most 512 characters of a password as typed and bounds it to 8-128
# characters in Unicode's NFKC form (the form it hashes). A password is read here up to one
# past that, never cut short (a cut password would be another password), and measured as the
# service measures it.
PASSWORD_READ = 513
PASSWORD_MIN, PASSWORD_MAX = 8, 128


@lru_cache(maxsize=1)
def timezones() -> list[str]:
    """The names offered in the time-zone fields' list."""
    return sorted(zoneinfo.available_timezones() - NOT_ZONES)


def valid_timezone(name: str) -> bool:
    """As the API decides (``shared.timezones``), before a form is sent on."""
    try:
        iana_zone(name)
    except ValueError:
        return False
    return len(name) <= 64


def _field(form: Any, name: str, limit: int = 1000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _password_fits(password: str) -> bool:
    """Within the auth service's bounds, measured in the form it hashes."""
    return PASSWORD_MIN <= len(unicodedata.normalize("NFKC", password)) <= PASSWORD_MAX


# The auth service's codes for a password it refuses (docs/auth.md): the current one is not
# the account's, the new one is the account's email address.
WRONG_PASSWORD, WEAK_PASSWORD = "wrong_password", "weak_password"
NOT_THE_EMAIL = "Choose a password that is not your email address"


# The start of the API's words for an email address it cannot read (its validator's); what
# follows says what is wrong ("An email address must have an @-sign.").
EMAIL_REFUSED = "value is not a valid email address: "


def _errors_of(error: ApiError) -> dict[str, str]:
    fields = {k: v for k, v in error.field_errors().items() if k in AUTH_ERROR_FIELDS}
    if "email" in fields:
        reason = fields["email"].removeprefix(EMAIL_REFUSED)
        fields["email"] = f"Enter an email address such as name@example.com. {reason}".strip()
    return fields or {"_form": friendly(error)}


def _wait_text(seconds: int | None) -> str:
    if not seconds:
        return "Please wait a little and try again."
    minutes, rest = divmod(seconds, 60)
    if minutes == 0:
        return f"Please wait {rest} {plural('second', rest)} and try again."
    return f"Please wait {minutes} {plural('minute', minutes)} and try again."


async def _limited(ctx: Ctx, action: str) -> int | None:
    return await ctx.web.limiter.hit(action, ctx.client_ip, ctx.web.clock())


async def _login(ctx: Ctx, email: str, password: str) -> ApiResponse:
    """The auth service's answer to signing in (any status; an unreachable gateway raises)."""
    return await ctx.web.gateway.call(
        "POST",
        "/api/auth/login",
        json_body={"email": email, "password": password},
        client_ip=ctx.client_ip,
    )


async def _signs_in(ctx: Ctx, email: str, password: str) -> dict[str, Any] | None:
    """The auth service's sign-in answer when ``password`` is the account's, else None. It
    counts as a sign-in from the person's network (this service's limit, then the auth
    service's counts by account and address), so a form other than sign-in is no second way
    to try passwords."""
    if not email or await _limited(ctx, "signin") is not None:
        return None
    answer = await _login(ctx, email, password)
    return answer.json() if answer.status == 200 else None


async def _start_session(ctx: Ctx, answer: dict[str, Any], next_path: str) -> Response:
    if ctx.session is not None:
        # Signing in again (another tab's form) replaces the session this browser had.
        await ctx.web.store.end(ctx.session)
    tokens = Tokens.from_answer(answer, ctx.web.clock())
    user = dict(tokens.user or {})
    cookie, session = await ctx.web.store.create(tokens, user)
    response = redirect(next_path)
    ctx.set_session_cookie(response, cookie, session)
    # The anonymous cookie has done its work: the session's own token takes over (and a
    # refused form of the visitor's is over).
    for name in (ctx.web.cookies.anon, *ctx.web.cookies.forms):
        response.delete_cookie(name, path="/", secure=ctx.settings.cookies_secure)
    return response


@router.get("/")
async def home(ctx: CtxDep) -> Response:
    return redirect("/tasks" if ctx.session else "/signin")


@router.get("/signin")
async def signin_page(ctx: CtxDep, next: str | None = None) -> Response:
    if ctx.session is not None:
        return redirect(safe_next(next))
    refused = await ctx.recalled_form() or {}
    return await render(
        ctx,
        "signin.html",
        errors=refused.get("errors", {}),
        email=refused.get("email", ""),
        next_path=safe_next(next),
    )


@router.post("/signin")
async def signin(ctx: CtxDep, next: str | None = None) -> Response:
    form = await ctx.form()
    email, password = _field(form, "email", 320), _field(form, "password", PASSWORD_READ)
    next_path = safe_next(next)

    async def again(
        errors: dict[str, str],
        *,
        error: ApiError | None = None,
        status: int | None = None,
        retry_after: int | None = None,
    ) -> Response:
        # The password is never kept: the form comes back with it empty.
        state = {"errors": errors, "email": email}
        address = signin_address(next_path)
        return await form_again(
            ctx, address, state, error=error, status=status, retry_after=retry_after
        )

    errors = {}
    if not email:
        errors["email"] = "Enter your email address"
    if not password:
        errors["password"] = "Enter your password"
    if errors:
        return await again(errors, status=422)
    wait = await _limited(ctx, "signin")
    if wait is not None:
        message = "Too many sign-in attempts from your network. " + _wait_text(wait)
        return await again({"_form": message}, status=429, retry_after=wait)
    try:
        answer = await _login(ctx, email, password)
    except ApiError as error:
        return await again({"_form": friendly(error)}, error=error)
    if answer.status == 200:
        return await _start_session(ctx, answer.json(), next_path)
    refusal = ApiError.from_response(answer)
    not_right = {"password": "The email address or password is not right"}
    if refusal.status == 401:
        return await again(not_right, error=refusal)
    if _too_long_to_be_it(refusal, "password"):
        return await again(not_right, status=401)
    if refusal.status == 429:
        message = "Too many attempts to sign in to this account. "
        return await again({"_form": message + _wait_text(refusal.retry_after)}, error=refusal)
    if refusal.status == 422:
        return await again(_errors_of(refusal), error=refusal)
    return await again({"_form": friendly(refusal)}, error=refusal)


@router.get("/signup")
async def signup_page(ctx: CtxDep) -> Response:
    if ctx.session is not None:
        return redirect("/tasks")
    refused = await ctx.recalled_form() or {}
    return await render(
        ctx,
        "signup.html",
        errors=refused.get("errors", {}),
        email=refused.get("email", ""),
        name=refused.get("name", ""),
        timezone=refused.get("timezone", ""),
        timezones=timezones(),
    )


@router.post("/signup")
async def signup(ctx: CtxDep) -> Response:
    form = await ctx.form()
    email, password = _field(form, "email", 320), _field(form, "password", PASSWORD_READ)
    name, tz = _field(form, "name", 100).strip(), _field(form, "timezone", 64).strip() or "UTC"

    async def again(
        errors: dict[str, str],
        *,
        error: ApiError | None = None,
        status: int | None = None,
        retry_after: int | None = None,
    ) -> Response:
        # The password is never kept: the form comes back with it empty.
        state = {"errors": errors, "email": email, "name": name, "timezone": tz}
        return await form_again(
            ctx, "/signup", state, error=error, status=status, retry_after=retry_after
        )

    errors = {}
    if not email:
        errors["email"] = "Enter your email address"
    elif "@" not in email:
        # The API's own words for it, said now beside the other fields' problems rather
        # than once they are put right.
        errors["email"] = (
            "Enter an email address such as name@example.com. An email address must have an @-sign."
        )
    if not _password_fits(password):
        errors["password"] = "Choose a password of 8 to 128 characters"
    if not valid_timezone(tz):
        errors["timezone"] = "Choose a time zone from the list, such as Europe/London"
    if errors:
        return await again(errors, status=422)
    wait = await _limited(ctx, "signup")
    if wait is not None:
        message = "Too many sign-ups from your network. " + _wait_text(wait)
        return await again({"_form": message}, status=429, retry_after=wait)
    body: dict[str, Any] = {"email": email, "password": password, "timezone": tz}
    if name:
        body["name"] = name
    try:
        created = await ctx.web.gateway.call(
            "POST", "/api/auth/register", json_body=body, client_ip=ctx.client_ip
        )
        if created.status != 201:
            error = ApiError.from_response(created)
            if error.status == 409:
                # An address that has an account, with its password, is a sign-in: a sign-up
                # sent twice (a double click without the script) meets the account its first
                # send made, and the browser shows the second answer only.
                existing = await _signs_in(ctx, email, password)
                if existing is not None:
                    notice = "registered" if _made_just_now(ctx, existing) else "existing_account"
                    return await _start_session(ctx, existing, f"/tasks?notice={notice}")
                return await again(
                    {
                        "email": "An account with this email address already exists: sign in "
                        "with it, or use another address"
                    },
                    error=error,
                )
            if error.code == WEAK_PASSWORD:
                return await again({"password": NOT_THE_EMAIL}, error=error)
            if error.status == 422:
                return await again(_errors_of(error), error=error)
            if error.status == 429:
                message = "Too many sign-ups just now. " + _wait_text(error.retry_after)
                return await again({"_form": message}, error=error)
            return await again({"_form": friendly(error)}, error=error)
        answer = await _login(ctx, email, password)
    except ApiError as error:
        return await again({"_form": friendly(error)}, error=error)
    if answer.status != 200:
        # The account exists; signing in is the next step.
        return redirect("/signin?notice=registered")
    return await _start_session(ctx, answer.json(), "/tasks?notice=registered")


# An account the sign-up form meets that was made less than this long ago is the one the
# form's first send made; an older one the person already had.
JUST_MADE = timedelta(minutes=10)


def _made_just_now(ctx: Ctx, answer: dict[str, Any]) -> bool:
    """Whether the account a sign-in ``answer`` opened was made within ``JUST_MADE``."""
    user = answer.get("user")
    made = user.get("created_at") if isinstance(user, dict) else None
    try:
        created = parse_utc(made) if isinstance(made, str) else None
    except ValueError:
        created = None
    return created is not None and ctx.web.clock() - created < JUST_MADE


def _signed_out(ctx: Ctx, notice: str) -> Response:
    response = redirect(f"/signin?notice={notice}")
    response.delete_cookie(ctx.web.cookies.session, path="/", secure=ctx.settings.cookies_secure)
    return response


@router.post("/signout")
async def signout(ctx: CtxDep) -> Response:
    session = ctx.session
    if session is not None:
        refresh = await ctx.web.store.refresh_token(session)
        await ctx.web.store.end(session)
        if refresh is not None:
            # Revokes the family at the auth service; the session is gone here either way.
            with contextlib.suppress(ApiError):
                await ctx.web.gateway.call(
                    "POST",
                    "/api/auth/logout",
                    json_body={"refresh_token": refresh},
                    client_ip=ctx.client_ip,
                )
    return _signed_out(ctx, "signed_out")


@router.post("/signout-everywhere")
async def signout_everywhere(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    try:
        await ctx.expect("POST", SIGN_OUT_EVERYWHERE_PATH, ok=(200, 204))
    except ApiError as error:
        state = {"problem": friendly(error)}
        return await form_again(ctx, "/account", state, error=error)
    await ctx.web.store.end_all(session.user_id)
    return _signed_out(ctx, "signed_out_everywhere")


# The auth service's "revoke every refresh family of the user" endpoint.
SIGN_OUT_EVERYWHERE_PATH = "/api/auth/logout-all"
# The auth service's "change the password" endpoint.
PASSWORD_PATH = "/api/auth/password"


@router.get("/session/csrf")
async def session_csrf(ctx: CtxDep) -> Response:
    """The session's CSRF token, for a page's script whose copy went stale: a password change
    in another tab renews it. Only this site's scripts can read the answer (no CORS)."""
    ctx.require_session()
    return JSONResponse({"csrf_token": ctx.csrf_token})


@router.get("/account")
async def account(ctx: CtxDep) -> Response:
    """The account page; shown again after a refused form (``form_again``): the profile
    form's errors and values, or the password form's errors (never a password); a refused
    "sign out everywhere" is the page's problem (``views.render``)."""
    session = ctx.require_session()
    refused = await ctx.recalled_form() or {}
    values = {
        "name": session.profile.get("name") or "",
        "timezone": session.timezone,
        **refused.get("values", {}),
    }
    return await render(
        ctx,
        "account.html",
        profile_errors=refused.get("profile_errors", {}),
        password_errors=refused.get("password_errors", {}),
        values=values,
        email=session.profile.get("email") or "",
        timezones=timezones(),
    )


@router.post("/account/profile")
async def update_profile(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    form = await ctx.form()
    name, tz = _field(form, "name", 100).strip(), _field(form, "timezone", 64).strip()
    values = {"name": name, "timezone": tz}
    if not valid_timezone(tz):
        errors = {"timezone": "Choose a time zone from the list, such as Europe/London"}
        state = {"profile_errors": errors, "values": values}
        return await form_again(ctx, "/account", state, status=422)
    try:
        answer = await ctx.expect(
            "PATCH", "/api/auth/me", json_body={"name": name or None, "timezone": tz}
        )
    except ApiError as error:
        fields = {k: v for k, v in error.field_errors().items() if k in {"name", "timezone"}}
        state = {"profile_errors": fields or {"_form": friendly(error)}, "values": values}
        return await form_again(ctx, "/account", state, error=error)
    await ctx.web.store.update_profile(session, answer.json())
    return redirect("/account?notice=profile")


@router.post("/account/password")
async def change_password(ctx: CtxDep) -> Response:
    session = ctx.require_session()
    form = await ctx.form()
    current, new = (
        _field(form, "current_password", PASSWORD_READ),
        _field(form, "new_password", PASSWORD_READ),
    )
    errors = {}
    if not current:
        errors["current_password"] = "Enter your current password"
    if not _password_fits(new):
        errors["new_password"] = "Choose a new password of 8 to 128 characters"
    if errors:
        return await form_again(ctx, "/account", {"password_errors": errors}, status=422)
    try:
        answer = await ctx.expect(
            "POST",
            PASSWORD_PATH,
            ok=(200, 204),
            json_body={"current_password": current, "new_password": new},
        )
    except ApiError as error:
        # A wrong current password is counted by the auth service apart from sign-ins: it is
        # never tried as a sign-in here, so typing it wrong locks nobody out of signing in.
        state = {"password_errors": _password_refused(error)}
        return await form_again(ctx, "/account", state, error=error)
    body = answer.json() if answer.status == 200 else None
    if isinstance(body, dict) and "refresh_token" in body:
        # The auth service revoked every family and gave this browser a fresh pair: it
        # carries on under a new session id, and every other session here (a copy of this
        # one's cookie included) ends.
        tokens = Tokens.from_answer(body, ctx.web.clock())
        cookie, renewed = await ctx.web.store.rotate(session, tokens)
        ctx.session = renewed
        response = redirect("/account?notice=password")
        ctx.set_session_cookie(response, cookie, renewed)
        return response
    # No fresh pair: this session's family was revoked with the others.
    await ctx.web.store.end_all(session.user_id)
    return _signed_out(ctx, "session_ended")


def _too_long_to_be_it(error: ApiError, field: str) -> bool:
    """Whether the auth service refused the password in ``field`` by its length (in its own
    words): longer than any it reads, so not the account's password either."""
    return field in error.field_errors()


def _password_refused(error: ApiError) -> dict[str, str]:
    """The password form's errors for the auth service's refusal of the change, each at the
    field it is about."""
    if error.code == WRONG_PASSWORD or _too_long_to_be_it(error, "current_password"):
        return {"current_password": "Your current password is not right"}
    if error.code == WEAK_PASSWORD:
        return {"new_password": NOT_THE_EMAIL}
    if error.status == 429:
        return {"_form": "Too many wrong passwords. " + _wait_text(error.retry_after)}
    fields = error.field_errors()
    errors = {k: v for k, v in fields.items() if k in {"current_password", "new_password"}}
    return errors or {"_form": friendly(error)}


@router.get("/account/delete")
async def delete_account_page(ctx: CtxDep) -> Response:
    """The confirmation page; shown again after a refusal (``form_again``) with the box as it
    was sent (the password is never sent back)."""
    session = ctx.require_session()
    refused = await ctx.recalled_form() or {}
    return await render(
        ctx,
        "account_delete.html",
        errors=refused.get("errors", {}),
        email=session.profile.get("email") or "",
        confirmed=refused.get("confirmed", False),
    )


@router.post("/account/delete")
async def delete_account(ctx: CtxDep) -> Response:
    """Deletes the account at the auth service (``DELETE /api/auth/me`` with the password
    re-entered and the box ticked), then ends every session of the user here. A refusal shows
    the form again with nothing deleted."""
    session = ctx.require_session()
    form = await ctx.form()
    password = _field(form, DELETE_PASSWORD, PASSWORD_READ)
    errors = {}
    if not password:
        errors[DELETE_PASSWORD] = "Enter your password"
    elif len(password) == PASSWORD_READ:
        errors[DELETE_PASSWORD] = "The password is not right"
    confirmed = form.get(DELETE_CONFIRM) == "yes"
    if not confirmed:
        errors[DELETE_CONFIRM] = "Tick the box to confirm that everything is to be deleted"
    if errors:
        state = {"errors": errors, "confirmed": confirmed}
        return await form_again(ctx, DELETE_PAGE, state, status=422)
    try:
        await ctx.expect("DELETE", "/api/auth/me", ok=(204,), json_body={"password": password})
    except ApiError as error:
        state = {"errors": _deletion_refused(error), "confirmed": True}
        return await form_again(ctx, DELETE_PAGE, state, error=error)
    # The auth service revoked every refresh family with the account; no session of the
    # user is kept here either.
    await ctx.web.store.end_all(session.user_id)
    return _signed_out(ctx, "account_deleted")


def _deletion_refused(error: ApiError) -> dict[str, str]:
    if error.status == 403 or error.code == "wrong_password":
        return {DELETE_PASSWORD: "The password is not right. Nothing was deleted."}
    if error.status == 429:
        return {"_form": "Too many wrong passwords. " + _wait_text(error.retry_after)}
    if error.status == 422:
        return {DELETE_PASSWORD: "The password is not right. Nothing was deleted."}
    return {"_form": friendly(error)}
