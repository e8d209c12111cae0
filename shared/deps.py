"""Thin FastAPI dependencies over the shared core: the database, the request's unit of work
and principal, and the path parameter naming one of the user's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from shared.columns import MAX_ID
from shared.db import Database, Session
from shared.request_context import user_id_var
from shared.tokens import InvalidToken, Principal, TokenVerifier

# The password flow makes Swagger's Authorize button log in against the auth service.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/login", auto_error=False)


async def get_database(request: Request) -> Database:
    """The service's ``Database``, for routes made of single statements (``fetch_row``)."""
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work: committed when the route returns, rolled back on error.

    The route's exception is thrown into ``Database.unit_of_work`` and handled there
    (rollback, or commit for ``keep_changes``) before the response is sent."""
    db: Database = request.app.state.db
    async with db.unit_of_work() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client never sees
# success for a write that then fails to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_principal(
    request: Request, token: Annotated[str | None, Depends(bearer_scheme)]
) -> Principal:
    if not token:
        raise InvalidToken("Not authenticated", code="not_authenticated")
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(token)
    user_id_var.set(principal.sub)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def row_id(noun: str) -> Any:
    """The path parameter naming one of the user's rows: an id in 1..MAX_ID (PostgreSQL's
    bigint), anything else a 422 before a query runs."""
    return Path(ge=1, le=MAX_ID, description=f"The {noun}'s id; a malformed one is a 422")
