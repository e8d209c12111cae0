"""HTTP routes of the auth service (``/api/auth``). Thin: parse, call the service, shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from auth_service import service
from auth_service.models import User
from auth_service.schemas import (
    JWKS,
    DeleteAccountIn,
    LoginIn,
    MeUpdate,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    TokenResponse,
    UserPublic,
)
from auth_service.service import AuthContext, TokenPair
from shared.deps import CurrentPrincipal, DatabaseDep, SessionDep
from shared.errors import ERROR_DESCRIPTIONS, error_responses
from shared.openapi import location_header

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=error_responses(400, 413, 422, 503))


# The answer when more passwords wait to be hashed than AUTH_PASSWORD_HASH_QUEUE allows.
_BUSY = (
    "Too many passwords are being checked right now (`password_check_busy`); retry after "
    "`Retry-After` seconds; or " + ERROR_DESCRIPTIONS[503]
)


def _checks_password(
    *statuses: int, descriptions: Mapping[int, str], too_many: str
) -> dict[int | str, dict[str, Any]]:
    """The errors of a route that checks a password: its own ``statuses``, ``too_many`` wrong
    passwords (429, the throttle of ``auth_service.throttle``) and a full hashing line (503)."""
    return error_responses(
        *statuses,
        429,
        503,
        descriptions={
            **descriptions,
            429: f"{too_many}; retry after `Retry-After` seconds",
            503: _BUSY,
        },
    )


# A coroutine, as every dependency is: FastAPI would run a plain function in a worker thread.
async def get_context(request: Request) -> AuthContext:
    ctx: AuthContext = request.app.state.auth
    return ctx


Context = Annotated[AuthContext, Depends(get_context)]


async def get_current_user(session: SessionDep, principal: CurrentPrincipal) -> User:
    return await service.current_account(session, principal.sub)


CurrentUser = Annotated[User, Depends(get_current_user)]


def _token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
        user=UserPublic.model_validate(pair.user, from_attributes=True),
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    description="The answer is the new account, without tokens: log in next.",
    responses={
        201: {"headers": location_header("The new account's URL, `/api/auth/me`")},
        **error_responses(
            400,
            409,
            503,
            descriptions={
                400: "The password is the email (`weak_password`), or a malformed body",
                409: "An account with this email exists (`email_taken`)",
                503: _BUSY,
            },
        ),
    },
)
async def register(
    body: RegisterIn, session: SessionDep, ctx: Context, response: Response
) -> UserPublic:
    user = await service.register(
        session,
        ctx,
        email=body.email,
        password=body.password,
        name=body.name,
        timezone=body.timezone,
    )
    response.headers["Location"] = "/api/auth/me"
    return UserPublic.model_validate(user, from_attributes=True)


_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/LoginIn"}},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string", "description": "The account's email"},
                        "password": {"type": "string"},
                    },
                }
            },
        },
    }
}


async def _login_credentials(request: Request) -> LoginIn:
    """JSON ``{email, password}``, or the OAuth2 password form that Swagger's Authorize sends."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = await request.form()
            return LoginIn(email=form.get("username"), password=form.get("password"))
        return LoginIn.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from exc


def _client_address(request: Request) -> str:
    """The client's address as the service's server determined it: the gateway's
    ``X-Forwarded-For`` is believed only from the gateway (``FORWARDED_ALLOW_IPS``)."""
    return request.client.host if request.client is not None else "unknown"


@router.post(
    "/login",
    openapi_extra=_LOGIN_BODY,
    summary="Log in",
    description="JSON `{email, password}`, or the OAuth2 password form (the email as "
    "`username`); the answer is an access token and a refresh token.",
    responses=_checks_password(
        401,
        descriptions={401: "Wrong email or password (`invalid_credentials`)"},
        too_many="Too many failed logins for this account (`login_locked`)",
    ),
)
async def login(request: Request, session: SessionDep, ctx: Context) -> TokenResponse:
    credentials = await _login_credentials(request)
    user = await service.authenticate(
        session,
        ctx,
        email=credentials.email,
        password=credentials.password,
        client=_client_address(request),
    )
    return _token_response(await service.issue_tokens(session, ctx, user))


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new pair",
    description="A refresh token works once: sent again, it ends its session "
    "(`refresh_token_reused`).",
    responses=error_responses(
        401,
        descriptions={
            401: "The refresh token is invalid, expired or revoked (`invalid_refresh_token`), "
            "or was already used, which revokes its session (`refresh_token_reused`)"
        },
    ),
)
async def refresh(body: RefreshIn, session: SessionDep, ctx: Context) -> TokenResponse:
    pair = await service.rotate_refresh_token(session, ctx, refresh_token=body.refresh_token)
    return _token_response(pair)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out",
    description="Ends the refresh token's session (an unknown token too answers 204); access "
    "tokens already issued stay valid until they expire.",
)
async def logout(body: RefreshIn, session: SessionDep, ctx: Context) -> None:
    await service.logout(session, ctx, refresh_token=body.refresh_token)


@router.get("/me", response_model=UserPublic, responses=error_responses(401), summary="The account")
async def read_me(principal: CurrentPrincipal, db: DatabaseDep) -> Response:
    user = await service.account(db, principal.sub)
    return Response(user.model_dump_json(), media_type="application/json")


@router.patch(
    "/me", responses=error_responses(401), summary="Change the account's name or time zone"
)
async def update_me(
    body: MeUpdate, user: CurrentUser, session: SessionDep, ctx: Context
) -> UserPublic:
    changes = body.model_dump(exclude_unset=True)
    user = await service.update_profile(session, ctx, user, changes=changes)
    return UserPublic.model_validate(user, from_attributes=True)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the account",
    responses=_checks_password(
        401,
        403,
        descriptions={403: "The password is not correct (`wrong_password`)"},
        too_many="Too many wrong passwords",
    ),
)
async def delete_me(
    body: DeleteAccountIn, principal: CurrentPrincipal, session: SessionDep, ctx: Context
) -> None:
    """Delete the account (the password re-entered). Every session ends at once; the other
    services purge the user's data when they consume ``user.deleted`` (docs/events.md)."""
    await service.delete_account(session, ctx, principal.sub, password=body.password)


@router.post(
    "/password",
    summary="Change the password",
    responses=_checks_password(
        400,
        401,
        descriptions={
            400: "The current password is not correct (`wrong_password`), the new one is the "
            "email (`weak_password`), or a malformed body"
        },
        too_many="Too many wrong current passwords",
    ),
)
async def change_password(
    body: PasswordChangeIn,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    ctx: Context,
) -> TokenResponse:
    """Change the password. Every session ends, the caller's included; the answer is a new
    token pair (a new session), so the device that made the change stays signed in."""
    pair = await service.change_password(
        session,
        ctx,
        principal.sub,
        current=body.current_password,
        new=body.new_password,
        client=_client_address(request),
    )
    return _token_response(pair)


@router.post(
    "/logout-all",
    summary="Log out everywhere",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401),
)
async def logout_all(principal: CurrentPrincipal, session: SessionDep, ctx: Context) -> None:
    """Sign out everywhere: every refresh token of the account is revoked. Access tokens
    already issued stay valid until they expire (15 minutes by default)."""
    await service.logout_everywhere(session, ctx, principal.sub)


@router.get(
    "/jwks",
    summary="The public keys that verify access tokens",
    description="A JSON Web Key Set; it may be cached for 5 minutes.",
)
async def jwks(ctx: Context, response: Response) -> JWKS:
    response.headers["Cache-Control"] = "public, max-age=300"
    return JWKS.model_validate(ctx.keys.jwks())
